"""runs, logs, cancel, status: what is running, what ran, and where the platform stands."""

from __future__ import annotations

import sys
import time
from datetime import datetime, UTC

import typer

from funnelops.cli.context import esc, get_ctx


def register(app: typer.Typer) -> None:
    app.command("runs")(runs)
    app.command("logs")(logs)
    app.command("cancel")(cancel)
    app.command("status")(status)


def _fmt_time(iso: str | None, short: bool = False) -> str:
    if not iso:
        return "-"
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%m-%d %H:%M:%S" if short else "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def _duration(run) -> str:
    if not run.started_at:
        return "-"
    start = datetime.fromisoformat(run.started_at)
    end = datetime.fromisoformat(run.ended_at) if run.ended_at else datetime.now(UTC)
    return f"{(end - start).total_seconds():.1f}s"


def runs(
    ctx: typer.Context,
    workflow: str | None = typer.Option(None, "--workflow", "-w", help="Only runs of this workflow."),
    limit: int = typer.Option(20, "--limit", "-n", help="How many runs, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print the runs as JSON."),
) -> None:
    """Run history, newest first: state, trigger, timings and the rows the flows reported."""
    from rich.table import Table

    app = get_ctx(ctx)
    app.set_json(as_json)
    records = app.backend.runtime.list(workflow, limit)
    if app.as_json:
        app.console.emit([r.to_dict() for r in records])
        return
    if not records:
        app.console.print("no runs yet")
        return
    table = Table(box=None, header_style="bold")
    for col in ("run", "workflow", "state", "trigger", "period", "started", "took", "read", "kept", "quar."):
        table.add_column(col, justify="right" if col in ("run", "read", "kept", "quar.", "took") else "left",
                         no_wrap=True)
    colors = {"DONE": "green", "FAILED": "red", "LOST": "red", "CANCELLED": "yellow", "RUNNING": "cyan"}
    for r in records:
        rows = r.rows or {}
        table.add_row(esc(r.id), esc(r.workflow), f"[{colors.get(r.state, 'white')}]{esc(r.state)}[/]", esc(r.trigger),
                      esc(r.period or "-"), _fmt_time(r.started_at, short=True), _duration(r),
                      f"{rows.get('read', 0):,}" if rows else "-",
                      f"{rows.get('kept', 0):,}" if rows else "-", f"{rows.get('quarantined', 0):,}" if rows else "-")
    app.console.out.print(table)


def logs(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="The run id (see `funnelops runs`)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until the run ends."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document: the run's state, console URL "
                                 "and each log source's text ({run, workflow, state, console_url, logs: "
                                 "[{source, text}]})."),
) -> None:
    """Print a run's step logs; --follow streams them until the run ends.

    Local: each step's log file. gcp: each Dataproc job's driver output (the GCS objects under its
    driverOutputResourceUri), a header per step, and the run's Cloud Console URL on stderr.
    """
    app = get_ctx(ctx)
    app.set_json(as_json)
    runtime = app.backend.runtime
    texts: dict[str, list[str]] = {}
    cursor = None
    url_shown = False
    delay = 0.3
    while True:
        run = runtime.get(run_id) if follow else None  # before reading: a run seen ended has all its bytes out
        read = runtime.read_logs(run_id, cursor)
        cursor = read.cursor
        if read.console_url and not url_shown and not app.as_json:
            app.console.err.print(f"console: {esc(read.console_url)}")
        url_shown = url_shown or bool(read.console_url)
        for chunk in read.chunks:
            if app.as_json:
                texts.setdefault(chunk.source, []).append(chunk.text)
                continue
            if chunk.first:
                sys.stdout.write(f"==> {chunk.source} <==\n")
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
        if not follow or run is None or run.terminal:
            if app.as_json:
                final = run or runtime.get(run_id)
                app.console.emit({"run": str(final.id) if final else run_id,
                                  "workflow": final.workflow if final else None,
                                  "state": final.state if final else None, "console_url": read.console_url,
                                  "logs": [{"source": k, "text": "".join(v)} for k, v in texts.items()]})
            elif follow and run is not None:
                sys.stdout.write(f"==> run {run.id} ended {run.state}\n")
            return
        time.sleep(delay)
        delay = min(delay * runtime.poll_backoff, 2.0)  # remote runtimes back off (each poll is API calls)


def cancel(ctx: typer.Context, run_id: str = typer.Argument(..., help="The run id.")) -> None:
    """Cancel a run in progress (its steps are stopped and its lease released).

    A run that already ended is left as it is: the command says how and when it ended, exit 0.
    JSON: the run's record plus `cancelled` (false when it had already ended)."""
    from funnelops.cli.run_messages import cancel_text
    from funnelops.runs.coordinator import cancel as cancel_run

    app = get_ctx(ctx)
    runtime = app.backend.runtime
    before = runtime.get(run_id)
    run = cancel_run(runtime, run_id)  # `no run N` (exit 2) when unknown
    acted = before is not None and not before.terminal
    app.console.print(esc(cancel_text(before, run)))
    app.console.emit({**run.to_dict(), "cancelled": acted})


def status(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Lifecycle position, templates' current args, schedulers' next fires, runs in progress, waiting tables."""
    from funnelops.lifecycle.status import collect_status

    app = get_ctx(ctx)
    app.set_json(as_json)
    st = collect_status(app.project, app.backend)
    if app.as_json:
        app.console.emit(st)
        return
    c = app.console
    c.print(f"[bold]{esc(st['project'])}[/] on the {esc(st['backend'])} backend")
    c.print("[bold]Lifecycle[/]")
    for s in st["stages"]:
        mark = "[green]✓[/]" if s["done"] else "[dim]·[/]"
        when = f" {esc(_fmt_time(s['completed_at']))} by {esc(s['actor'])}" if s["done"] else ""
        pending = (s.get("forced_run") or {}).get("hint") if not s["done"] else None
        c.print(f"  {mark} {esc(s['title'])}{when}" + (f" [yellow]({esc(pending)})[/]" if pending else ""))
    c.print(f"  next: {esc(st['next'])}")
    c.print("[bold]Workflow templates[/]")
    for t in st["templates"]:
        c.print(f"  {esc(t['name'])} (v{esc(t.get('version', '-'))}): "
                f"{esc(' '.join(t['dynamic_args']) or '(no stage argument)')}")
    c.print("[bold]Schedulers[/]")
    for s in st["schedulers"]:
        state = "[yellow]paused[/]" if s["paused"] else esc(f"next {_fmt_time(s['next_fire'])} ({s['time_zone']})")
        c.print(f"  {esc(s['name'])} ({esc(s['id'])}) -> {esc(s['workflow'])}: {esc(s['cron'])}, {state}")
    c.print("[bold]Runs in progress[/]")
    for r in st["running"] or []:
        c.print(esc(f"  run {r['id']} of {r['workflow']}: {r['state']} since {_fmt_time(r['started_at'])} "
                    f"({r['trigger']})"))
    if not st["running"]:
        c.print("  none")
    if st["waiting_for_data"]:
        c.print("[bold]External tables waiting for data[/]")
        for w in st["waiting_for_data"]:
            c.print(f"  {esc(w)}")
