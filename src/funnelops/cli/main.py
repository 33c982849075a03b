"""The `funnelops` command line: a thin typer app over the library.

Global options come before the command (`funnelops --json job create-infra --stage IaC`); the
flags among them (--json, --debug, --no-color, --dry-run) may also come after it: `main()` moves
them to the front before typer parses. Every FunnelopsError becomes its exit code and a message with a hint; tracebacks only with
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

Which project, home, backend and environment: --project/--home/--backend/--env, else
FUNNELOPS_PROJECT/_HOME/_BACKEND/_ENV,
else the nearest funnelops.toml (this folder or a parent; `funnelops demo` writes one), else
./funnel.yaml and ./.funnelops.
The flags --json, --debug, --no-color and --dry-run may also come after the command
(`funnelops status --json`). Shell completion: `funnelops --install-completion`.

\b
Exit codes: 0 ok, 1 failure, 2 bad usage or invalid project, 3 refused because a run of that
workflow or an apply is in progress, 4 refused because an earlier lifecycle stage must run first,
130 interrupted. `plan --detailed-exitcode`: 0 no changes, 2 changes, 1 any error.
"""


app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]})


# Set by main() when the command line asks for help: click runs this callback before a subcommand's
# --help, and help must answer even beside a broken funnelops.toml.
_ASKS_HELP = [False]


def package_version() -> str:
    """The installed distribution's version; the package's own when run from a source tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("funnelops")
    except PackageNotFoundError:
        from funnelops import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"funnelops {package_version()}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    project: Path | None = typer.Option(
        None, "--project", "-p", envvar="FUNNELOPS_PROJECT", show_default=False,
        help="The project definition file (default: `project` in the nearest funnelops.toml, else ./funnel.yaml)."),
    home: Path | None = typer.Option(
        None, "--home", envvar="FUNNELOPS_HOME", show_default=False,
        help="Local state: buckets, warehouse, ledger, run logs (default: `home` in the nearest funnelops.toml, "
             "else ./.funnelops)."),
    backend: str | None = typer.Option(None, "--backend", "-b", envvar="FUNNELOPS_BACKEND",
                                          help="local or gcp (default: `backend` in the nearest funnelops.toml, "
                                               "else the project's `backend`, else local)."),
    env: str | None = typer.Option(
        None, "--env", envvar="FUNNELOPS_ENV", show_default=False,
        help="The environment: its overlay under `environments:` is merged over the project, and its state lives "
             "in <home>/env/NAME (default: `env` in the nearest funnelops.toml, else none: the project as "
             "written). See docs/environments.md."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout (text goes to stderr)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    no_color: bool = typer.Option(False, "--no-color",
                                  help="No colours and no styles: plain text, no escape sequences (as NO_COLOR=1)."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Validate the arguments and the project, say what would be done, touch nothing."),
    reinit: bool = typer.Option(False, "--reinit",
                                help="Start a new ledger when the home's ledger is damaged, empty or missing beside "
                                     "existing state (the old file is moved aside; its lifecycle and run history "
                                     "are not carried over)."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print `funnelops X.Y.Z` and exit."),
) -> None:
    """Resolve project, home, backend and environment: flag > environment variable > funnelops.toml > default
    (cli/config.py); the options default to None so a value nobody gave is told from one given."""
    from funnelops.cli.config import resolve_settings

    if backend is not None and backend not in ("local", "gcp"):
        raise typer.BadParameter("use local or gcp", param_hint="--backend")
    sources = {name: _source(ctx, name) for name, value in
               (("project", project), ("home", home), ("backend", backend), ("env", env)) if value is not None}
    settings = resolve_settings(project, home, backend, sources, use_file=not _ASKS_HELP[0], env=env)
    ctx.obj = AppContext(project_path=settings.project.expanduser(), home=settings.home.expanduser().absolute(),
                         backend_name=settings.backend, as_json=as_json, debug=debug, dry_run=dry_run, reinit=reinit,
                         config_file=settings.config_file, sources=settings.sources, no_color=no_color,
                         env=settings.env)


def _source(ctx: typer.Context, name: str) -> str:
    """'env' when click took the value from the environment variable, else 'flag'."""
    from click.core import ParameterSource

    return "env" if ctx.get_parameter_source(name) == ParameterSource.ENVIRONMENT else "flag"


def _register() -> None:
    from funnelops.cli import apply_cmd, demo_cmd, infra_cmd, init_cmd, lifecycle_cmd, runs_cmd, scheduler_cmd
    from funnelops.cli import query_cmd

    infra_cmd.register(app)
    apply_cmd.register(app)
    runs_cmd.register(app)
    lifecycle_cmd.register(app)
    scheduler_cmd.register(app)
    demo_cmd.register(app)
    init_cmd.register(app)
    query_cmd.register(app)
    from funnelops.cli import watch_cmd

    watch_cmd.register(app)
    from funnelops.cli import ui_cmd

    ui_cmd.register(app)
    from funnelops.cli import lineage_cmd

    lineage_cmd.register(app)
    try:
        from funnelops.cli import data_cmd

        app.add_typer(data_cmd.app, name="data", help="Raw data: load your own files, or generate sample data.")
    except ImportError:  # pragma: no cover - the data command ships with the flows
        pass


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and turn errors into exit codes and readable messages.

    Under `plan --detailed-exitcode` every error exits 1 (usage errors and an invalid project
    included), so 2 means only "there are changes" (Terraform's contract)."""
    from funnelops.cli.argv import detailed_exitcode_requested

    args = list(sys.argv[1:] if argv is None else argv)
    code = _main(args)
    if detailed_exitcode_requested(args) and code not in (0, 2, 130):
        return 1
    return code


