"""The `funnelops` command line: a thin typer app over the library.

Global options come before the command (`funnelops --json job create-infra --stage IaC`).
Every FunnelopsError becomes its exit code and a message with a hint; tracebacks only with
--debug. Nothing heavy is imported here, so `--help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

from funnelops.cli.context import AppContext

HELP = """Deploy and operate a data platform defined in one project file (funnel.yaml).

One project definition, two backends: `local` (folders, DuckDB, a local runner and scheduler: no
account needed) and `gcp` (GCS, BigQuery, Dataproc, Cloud Scheduler). `funnelops validate` checks
the definition, its trusted flows and its SQL.

The seed's lifecycle, in order:

\b
  funnelops pipeline funnel --data-stage IaC
  funnelops pipeline funnel --data-stage "Initial data"
  funnelops pipeline workflow --scheduler NAME     (any time after, as often as wanted; NAME is
                                                   one of `funnelops scheduler list`)

\b
Exit codes: 0 ok, 1 failure, 2 bad usage or invalid project, 3 refused because a run of that
workflow is in progress, 4 refused because an earlier lifecycle stage must run first.
"""

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]})


@app.callback()
def root(
    ctx: typer.Context,
    project: Path = typer.Option(Path("funnel.yaml"), "--project", "-p", envvar="FUNNELOPS_PROJECT",
                                 help="The project definition file.", show_default=True),
    home: Path = typer.Option(Path(".funnelops"), "--home", envvar="FUNNELOPS_HOME",
                              help="Local state: buckets, warehouse, ledger, run logs."),
    backend: str | None = typer.Option(None, "--backend", "-b", envvar="FUNNELOPS_BACKEND",
                                          help="local or gcp (default: the project's `backend`, else local)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout (text goes to stderr)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Validate the arguments and the project, say what would be done, touch nothing."),
    reinit: bool = typer.Option(False, "--reinit",
                                help="Start a new ledger when the home's ledger is damaged, empty or missing beside "
                                     "existing state (the old file is moved aside; its lifecycle and run history "
                                     "are not carried over)."),
) -> None:
    if backend is not None and backend not in ("local", "gcp"):
        raise typer.BadParameter("use local or gcp", param_hint="--backend")
    ctx.obj = AppContext(project_path=project.expanduser(), home=home.expanduser().absolute(),
                         backend_name=backend, as_json=as_json, debug=debug, dry_run=dry_run, reinit=reinit)


def _register() -> None:
    from funnelops.cli import demo_cmd, infra_cmd, init_cmd, lifecycle_cmd, runs_cmd, scheduler_cmd

    infra_cmd.register(app)
    runs_cmd.register(app)
    lifecycle_cmd.register(app)
    scheduler_cmd.register(app)
    demo_cmd.register(app)
    init_cmd.register(app)
    try:
        from funnelops.cli import data_cmd

        app.add_typer(data_cmd.app, name="data", help="Raw data: load your own files, or generate sample data.")
    except ImportError:  # pragma: no cover - the data command ships with the flows
        pass


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and turn errors into exit codes and readable messages."""
    from funnelops.errors import EXIT_FAILURE, FunnelopsError, Interrupted

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("FUNNELOPS_DEBUG") == "1"
    as_json = "--json" in args
    try:
        # standalone mode: typer/click print usage errors themselves and exit 2
        app(args=args, prog_name="funnelops")
        return 0
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except Interrupted as exc:  # Ctrl-C during a wait: the runs go on, the message says how to follow them
        sys.stderr.write(f"Interrupted: {exc.message.removeprefix('interrupted: ')}\n")
        if as_json:
            sys.stdout.write(json.dumps(exc.to_dict(), ensure_ascii=False) + "\n")
        return exc.exit_code
    except FunnelopsError as exc:
        _report(exc.message, exc.hint, exc.to_dict(), as_json)
        if debug:
            raise
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return 130
    except Exception as exc:  # a bug: say so plainly, keep the trace for --debug
        if debug:
            raise
        _report(f"unexpected {type(exc).__name__}: {exc}", "re-run with --debug for the traceback and report it",
                {"error": "internal", "message": str(exc), "exit_code": EXIT_FAILURE}, as_json)
        return EXIT_FAILURE


def _report(message: str, hint: str | None, data: dict, as_json: bool) -> None:
    from funnelops.cli.context import Console

    console = Console(as_json)
    console.error(message, hint)
    console.emit(data)


def run() -> None:  # pragma: no cover - console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
