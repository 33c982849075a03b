"""The JSON API under /api/: the CLI's --json documents, same shapes, for the pages' scripts and for
anyone with curl.

Every route runs the Dashboard's synchronous work in the thread pool (the backend is blocking I/O
behind one lock) and maps errors the way the CLI maps them to exit codes:
400 the request is wrong (a parameter, a scheduler, a period: the message names it), 404 no such
run or scheduler, 409 refused because a run or an apply is in progress or an earlier stage must run
first (details carry the holder: run id, start, by whom), 403 access (security.py), 500 anything
else (the message only, never a traceback). Error body: {"error", "hint", "details", "kind"}.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from funnelops.backends.types import STATES
from funnelops.errors import EXIT_USAGE, FunnelopsError, RunInProgress, StageOrderError, UsageError, did_you_mean
from funnelops.ui.dashboard import Dashboard, UnknownRun, UnknownScheduler

LOG = logging.getLogger("funnelops.ui")
MAX_LIMIT = 1000
MAX_BODY_BYTES = 16 * 1024


class Json(JSONResponse):
    """JSON as the CLI prints it (non-ASCII kept; dates and paths as text)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, default=str).encode("utf-8")


def error_response(exc: BaseException) -> Json:
    """The HTTP status and {error, hint, details, kind} for an error raised by the core."""
    if not isinstance(exc, FunnelopsError):
        LOG.exception("dashboard API: unexpected error")
        return Json({"error": f"unexpected {type(exc).__name__}", "kind": "internal", "details": {},
                     "hint": "see the `funnelops ui` server's output; re-run the command from the CLI with --debug"},
                    status_code=500)
    if isinstance(exc, (UnknownRun, UnknownScheduler)):
        status = 404
    elif isinstance(exc, (RunInProgress, StageOrderError)):
        status = 409
    elif exc.exit_code == EXIT_USAGE:
        status = 400
    else:
        status = 500
    return Json({"error": exc.message, "hint": exc.hint, "details": exc.details, "kind": exc.kind},
                status_code=status)