def _main(args: list[str]) -> int:
    from funnelops.cli.argv import detailed_exitcode_requested, hoist_global_flags
    from funnelops.cli.context import PlanHasChanges
    from funnelops.errors import EXIT_FAILURE, FunnelopsError, Interrupted

    command = typer.main.get_command(app)
    args = hoist_global_flags(args, command)
    detailed = detailed_exitcode_requested(args)
    flags = args[:args.index("--")] if "--" in args else args  # after `--`, "--json" is an argument
    debug = "--debug" in flags or os.environ.get("FUNNELOPS_DEBUG") == "1"
    as_json = "--json" in flags
    no_color = "--no-color" in flags
    _ASKS_HELP[0] = "--help" in flags or "-h" in flags
    try:
        # standalone mode: typer/click print usage errors themselves and exit 2
        command.main(args=args, prog_name="funnelops")
        return 0
    except PlanHasChanges:
        return 2
    except SystemExit as exc:
        code = exc.code
        code = code if isinstance(code, int) else (0 if code is None else 1)
        return 1 if detailed and code == 2 else code
    except Interrupted as exc:  # Ctrl-C during a wait: the runs go on, the message says how to follow them
        sys.stderr.write(f"Interrupted: {exc.message.removeprefix('interrupted: ')}\n")
        if as_json:
            sys.stdout.write(json.dumps(exc.to_dict(), ensure_ascii=False) + "\n")
        return exc.exit_code
    except FunnelopsError as exc:
        _report(exc.message, exc.hint, exc.to_dict() | ({"exit_code": 1} if detailed else {}), as_json, no_color)
        if debug:
            raise
        return 1 if detailed else exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return 130
    except Exception as exc:  # a bug: say so plainly, keep the trace for --debug
        if debug:
            raise
        _report(f"unexpected {type(exc).__name__}: {exc}", "re-run with --debug for the traceback and report it",
                {"error": "internal", "message": str(exc), "exit_code": EXIT_FAILURE}, as_json, no_color)
        return EXIT_FAILURE


def _report(message: str, hint: str | None, data: dict, as_json: bool, no_color: bool = False) -> None:
    from funnelops.cli.context import Console

    console = Console(as_json, no_color)
    console.error(message, hint)
    console.emit_line(data)


def run() -> None:  # pragma: no cover - console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
