"""Server-rendered pages: overview, runs, one run, schedulers, lineage, plan (Jinja2 + htmx).

Every page reads through the app's one `Dashboard` (in a worker thread: its calls block on the
ledger), so the pages show exactly what the CLI's `--json` documents say. The DOM ids and classes
are a contract with the browser tests (COMMON14.md / docs/ui.md); Jinja2 autoescapes everything,
so a workflow, a rule or a piece of SQL named `<script>` renders as text.

Speed: the overview and `/runs` read only the newest runs (`charts.WINDOW`, the limit selector),
never the plan or the lineage, so they answer in milliseconds whatever the ledger holds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from funnelops.errors import FunnelopsError, UsageError
from funnelops.ui.views.charts import WINDOW, chart_data
from funnelops.ui.views.fmt import STATES, TERMINAL, filters, flows_of, run_row, seconds_between, took
from funnelops.ui.views.lineage_svg import layout

TEMPLATES = Path(__file__).parent / "templates"
LIMITS = (25, 50, 100, 200, 500)
DEFAULT_LIMIT = 50
POLL_ACTIVE, POLL_IDLE = "every 2s", "every 30s"


def _templates() -> Jinja2Templates:
    """Autoescape on for every template (not only by file extension): the pages' one XSS guard."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(filters())
    return Jinja2Templates(env=env)


templates = _templates()
Handler = Callable[[Request], Awaitable[Response]]


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    """A page with what every page needs: CSRF token and user (set by the access middleware when
    it runs; empty before it), read-only mode, the project's id, the current path for the nav."""
    settings = request.app.state.settings
    base = {"csrf_token": getattr(request.state, "csrf_token", "") or "",
            "user": getattr(request.state, "user", "") or "", "read_only": bool(settings.read_only),
            "project": _project_id(request), "path": request.url.path}
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def _project_id(request: Request) -> str:
    try:
        return str(request.app.state.dashboard.loaded.spec.project.id)
    except Exception:  # a broken project file: the page says why, the nav still renders
        return ""


def guarded(handler: Handler) -> Handler:
    """A FunnelopsError (bad project, unreadable ledger, bad parameter) becomes an error page with
    its message and hint, never a traceback: 400 for a usage error, 500 otherwise."""
    async def wrapper(request: Request) -> Response:
        try:
            return await handler(request)
        except FunnelopsError as exc:
            code = 400 if isinstance(exc, UsageError) else 500
            return render(request, "error.html", {"title": "Error", "message": exc.message, "hint": exc.hint},
                          status_code=code)
    wrapper.__name__ = handler.__name__
    wrapper.__doc__ = handler.__doc__
    return wrapper


def active_runs(board: Any) -> list[dict[str, Any]]:
    """Runs in progress (PENDING or RUNNING) of any workflow: decides whether the runs table polls."""
    with board.lock:
        return [r.to_dict() for r in board.backend.runtime.active()]


# -- overview -----------------------------------------------------------------------------------
@guarded
async def overview(request: Request) -> Response:
    """Lifecycle, next command, templates, runs in progress, charts of the last `WINDOW` runs."""
    board = request.app.state.dashboard

    def read() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return board.status(), board.runs(limit=WINDOW)

    status, recent = await run_in_threadpool(read)
    active = [run_row(r) for r in status.get("running") or []]
    return render(request, "overview.html", {"title": "Overview", "status": status, "active": active,
                                             "charts": chart_data(recent)})


# -- runs ---------------------------------------------------------------------------------------
def _runs_query(request: Request) -> dict[str, Any]:
    """The filter as given, tolerated: an unknown state or a bad limit is ignored, with a note."""
    q = request.query_params
    notes = []
    state = (q.get("state") or "").upper() or None
    if state is not None and state not in STATES:
        notes.append(f"unknown state {q.get('state')!r} ignored (one of {', '.join(STATES)})")
        state = None
    workflow = q.get("workflow") or None
    try:
        limit = int(q.get("limit") or DEFAULT_LIMIT)
    except ValueError:
        notes.append(f"limit {q.get('limit')!r} is not a number: showing {DEFAULT_LIMIT}")
        limit = DEFAULT_LIMIT
    limit = min(max(limit, 1), max(LIMITS))
    return {"workflow": workflow, "state": state, "limit": limit, "notes": notes}


@guarded
async def runs_page(request: Request) -> Response:
    """The runs table, filterable; `?fragment=1` is the live part alone (what htmx polls)."""
    board = request.app.state.dashboard
    workflows = [w.name for w in board.loaded.spec.workflows]
    query = _runs_query(request)

    def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return (board.runs(workflow=query["workflow"], state=query["state"], limit=query["limit"]),
                active_runs(board))

    records, active = await run_in_threadpool(read)
    params = {k: v for k, v in (("workflow", query["workflow"]), ("state", query["state"]),
                                ("limit", query["limit"])) if v}
    context = {"title": "Runs", "runs": [run_row(r) for r in records], "query": query, "workflows": workflows,
               "states": STATES, "limits": LIMITS, "live": bool(active), "active_count": len(active),
               "poll": POLL_ACTIVE if active else POLL_IDLE,
               "fragment_url": "/runs?" + urlencode({**params, "fragment": "1"})}
    if request.query_params.get("fragment"):
        return render(request, "_runs_table.html", context)
    return render(request, "runs.html", context)


