"""`funnelops watch`: poll runs and post their ends to the project's `notifications:` channels."""

from __future__ import annotations

import time

import typer

from funnelops.cli.context import get_ctx
from funnelops.errors import UsageError


def register(app: typer.Typer) -> None:
    app.command("watch")(watch)


def watch(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Poll once and exit (for cron or a CI schedule)."),
    interval: float = typer.Option(60.0, "--interval", min=1.0, help="Seconds between polls."),
    since: float = typer.Option(3600.0, "--since", min=1.0,
                                help="Notify ends of runs that ended at most this many seconds ago."),
    as_json: bool = typer.Option(False, "--json", help="JSON: one document with --once, else one line per poll."),
) -> None:
    """Watch runs and post each run's end to the project's `notifications:` channels, once.

    \b
    On gcp nothing watches a run: its end is noticed by whoever polls (a `--wait`, `runs`, or
    this command). Run one watcher per project (a service, or `funnelops watch --once` from cron
    every few minutes); several are harmless: the first to claim a run's end (an object created
    with ifGenerationMatch=0 beside the ledger) sends, the others skip it. Locally the run's own
    supervisor notifies; a watcher also finds runs whose process died (LOST) and tells them.

    \b
    The webhook URLs come from the environment variables the channels name (`url_env`), read in
    this process: export them where the watcher runs. Exit codes: 0 ok (also when a receiver
    failed: that is a warning), 1 the backend could not be polled, 2 bad usage or no channels.
    """
    import json
    import sys

    from funnelops.runs.watch import poll_once

    app = get_ctx(ctx)
    app.set_json(as_json)
    spec = app.project.spec
    notifications = spec.notifications
    if notifications is None or not notifications.channels:
        raise UsageError(f"{app.project_path} has no `notifications:` channels: nothing to watch for",
                         "add e.g. `notifications: {channels: [{type: slack, url_env: SLACK_WEBHOOK_URL}]}`, "
                         "then `funnelops validate`")
    backend = app.backend
    app.console.err.print(f"watching {backend.name} runs of {spec.project.id}; notifying "
                          + ", ".join(f"{c.type} (${c.url_env})" for c in notifications.channels))

    def log(line: str) -> None:
        app.console.err.print(line, markup=False)

    while True:
        result = poll_once(backend, notifications, spec.project.id, since_s=since, log=log)
        if once:
            app.console.emit(result)
            if not app.as_json:
                app.console.print(f"{result['runs_seen']} runs seen, {result['active']} in progress, "
                                  f"{len(result['notified'])} notified")
            return
        if app.as_json:
            sys.stdout.write(json.dumps(result, default=str) + "\n")
            sys.stdout.flush()
        time.sleep(interval)
        backend.refresh()
