"""scheduler list | pause | resume | run | serve."""

from __future__ import annotations

import typer

from funnelops.cli.context import esc, get_ctx
from funnelops.cli.groups import scheduler_app

NAME_HELP = "A scheduler's name or id from the project (see `funnelops scheduler list`)."


def register(app: typer.Typer) -> None:
    scheduler_app.command("list")(list_schedulers)
    scheduler_app.command("pause")(pause)
    scheduler_app.command("resume")(resume)
    scheduler_app.command("run")(run_now)
    scheduler_app.command("serve")(serve)
    app.add_typer(scheduler_app, name="scheduler")


def list_schedulers(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """Schedulers with their cron, time zone, state and next fire time."""
    from funnelops.lifecycle.status import collect_status

    app = get_ctx(ctx)
    app.set_json(as_json)
    st = collect_status(app.project, app.backend)
    if app.as_json:
        app.console.emit(st["schedulers"])
        return
    from funnelops.timefmt import local_text

    for s in st["schedulers"]:
        state = "paused" if s["paused"] else ("not created" if not s["exists"]
                                              else f"next {local_text(s['next_fire'], s['time_zone'])}")
        app.console.print(esc(f"{s['name']:<14} {s['id']:<14} {s['cron']:<12} {s['time_zone']:<16} "
                              f"-> {s['workflow']:<22} {state}"))


def _set_paused(ctx: typer.Context, name: str, paused: bool) -> None:
    from funnelops.lifecycle.jobs import resolve_scheduler

    app = get_ctx(ctx)
    s = resolve_scheduler(app.project, name)
    if app.dry_run:
        app.console.print(f"dry run: would {'pause' if paused else 'resume'} scheduler {esc(s.name)}")
        app.console.emit({"dry_run": True, "scheduler": s.id, "paused": paused})
        return
    app.backend.runtime.set_paused(s.id, paused)
    app.console.print(f"scheduler {esc(s.name)} ({esc(s.id)}) {'paused' if paused else 'resumed'}")
    app.console.emit({"scheduler": s.id, "paused": paused})


def pause(ctx: typer.Context, name: str = typer.Argument(..., help=NAME_HELP)) -> None:
    """Pause a scheduler: it stops firing until resumed."""
    _set_paused(ctx, name, True)


def resume(ctx: typer.Context, name: str = typer.Argument(..., help=NAME_HELP)) -> None:
    """Resume a paused scheduler."""
    _set_paused(ctx, name, False)


def run_now(ctx: typer.Context, name: str = typer.Argument(..., help=NAME_HELP),
            wait: bool = typer.Option(False, "--wait", help="Follow the run to its end."),
            period: str | None = typer.Option(None, "--period", help="The period the run processes (YYYY-MM-DD, "
                                              "YYYY-MM, YYYY, previous or current; see `pipeline workflow`).")
            ) -> None:
    """Force a scheduler now (the same as `funnelops job force-scheduler`)."""
    from funnelops.cli.lifecycle_cmd import pipeline_workflow

    pipeline_workflow(ctx, scheduler=name, wait=wait, period=period)


def serve(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Handle what is due now, then exit."),
    grace_s: int = typer.Option(3600, "--grace", help="Fire a missed slot if it is at most this many seconds late."),
    poll_s: float = typer.Option(30.0, "--poll", help="Re-read the schedulers at least this often (seconds)."),
) -> None:
    """Run the local scheduler: fire each scheduler on its cron, in its time zone, until stopped.

    It first lists the schedulers it serves with each next fire (and the zone); after each fire,
    what the fire started and the scheduler's next fire. With --json, stdout carries JSON lines
    only: first {"event": "serving", "schedulers": [...]}, then one line per scheduler event."""
    import signal
    from datetime import timedelta

    from funnelops.cli.reporter import ConsoleReporter
    from funnelops.lifecycle.serve import make_daemon

    app = get_ctx(ctx)
    if app.dry_run:
        app.console.print("dry run: would start the local scheduler daemon")
        app.console.emit_line({"dry_run": True, "command": "scheduler serve"})
        return

    daemon = make_daemon(app.project, app.backend, reporter=ConsoleReporter(app), grace=timedelta(seconds=grace_s),
                         poll_interval_s=poll_s)
    if once:
        serving_message(app, once=True)
        daemon.run_once()
        daemon.wait_idle(timeout=60)
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: daemon.stop())
    serving_message(app)
    daemon.run()
    app.console.print("scheduler stopped")


def serving_message(app, once: bool = False) -> None:
    """What the daemon serves: each scheduler, its workflow, cron, zone and next fire (a JSON line with --json)."""
    import json
    import sys

    from funnelops.cli.run_messages import local_text
    from funnelops.lifecycle.serve import served_schedulers

    schedulers = served_schedulers(app.backend)
    if app.as_json:
        sys.stdout.write(json.dumps({"event": "serving", "once": once, "schedulers": schedulers},
                                    ensure_ascii=False) + "\n")
        sys.stdout.flush()
    app.console.print("scheduler: handling what is due now" if once else "scheduler serving; Ctrl-C to stop")
    for s in schedulers:
        when = "paused" if s["paused"] else (f"next fire {local_text(s['next_fire'], s['time_zone'])} "
                                             f"({s['time_zone']})" if s["next_fire"] else "no next fire")
        app.console.print(esc(f"  {s['name']} ({s['id']}) -> {s['workflow']}: {s['cron']}, {when}"))
    if not schedulers:
        app.console.print("  no schedulers created yet (see `funnelops status`)")
