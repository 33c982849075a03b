"""runs, logs, cancel, status: what is running, what ran, and where the platform stands."""

from __future__ import annotations

import sys
import time

import typer

from funnelops.cli.context import esc, get_ctx


def register(app: typer.Typer) -> None:
    app.command("runs")(runs)
    app.command("logs")(logs)
    app.command("cancel")(cancel)
    app.command("status")(status)


def _fmt_time(iso: str | None, short: bool = False) -> str:
    """A recorded time as text, in the machine's zone with the zone named (funnelops.timefmt)."""
    from funnelops.timefmt import local_text

    return local_text(iso, short=short)


def _duration(run) -> str:
    from funnelops.cli.runs_table import duration

    return duration(run)


def where_am_i(app) -> str:
    """`project P, home H`: named in every message about state that is not there, so reading an
    empty home by mistake (another directory, a missing --home) shows at once."""
    return f"project {app.project.spec.project.id} ({app.project_path}), home {app.home}"


def _known_run(app, run_id: str):
    """The run's record, or a UsageError naming the project and home that were searched."""
    from funnelops.errors import UsageError

    run = app.backend.runtime.get(run_id)
    if run is None:
        raise UsageError(f"no run {run_id} in {where_am_i(app)}",
                         "list the runs with `funnelops runs`; for another home pass --home DIR "
                         "(or FUNNELOPS_HOME)")
    return run


def runs(
    ctx: typer.Context,
    workflow: str | None = typer.Option(None, "--workflow", "-w", help="Only runs of this workflow."),
    limit: int = typer.Option(20, "--limit", "-n", help="How many runs, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print the runs as JSON."),
) -> None:
    """Run history, newest first: state, trigger, timings and the rows the flows reported."""
    from funnelops.cli.runs_table import runs_table

    app = get_ctx(ctx)
    app.set_json(as_json)
    records = app.backend.runtime.list(workflow, limit)
    if app.as_json:
        app.console.emit([r.to_dict() for r in records])
        return
    if not records:
        of = f" of workflow {workflow}" if workflow else ""
        app.console.print(esc(f"no runs{of} yet in home {app.home} (project {app.project.spec.project.id}, "
                              f"{app.project_path})"))
        return
    table, left_out = runs_table(records, app.console.out.width)
    app.console.out.print(table)
    if left_out:
        app.console.err.print(esc(f"({', '.join(left_out)} left out to fit {app.console.out.width} columns; "
                                  "`funnelops runs --json` has every field)"))


def logs(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="The run id (see `funnelops runs`)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until the run ends."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines (one JSON object per line, streamed with "
                                 "--follow): {run, source, text} for each piece of a log source's text as it is "
                                 "read, then a last line {run, workflow, state, console_url}."),
) -> None:
    """Print a run's step logs; --follow streams them until the run ends.

    Local: each step's log file. gcp: each Dataproc job's driver output (the GCS objects under its
    driverOutputResourceUri), a header per step, and the run's Cloud Console URL on stderr.
    With --json, JSON lines: {run, source, text} per piece of log text, then {run, workflow, state,
    console_url}; joining the `text` of one source in order gives its whole log.
    """
    app = get_ctx(ctx)
    app.set_json(as_json)
    runtime = app.backend.runtime
    _known_run(app, run_id)
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
                app.console.emit_line({"run": str(run_id), "source": chunk.source, "text": chunk.text})
                continue
            if chunk.first:
                sys.stdout.write(f"==> {chunk.source} <==\n")
            sys.stdout.write(chunk.text)
            sys.stdout.flush()
        if not follow or run is None or run.terminal:
            if app.as_json:
                final = run or runtime.get(run_id)
                app.console.emit_line({"run": str(final.id) if final else run_id,
                                       "workflow": final.workflow if final else None,
                                       "state": final.state if final else None, "console_url": read.console_url})
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
    _known_run(app, run_id)
    runtime = app.backend.runtime
    before = runtime.get(run_id)
    run = cancel_run(runtime, run_id)  # `no run N` (exit 2) when unknown
    acted = before is not None and not before.terminal
    app.console.print(esc(cancel_text(before, run)))
    app.console.emit({**run.to_dict(), "cancelled": acted})


