"""Reads for people on the local warehouse: `funnelops query` and `funnelops tables`.

Both open DuckDB read-only under the warehouse's shared lock (warehouse_conn.py), so they never
block each other and never change anything; while a run or an apply writes the warehouse they
wait (with backoff) up to a timeout, then fail naming the runs in progress, instead of DuckDB's
"could not set lock on file".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from collections.abc import Callable

from funnelops.backends.local.warehouse import rel
from funnelops.backends.local.warehouse_conn import DEFAULT_TIMEOUT_S, WarehouseBusy, warehouse
from funnelops.backends.types import QueryResult, RelationStats
from funnelops.errors import UsageError

if TYPE_CHECKING:
    from funnelops.backends.local import LocalBackend


def read_table(backend: LocalBackend, sql: str, *, max_rows: int | None, timeout: float | None,
               on_wait: Callable[[str], None] | None) -> QueryResult:
    """Columns and rows of one read-only query (BigQuery dialect, checked and transpiled first)."""
    from funnelops.spec.sqlrefs import to_duckdb

    import duckdb

    duck = to_duckdb(sql)  # one read-only query, or SqlError/UnsafeSql before DuckDB sees it
    wait = DEFAULT_TIMEOUT_S if timeout is None else timeout
    try:
        with warehouse(backend.paths.warehouse, write=False, time_zone=backend.time_zone, timeout=wait,
                       on_wait=on_wait) as con:
            cur = con.execute(duck)
            columns = tuple(d[0] for d in (cur.description or ()))
            rows = cur.fetchall() if max_rows is None else cur.fetchmany(max_rows + 1)
    except WarehouseBusy:
        raise _busy(backend, wait) from None
    except (duckdb.BinderException, duckdb.CatalogException, duckdb.ParserException,
            duckdb.ConversionException) as exc:
        raise _bad_query(exc) from None
    truncated = max_rows is not None and len(rows) > max_rows
    kept = rows[:max_rows] if max_rows is not None else rows
    return QueryResult(columns, tuple(tuple(r) for r in kept), truncated)


def _busy(backend: LocalBackend, waited: float) -> WarehouseBusy:
    """The timeout's error, naming the runs that may be writing (what to wait for)."""
    runs = [f"run {r.id} of {r.workflow}" for r in backend.runtime.active()]
    who = f" ({', '.join(runs)} in progress)" if runs else " (an apply or a run is writing it)"
    return WarehouseBusy(f"the warehouse {backend.paths.warehouse} stayed busy for {waited:g}s{who}",
                         "retry when the writer ends (`funnelops runs` shows the runs), or wait longer with "
                         "--timeout SECONDS")


def _bad_query(exc: Exception) -> UsageError:
    """A query that names what is not there (a column, a table) is the caller's to fix: exit 2,
    with DuckDB's own pointer to the place and its suggestion (`Did you mean ...`)."""
    text = str(exc).strip()
    return UsageError(f"query: {text}", "`funnelops tables` lists the tables and views; "
                      "`funnelops query \"SELECT * FROM dataset.table LIMIT 1\"` shows a table's columns")


def relation_stats(backend: LocalBackend, name: str, kind: str, period_column: str | None) -> RelationStats:
    """Exact rows and the period column's maximum, in one read. An external table whose folder
    has no Parquet yet reads as 0 rows (DuckDB's "no files found"), not as an error; a view over
    one, or one whose source no longer binds, has no count (None)."""
    import duckdb

    select = "COUNT(*)" + (f", MAX({_q(period_column)})" if period_column else "")
    try:
        with warehouse(backend.paths.warehouse, write=False, time_zone=backend.time_zone) as con:
            row: Any = con.execute(f"SELECT {select} FROM {rel(name)}").fetchone()
    except duckdb.IOException as exc:
        if "no files found" in str(exc).lower():  # over a bucket folder with no Parquet yet
            return RelationStats(rows=0 if kind == "external_table" else None)
        raise
    except (duckdb.CatalogException, duckdb.BinderException):
        return RelationStats(rows=None)  # not there (yet), or a view whose source changed: shown as "-"
    last = row[1] if period_column and row[1] is not None else None
    return RelationStats(rows=int(row[0]), last_period=_text(last))


def _q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


def _text(value: Any) -> str | None:
    if value is None:
        return None
    iso = getattr(value, "isoformat", None)
    return iso() if callable(iso) else str(value)