@guarded
async def run_page(request: Request) -> Response:
    """One run: summary, steps, per-flow rows and rules, and its logs (followed by app.js)."""
    board = request.app.state.dashboard
    run_id = request.path_params["run_id"]
    run = await run_in_threadpool(board.run, run_id)
    if run is None:
        return render(request, "not_found.html", {"title": "Run not found", "what": f"run {run_id}"},
                      status_code=404)
    logs, logs_error = await run_in_threadpool(_first_logs, board, run_id)
    seconds = seconds_between(run.get("started_at"), run.get("ended_at"))
    return render(request, "run.html", {"title": f"Run {run_id}", "run": run, "row": run_row(run),
                                        "took": took(seconds), "flows": flows_of(run), "logs": logs,
                                        "logs_error": logs_error, "terminal": run.get("state") in TERMINAL})


PAGE_LOG_CHARS = 512 * 1024  # what one answer puts on the run page; the rest stays in the log


def page_logs(doc: dict[str, Any], run_id: str, limit: int = PAGE_LOG_CHARS) -> dict[str, Any]:
    """The logs document as the run page shows it: at most the last `limit` characters of new text.

    A chatty run's log would otherwise arrive whole in one answer and freeze the browser; the page
    shows its end (what an operator following a run reads) and says how much it left out and where
    the whole log is. The cursor still moves past everything, and `/api/runs/ID/logs` and
    `funnelops logs ID` stay complete."""
    chunks = list(doc.get("chunks") or [])
    total = sum(len(c["text"]) for c in chunks)
    if total <= limit:
        return doc
    kept: list[dict[str, Any]] = []
    room = limit
    for c in reversed(chunks):
        if room <= 0:
            break
        text = c["text"][-room:]
        kept.insert(0, {**c, "text": text, "first": c["first"] and len(text) == len(c["text"])})
        room -= len(text)
    note = (f"[funnelops: {total - limit:,} characters left out here; `funnelops logs {run_id}` or "
            f"/api/runs/{run_id}/logs has the whole log]\n")
    return {**doc, "chunks": [{"source": kept[0]["source"], "text": note, "first": False}, *kept],
            "left_out": total - limit}


def _first_logs(board: Any, run_id: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return page_logs(board.logs(run_id), run_id), None
    except FunnelopsError as exc:
        return None, exc.message


@guarded
async def run_logs(request: Request) -> Response:
    """The run's new log text since `cursor` (the `/api/runs/{id}/logs` document): what the run
    page polls, served here so the pages need nothing of the API module."""
    board = request.app.state.dashboard
    run_id = request.path_params["run_id"]
    try:
        doc = await run_in_threadpool(board.logs, run_id, request.query_params.get("cursor") or None)
    except UsageError as exc:
        status = 404 if await run_in_threadpool(board.run, run_id) is None else 400
        return JSONResponse({"error": exc.message, "hint": exc.hint, "details": exc.details}, status_code=status)
    return JSONResponse(page_logs(doc, run_id))


# -- schedulers, lineage, plan ------------------------------------------------------------------
@guarded
async def schedulers_page(request: Request) -> Response:
    """Each scheduler's cron, zone, next and last fire, paused; Force and Pause/Resume buttons."""
    board = request.app.state.dashboard
    schedulers = await run_in_threadpool(board.schedulers)
    return render(request, "schedulers.html", {"title": "Schedulers", "schedulers": schedulers})


@guarded
async def lineage_page(request: Request) -> Response:
    """Buckets -> trusted flows -> tables -> refined SQL -> views, as an inline SVG."""
    board = request.app.state.dashboard
    doc = await run_in_threadpool(board.lineage)
    graph = layout(doc if isinstance(doc, dict) else None)
    return render(request, "lineage.html", {"title": "Lineage", "graph": graph})


@guarded
async def plan_page(request: Request) -> Response:
    """What `plan` would change for the stage the lifecycle is in (observes; changes nothing)."""
    board = request.app.state.dashboard
    plan = await run_in_threadpool(board.plan)
    changes = [c for c in plan.get("changes") or [] if c.get("action") != "unchanged"]
    mutating = [c for c in changes if c.get("action") in ("create", "update", "replace", "delete")]
    return render(request, "plan.html", {"title": "Plan", "plan": plan, "changes": changes,
                                         "has_changes": bool(mutating)})


def routes() -> list[Route]:
    return [Route("/", overview), Route("/runs", runs_page), Route("/runs/{run_id}/logs-fragment", run_logs),
            Route("/runs/{run_id}", run_page), Route("/schedulers", schedulers_page),
            Route("/lineage", lineage_page), Route("/plan", plan_page)]