def status(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Lifecycle position, templates' current args, schedulers' next fires, runs in progress, waiting
    tables, and where the data is (warehouse, refined tables, quarantine, an example query).

    Times are shown in the machine's zone with the zone named, next fires in their scheduler's
    zone; --json gives ISO 8601 with offset."""
    from funnelops.cli.where import print_where
    from funnelops.lifecycle.status import collect_status

    app = get_ctx(ctx)
    app.set_json(as_json)
    st = collect_status(app.project, app.backend)
    st = {"project_file": str(app.project_path.absolute()), "home": str(app.home), "env": app.project.env, **st}
    if app.as_json:
        app.console.emit(st)
        return
    c = app.console
    env = f", environment [bold]{esc(st['env'])}[/]" if st["env"] else ""
    c.print(f"[bold]{esc(st['project'])}[/] on the {esc(st['backend'])} backend{env}",
            f"  project file: {esc(st['project_file'])}", f"  home:         {esc(st['home'])}")
    c.print("[bold]Lifecycle[/]")
    for s in st["stages"]:
        mark = "[green]✓[/]" if s["done"] else "[dim]·[/]"
        when = f" {esc(_fmt_time(s['completed_at']))} by {esc(s['actor'])}" if s["done"] else ""
        pending = (s.get("forced_run") or {}).get("hint") if not s["done"] else None
        c.print(f"  {mark} {esc(s['title'])}{when}" + (f" [yellow]({esc(pending)})[/]" if pending else ""))
    c.print(f"  next: {esc(st['next'])}")
    _print_templates_and_schedulers(app, st)
    c.print("[bold]Runs in progress[/]")
    for r in st["running"] or []:
        c.print(esc(f"  run {r['id']} of {r['workflow']}: {r['state']} since {_fmt_time(r['started_at'])} "
                    f"({r['trigger']})"))
    if not st["running"]:
        c.print("  none")
    if st.get("applying"):
        a = st["applying"]
        where = f", pid {a['pid']} on {a['host']}" if a.get("pid") is not None and a.get("host") else ""
        c.print("[bold yellow]Apply in progress[/]",
                esc(f"  `{a['command']}` by {a['actor']} since {_fmt_time(a['acquired_at'])}{where}: forces and "
                    "scheduled fires are refused until it ends"))
    if st["waiting_for_data"]:
        c.print("[bold]External tables waiting for data[/]")
        for w in st["waiting_for_data"]:
            c.print(f"  {esc(w)}")
    print_where(c, st["where"])


def _print_templates_and_schedulers(app, st: dict) -> None:
    """Templates (`not created` before IaC, never `vNone`) and schedulers, each next fire shown in
    the scheduler's own zone and labelled with it."""
    from funnelops.timefmt import local_text

    c = app.console
    c.print("[bold]Workflow templates[/]")
    for t in st["templates"]:
        if not t["exists"]:
            c.print(f"  {esc(t['name'])}: [dim]not created[/]")
            continue
        version = f" (v{esc(t['version'])})" if t.get("version") is not None else ""
        c.print(f"  {esc(t['name'])}{version}: {esc(' '.join(t['dynamic_args']) or '(no stage argument)')}")
    c.print("[bold]Schedulers[/]")
    for s in st["schedulers"]:
        if s["paused"]:
            state = "[yellow]paused[/]"
        elif not s["exists"]:
            state = "[dim]not created[/]"
        else:
            state = esc(f"next {local_text(s['next_fire'], s['time_zone'])} ({s['time_zone']})")
        c.print(f"  {esc(s['name'])} ({esc(s['id'])}) -> {esc(s['workflow'])}: {esc(s['cron'])}, {state}")
