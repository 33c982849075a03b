"""`funnelops data load` (your files, where a flow reads them) and `funnelops data generate` (sample
raw data, made by the project's own generator, in its raw bucket).

The typer part stays tiny; :func:`run_generate` does the work so the main CLI can register this
sub-app and pass the project and home from its own global options.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from funnelops.reporting import Reporter

app = typer.Typer(help="Raw data for the project: load your own files (`data load`) or generate sample data.",
                  no_args_is_help=True)

DEFAULT_ROWS = 200_000
DEFAULT_DAYS = 365
DEFAULT_SEED = 42


def default_range(time_zone: str) -> tuple[date, date]:
    """The last DEFAULT_DAYS days up to today in the project's time zone (so today's runs have data)."""
    from zoneinfo import ZoneInfo

    today = datetime.now(ZoneInfo(time_zone)).date()
    return today - timedelta(days=DEFAULT_DAYS - 1), today


def run_generate(project_path: Path, home: Path, rows: int = DEFAULT_ROWS, start: date | None = None,
                 end: date | None = None, seed: int = DEFAULT_SEED, as_json: bool = False,
                 replace: bool = False, reporter: Reporter | None = None, env: str | None = None) -> dict:
    """Run the project's sample-data generator and print its summary (or the JSON report); returns
    the report dict.

    Refuses (exit 2) when the project declares no generator, or when the raw trees already hold
    files and `replace` is off, and (exit 3) while any run holds a lease; either way nothing is
    written. `reporter` hears the generator's progress (rows written so far). `env`: the environment
    selected on the command line (its overlay names the raw bucket)."""
    from funnelops.lifecycle.sample_data import generate_raw, summary_text
    from funnelops.spec.loader import load_project

    loaded = load_project(project_path, env=env)
    d_start, d_end = default_range(loaded.spec.project.time_zone)
    generated = generate_raw(loaded, Path(home), rows, start or d_start, end or d_end, seed, replace=replace,
                             **({"reporter": reporter} if reporter is not None else {}))
    close = getattr(reporter, "close", None)
    if callable(close):  # a live progress display ends before the summary
        close()
    report: dict = generated.to_dict()
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print(summary_text(generated))
    return report


@app.command("generate")
def generate(
    ctx: typer.Context,
    rows: int = typer.Option(DEFAULT_ROWS, "--rows", min=1, help="Raw rows to write, all CSV entities together "
                             "(the example's generator writes exactly this many)."),
    start: datetime | None = typer.Option(None, "--start", formats=["%Y-%m-%d"], help="First day (default: a year ago)."),
    end: datetime | None = typer.Option(None, "--end", formats=["%Y-%m-%d"], help="Last day (default: today)."),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Same seed, same files."),
    replace: bool = typer.Option(False, "--replace",
                                 help="Delete what the raw bucket's extract folders hold and write the new data "
                                      "(without it, a folder that holds files is refused)."),
) -> None:
    """Write sample raw data with the project's generator (`data: {generator: ...}` in its file).

    The example Funnel's writes daily CSV extracts and monthly target workbooks with a known share
    of dirty rows. The files appear all at once (written aside, then renamed into place); refused while any
    workflow run is in progress."""
    from funnelops.cli.context import esc, get_ctx
    from funnelops.cli.reporter import ConsoleReporter

    app_ctx = get_ctx(ctx)
    if app_ctx.dry_run:
        app_ctx.console.print(f"dry run: would write {rows:,} raw rows into the raw bucket under {esc(app_ctx.home)}")
        app_ctx.console.emit({"dry_run": True, "command": "data generate", "rows": rows})
        return
    run_generate(app_ctx.project_path, app_ctx.home, rows, start.date() if start else None,
                 end.date() if end else None, seed, app_ctx.as_json, replace=replace,
                 reporter=ConsoleReporter(app_ctx), env=app_ctx.env)


@app.command("load")
def load(
    ctx: typer.Context,
    files: list[Path] = typer.Argument(..., metavar="FILE", help="The CSV (or, for a snapshot flow, .xlsx) files to load."),
    flow: str = typer.Option(..., "--flow", help="The trusted flow that reads them (a file name in flows/trusted/)."),
    date_column: str | None = typer.Option(
        None, "--date-column", help="For a dated FILES: the column whose date puts each row into its file "
                                    "(default: the flow's DATE_COLUMN)."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite target files that hold other data "
                                                           "(without it they are refused and nothing is written)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document: the files written and their rows."),
) -> None:
    """Put your own extract files into the raw bucket, where the flow `--flow` reads them.

    When the flow's FILES is dated (`crm/{yyyy}/{mm}/leads_{yyyymmdd}.csv`) the rows are split by
    the date column into one file per day, month or year as its placeholders say, each with the
    header, in the flow's CSV dialect. When it is a snapshot (`crm/leads.csv`, no placeholder) the
    one file is copied as is; runs filter it by the flow's DATE_COLUMN. Workbooks (.xlsx) are
    copied as is, into a snapshot FILES only. Local: written into the raw bucket's folder (each
    file atomically); gcp: uploaded to the raw bucket. Everything is checked first (bad input
    names file and line, exit 2, nothing written); refused while a workflow run is in progress."""
    from rich.table import Table

    from funnelops.cli.context import esc, get_ctx
    from funnelops.lifecycle.data_load import load_data, plan_load

    app_ctx = get_ctx(ctx)
    app_ctx.set_json(as_json)
    loaded = app_ctx.project
    if app_ctx.dry_run:
        report = plan_load(loaded, flow, files, date_column)
        for t in report.targets:
            t.state = "dry run"
    else:
        report = load_data(loaded, app_ctx.backend, flow, files, date_column=date_column, replace=replace)
    if app_ctx.as_json:
        app_ctx.console.emit(report.to_dict())
        return
    table = Table(box=None, header_style="bold")
    for col, justify in (("File in the raw bucket", "left"), ("Rows", "right"), ("State", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for t in report.targets:
        table.add_row(esc(t.name), f"{t.rows:,}", t.state)
    app_ctx.console.out.print(table)
    written = sum(1 for t in report.targets if t.state in ("new", "replaced"))
    app_ctx.console.print(f"flow {esc(flow)}, {report.layout}: {report.rows:,} rows in {len(report.targets)} "
                          f"file(s) of bucket {esc(report.bucket)}, {written} written")