async def _answer(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Response:
    try:
        return Json(await run_in_threadpool(fn, *args, **kwargs))
    except Exception as exc:  # every error becomes a JSON answer, never a traceback page
        return error_response(exc)


def _board(request: Request) -> Dashboard:
    board: Dashboard = request.app.state.dashboard
    return board


def _params(request: Request, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query parameters; an unknown one is a 400 (a typo like `stat=` must not be ignored)."""
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        raise UsageError(f"unknown query parameter '{unknown[0]}'",
                         f"{request.url.path} takes: {', '.join(allowed) or 'no parameters'}")
    return {k: request.query_params[k] for k in allowed if k in request.query_params}


def _limit(text: str | None) -> int:
    if text is None:
        return 50
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise UsageError(f"`limit` must be a whole number from 1 to {MAX_LIMIT}, not '{text}'",
                         "for example limit=50")
    return int(text)


def _state(text: str | None) -> str | None:
    if text is None or text == "":
        return None
    if text.upper() not in STATES:
        raise UsageError(f"`state` must be one of {', '.join(STATES)}, not '{text}'",
                         did_you_mean(text.upper(), STATES) or "leave it out for every state")
    return text.upper()


def _workflow(board: Dashboard, text: str | None) -> str | None:
    if text is None or text == "":
        return None
    names = board.workflow_names()
    if text not in names:
        raise UsageError(f"`workflow` '{text}' is not a workflow of the project",
                         did_you_mean(text, names) or "known: " + ", ".join(names))
    return text


# -- reads ------------------------------------------------------------------------------------
async def status(request: Request) -> Response:
    """`funnelops status --json`."""
    return await _read(request, (), lambda board, _p: board.status())


async def runs(request: Request) -> Response:
    """`funnelops runs --json`, filtered: ?workflow=NAME&state=STATE&limit=1..1000 (default 50)."""
    def read(board: Dashboard, p: dict[str, str]) -> Any:
        return board.runs(_workflow(board, p.get("workflow")), _state(p.get("state")), _limit(p.get("limit")))
    return await _read(request, ("workflow", "state", "limit"), read)


async def run(request: Request) -> Response:
    """One run's record (an item of `runs --json`); 404 when unknown."""
    run_id = request.path_params["run_id"]

    def read(board: Dashboard, _p: dict[str, str]) -> Any:
        found = board.run(run_id)
        if found is None:
            raise UnknownRun(f"no run {run_id}", "list the runs with GET /api/runs (or `funnelops runs`)",
                             run=run_id)
        return found
    return await _read(request, (), read)


async def logs(request: Request) -> Response:
    """New log text of a run since ?cursor= (hand back the answer's `cursor` for the next piece)."""
    run_id = request.path_params["run_id"]
    return await _read(request, ("cursor",), lambda board, p: board.logs(run_id, p.get("cursor")))


async def schedulers(request: Request) -> Response:
    """`funnelops scheduler list --json`."""
    return await _read(request, (), lambda board, _p: board.schedulers())


async def lineage(request: Request) -> Response:
    """`funnelops lineage --json`."""
    return await _read(request, (), lambda board, _p: board.lineage())


async def plan(request: Request) -> Response:
    """`funnelops plan --json` for the stage the lifecycle is in (observes, changes nothing)."""
    return await _read(request, (), lambda board, _p: board.plan())


async def _read(request: Request, allowed: tuple[str, ...], fn: Callable[[Dashboard, dict[str, str]], Any]) -> Response:
    try:
        params = _params(request, allowed)
    except UsageError as exc:
        return error_response(exc)
    return await _answer(fn, _board(request), params)


# -- actions ----------------------------------------------------------------------------------
async def force(request: Request) -> Response:
    """POST {"scheduler": name-or-id, "period"?: str}: `pipeline workflow --scheduler S --json`, the
    actor being the signed-in user `(ui)`. 409 with the holder when the workflow already runs."""
    try:
        body = await _json_body(request)
        scheduler, period = body.get("scheduler"), body.get("period")
        if not isinstance(scheduler, str) or not scheduler.strip():
            raise UsageError("`scheduler` is required: a scheduler's name or id",
                             'send {"scheduler": "Día"} (see GET /api/schedulers)')
        if period is not None and not isinstance(period, str):
            raise UsageError("`period` must be text: YYYY-MM-DD, YYYY-MM, YYYY, previous or current",
                             "leave it out for the workflow's default period")
        extra = sorted(set(body) - {"scheduler", "period"})
        if extra:
            raise UsageError(f"unknown field '{extra[0]}' in the body", 'the body takes "scheduler" and "period"')
    except UsageError as exc:
        return error_response(exc)
    actor = f"{getattr(request.state, 'user', None) or 'unknown'} (ui)"
    return await _answer(_board(request).force, scheduler.strip(), actor, period or None)


async def pause(request: Request) -> Response:
    """POST: `scheduler pause S --json` -> {"scheduler", "paused": true}; 404 for an unknown scheduler."""
    return await _answer(_board(request).set_paused, request.path_params["scheduler"], True)


async def resume(request: Request) -> Response:
    """POST: `scheduler resume S --json` -> {"scheduler", "paused": false}."""
    return await _answer(_board(request).set_paused, request.path_params["scheduler"], False)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise UsageError(f"the body is larger than {MAX_BODY_BYTES} bytes", 'send {"scheduler": "..."}')
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError("the body is not JSON", 'send {"scheduler": "Día"} with Content-Type: application/json') \
            from exc
    if not isinstance(body, dict):
        raise UsageError("the body must be a JSON object", 'send {"scheduler": "Día"}')
    return body


async def not_found(request: Request) -> Response:
    return Json({"error": f"no API route {request.method} {request.url.path}", "kind": "not_found", "details": {},
                 "hint": "routes: /api/status, /api/runs, /api/runs/{id}, /api/runs/{id}/logs, /api/schedulers, "
                         "/api/lineage, /api/plan, POST /api/force, POST /api/schedulers/{id}/pause|resume"},
                status_code=404)


def routes() -> list[Route]:
    return [
        Route("/api/status", status),
        Route("/api/runs", runs),
        Route("/api/runs/{run_id}", run),
        Route("/api/runs/{run_id}/logs", logs),
        Route("/api/schedulers", schedulers),
        Route("/api/lineage", lineage),
        Route("/api/plan", plan),
        Route("/api/force", force, methods=["POST"]),
        Route("/api/schedulers/{scheduler}/pause", pause, methods=["POST"]),
        Route("/api/schedulers/{scheduler}/resume", resume, methods=["POST"]),
        Route("/api/{rest:path}", not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
