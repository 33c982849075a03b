"""`funnelops query`: one read-only query on the project's warehouse, through the backend contract.

The SQL is BigQuery's dialect on both backends (the local warehouse transpiles it to DuckDB), and
it must be exactly one query: SELECT or WITH ... SELECT. Anything else (DDL, DML, a second
statement, SHOW/DESCRIBE, a table function reading files) is refused here, with the line of
the SQL that was refused, before the SQL reaches an engine: the backends check it once more and
the local connection is read-only besides.

Names: a table is named `dataset.table` (`funnel_refined.funnel_daily`), on both backends. An
unqualified name is not resolved against any default dataset (the local warehouse keeps each
dataset as a DuckDB schema and BigQuery has no default dataset for a query), so it is refused
unless it is a WITH name; `funnelops tables` lists the names there are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from collections.abc import Callable

from funnelops.errors import UsageError

if TYPE_CHECKING:
    from funnelops.backends.base import Backend, QueryResult

LIST_HINT = "list the project's tables and views with `funnelops tables`"
_LISTING = ("SHOW", "DESCRIBE", "DESC", "SUMMARIZE", "PRAGMA")


def check_read_only(sql: str) -> None:
    """Refuse anything but one read-only query, naming the line of the SQL that was refused."""
    from funnelops.spec.sql_safety import parse_query
    from funnelops.spec.sqlrefs import SqlError

    if not sql.strip():
        raise UsageError("the query is empty", 'give one query: funnelops query "SELECT ... FROM dataset.table"')
    import logging

    first = sql.split(None, 1)[0].upper()
    if first in _LISTING:
        raise UsageError(f"query line 1: {first} is not a query; only one SELECT or WITH query runs here",
                         LIST_HINT[0].upper() + LIST_HINT[1:], line=1)
    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its "falling back to a Command" warning
    try:
        parse_query(sql, "bigquery")
    except SqlError as exc:
        line = exc.line
        where = f"query line {line}" if line else "query"
        text = sql.splitlines()[line - 1].strip() if line and 0 < line <= len(sql.splitlines()) else ""
        if "neither a `dataset.table`" in str(exc):
            hint = f"name tables as dataset.table (e.g. funnel_refined.funnel_daily); {LIST_HINT}"
        else:
            hint = "funnelops query runs one read-only SELECT or WITH query; change data through the flows"
        raise UsageError(f"{where}: {exc}" + (f" ({text[:80]})" if text else ""), hint,
                         line=line) from None


def run_query(backend: Backend, sql: str, *, limit: int | None = None, timeout: float | None = None,
              on_wait: Callable[[str], None] | None = None) -> QueryResult:
    """Check `sql` (UsageError, exit 2, if it is not one read-only query), then run it on the
    backend's warehouse: at most `limit` rows, waiting up to `timeout` seconds for the warehouse."""
    check_read_only(sql)
    if limit is not None and limit < 0:
        raise UsageError(f"--limit must be 0 or more, not {limit}", "use --limit N, or leave it out for every row")
    return backend.read_query_table(sql, max_rows=limit, timeout=timeout, on_wait=on_wait)
