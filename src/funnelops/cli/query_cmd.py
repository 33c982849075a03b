"""`funnelops query "SQL"` and `funnelops tables`: look at the data the platform made."""

from __future__ import annotations

import csv
import sys
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import typer

from funnelops.cli.context import AppContext, esc, get_ctx

FORMATS = ("table", "csv", "json")

QUERY_HELP = """Run one read-only SQL query on the project's warehouse and print the rows.

\b
  funnelops query "SELECT * FROM funnel_refined.funnel_monthly LIMIT 10"
  funnelops query "SELECT channel, SUM(volume) FROM funnel_refined.funnel_yearly GROUP BY 1" --format csv

The SQL is BigQuery's dialect on both backends: locally it runs on the home's DuckDB file (opened
read-only, transpiled from BigQuery's dialect), on gcp as a BigQuery job in the project. Name
tables as dataset.table: an unqualified name is not resolved against any dataset (locally a
dataset is a DuckDB schema), so it is refused unless it is a WITH name; `funnelops tables`
lists the names. Only one SELECT or WITH query runs: DDL, DML, SHOW/DESCRIBE, a second
statement or a table function reading files is refused before it reaches the warehouse (exit 2,
naming the line).

While a run or an apply writes the local warehouse, the query waits (retrying with backoff) up
to --timeout seconds, then fails naming the runs in progress.

\b
Output: --format table (fits the terminal; columns that do not fit are left out and named),
csv (a header row, then the rows), or json ({columns, rows: [{column: value}], row_count,
truncated}); --json is --format json. At most --limit rows (0: all); `truncated` says when more
were left out.

\b
Exit codes: 0 ok, 1 the warehouse failed or stayed busy, 2 not one read-only query / bad option.
"""

TABLES_HELP = """Every table, external table and view of the project, layer by layer (one dataset each).

For each: its kind, whether it exists, its rows and the last period loaded. Rows are exact on the
local backend (a count); on gcp they are BigQuery's numRows from the table's metadata, and
external tables and views show "-" rather than being scanned. The last period is the largest value
of the table's partitioning column (refined tables: period_start, shown at the partitioning's
grain), or for a hive-partitioned external table the largest partition folder in its bucket
(trusted tables: event_date=...); "-" when there is none.

\b
--json: [{dataset, layer, relations: [{name, kind, exists, rows, last_period, period_column}]}]
Exit codes: 0 ok, 1 the warehouse failed, 2 invalid project.
"""


def register(app: typer.Typer) -> None:
    app.command("query", help=QUERY_HELP)(query)
    app.command("tables", help=TABLES_HELP)(tables)


def query(
    ctx: typer.Context,
    sql: str = typer.Argument(..., help="One SELECT or WITH query (BigQuery dialect; tables as dataset.table)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, csv or json."),
    limit: int = typer.Option(1000, "--limit", "-n", min=0, help="Print at most this many rows (0: all)."),
    timeout: float = typer.Option(60.0, "--timeout", min=0.0, help="Seconds to wait for a busy warehouse "
                                  "(local: while a run writes it) or for the BigQuery job."),
    as_json: bool = typer.Option(False, "--json", help="The same as --format json."),
) -> None:
    from funnelops.errors import UsageError
    from funnelops.lifecycle.query import check_read_only, run_query

    app = get_ctx(ctx)
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format '{fmt}'", "use --format table, csv or json")
    if as_json or app.as_json:
        fmt = "json"
    app.set_json(fmt == "json")
    check_read_only(sql)  # exit 2 before the project's backend is even opened
    if app.dry_run:
        app.console.print(f"dry run: would run the query on the {esc(app.backend_kind)} warehouse")
        app.console.emit({"dry_run": True, "command": "query", "sql": sql})
        return

    def waiting(message: str) -> None:
        app.console.err.print(esc(f"{message} (--timeout {timeout:g}) ..."))

    result = run_query(app.backend, sql, limit=limit or None, timeout=timeout, on_wait=waiting)
    if fmt == "json":
        app.console.emit({"columns": list(result.columns), "row_count": len(result.rows),
                          "truncated": result.truncated,
                          "rows": [dict(zip(result.columns, map(json_value, r))) for r in result.rows]})
        return
    if fmt == "csv":
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(result.columns)
        out.writerows([("" if v is None else text_value(v)) for v in r] for r in result.rows)
        sys.stdout.flush()
    else:
        _print_table(app, list(result.columns), result.rows)
    if result.truncated:
        app.console.err.print(f"(only the first {len(result.rows):,} rows; raise --limit, or --limit 0 for all)")


def _print_table(app: AppContext, columns: list[str], rows: tuple[tuple[Any, ...], ...]) -> None:
    from funnelops.cli.fit import Col, fit_table

    numeric = [bool(rows) and all(isinstance(r[i], (int, float, Decimal)) or r[i] is None for r in rows)
               for i in range(len(columns))]
    cols = [Col(name, keep=i, justify="right" if numeric[i] else "left", shrink=not numeric[i], min_width=6)
            for i, name in enumerate(columns)]
    cells: list[list[Any]] = [["[dim]NULL[/]" if v is None else esc(text_value(v)) for v in r] for r in rows]
    table, left_out = fit_table(cols, cells, app.console.out.width, shrink_first=True)
    app.console.out.print(table)
    app.console.err.print(f"({len(rows):,} row{'s' if len(rows) != 1 else ''})")
    if left_out:
        app.console.err.print(esc(f"({', '.join(left_out)} left out to fit {app.console.out.width} columns; "
                                  "--format csv or json has every column)"))


def text_value(value: Any) -> str:
    """A value as one line of text: dates and times in ISO form, numbers as Python writes them."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return str(value)


def json_value(value: Any) -> Any:
    """A value JSON can hold: numbers stay numbers (a DECIMAL too), times are ISO 8601 text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return value


def tables(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    from funnelops.lifecycle.tables import collect_tables

    app = get_ctx(ctx)
    app.set_json(as_json)
    layers = collect_tables(app.project, app.backend)
    if app.as_json:
        app.console.emit(layers)
        return
    _print_tables(app, layers)


def _print_tables(app: AppContext, layers: list[dict[str, Any]]) -> None:
    from rich.padding import Padding

    from funnelops.cli.fit import Col, fit_table

    kinds = {"table": "table", "external_table": "external", "view": "view"}
    cols = [Col("name", keep=0, shrink=True, min_width=12), Col("kind", keep=30), Col("rows", keep=0, justify="right"),
            Col("last period", keep=10), Col("exists", keep=20)]
    app.console.print(esc(f"{app.project.spec.project.id} on the {app.backend.name} backend: "
                          f"{app.backend.warehouse_location()}"))
    for layer in layers:
        app.console.print("", f"[bold]{esc(layer['dataset'])}[/]" + (f" ({esc(layer['layer'])} layer)"
                                                                    if layer["layer"] != layer["dataset"] else ""))
        rows: list[list[Any]] = []
        for r in layer["relations"]:
            n = "-" if r["rows"] is None else f"{r['rows']:,}"
            rows.append([esc(r["name"].split(".", 1)[1]), kinds.get(r["kind"], r["kind"]), n,
                         esc(r["last_period"] or "-"), "yes" if r["exists"] else "[yellow]no[/]"])
        if not rows:
            app.console.print("  (nothing declared)")
            continue
        table, _ = fit_table(cols, rows, app.console.out.width - 2)
        app.console.out.print(Padding(table, (0, 0, 0, 2), expand=False))
