"""Reads for people on BigQuery: `funnelops query` and `funnelops tables` on gcp.

`query` runs one read-only query (checked before it is sent, as views are) as a BigQuery job and
reads at most the rows asked for. `tables` reads each table's metadata (numRows; no scan) and,
for a table partitioned on its period column, the newest partition from
INFORMATION_SCHEMA.PARTITIONS (metadata too), so listing the project costs no bytes scanned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from collections.abc import Callable

from funnelops.backends.gcp import retry
from funnelops.backends.types import QueryResult, RelationStats
from funnelops.errors import BackendError, UsageError

if TYPE_CHECKING:
    from funnelops.backends.gcp.backend import GcpBackend


def read_table(backend: GcpBackend, sql: str, *, max_rows: int | None, timeout: float | None,
               on_wait: Callable[[str], None] | None = None) -> QueryResult:
    """Columns and rows of one read-only query, run as a BigQuery job in the project."""
    import concurrent.futures

    from funnelops.spec.sqlrefs import table_refs

    table_refs(sql)  # one read-only query, or SqlError/UnsafeSql before BigQuery sees it
    bq = backend.clients.bigquery
    try:
        job = bq.query(sql, retry=None)
        result = job.result(timeout=timeout, max_results=None if max_rows is None else max_rows + 1)
        columns = tuple(f.name for f in (result.schema or ()))
        rows = [tuple(r.values()) for r in result]
    except concurrent.futures.TimeoutError:
        raise BackendError(f"the BigQuery query did not finish in {timeout:g}s",
                           "wait longer with --timeout SECONDS; the job goes on in BigQuery "
                           "(see the project's query history)") from None
    except BackendError:
        raise
    except Exception as exc:
        err = retry.describe(exc, "the query", "bigquery.jobs.create")
        if retry.status_of(exc) == 400:  # invalidQuery: a column or table that is not there, a type error
            raise UsageError(f"query: {err.message}", "`funnelops tables` lists the tables and views") from None
        raise err from None
    truncated = max_rows is not None and len(rows) > max_rows
    kept = rows[:max_rows] if max_rows is not None else rows
    return QueryResult(columns, tuple(kept), truncated)


def relation_stats(backend: GcpBackend, name: str, kind: str, period_column: str | None) -> RelationStats:
    """numRows from the table's metadata (None for external tables and views: BigQuery keeps no
    count of them, and `tables` does not scan to make one), and the newest period."""
    from google.api_core import exceptions

    bq = backend.clients.bigquery
    ref = f"{backend.clients.project}.{name}"
    try:
        props: dict[str, Any] = retry.call(lambda: bq.get_table(ref, retry=None)._properties, f"table {name}",
                                           permission="bigquery.tables.get", raw=True)
    except exceptions.NotFound:
        return RelationStats(rows=None)
    except Exception as exc:
        raise retry.describe(exc, f"table {name}", "bigquery.tables.get") from None
    if props.get("type") != "TABLE":
        return RelationStats(rows=None)
    rows = int(props.get("numRows") or 0)
    if not period_column or not rows:
        return RelationStats(rows=rows)
    part = (props.get("timePartitioning") or {}).get("field")
    ds, table = name.split(".", 1)
    if part == period_column:
        sql = (f"SELECT MAX(partition_id) AS last FROM `{backend.clients.project}.{ds}.INFORMATION_SCHEMA.PARTITIONS` "
               f"WHERE table_name = '{table}' AND partition_id NOT IN ('__NULL__', '__UNPARTITIONED__')")
        last = _first(backend, sql)
        return RelationStats(rows=rows, last_period=_partition_date(last) if last is not None else None)
    last = _first(backend, f"SELECT MAX(`{period_column}`) AS last FROM `{ref}`")
    return RelationStats(rows=rows, last_period=_text(last))


def _first(backend: GcpBackend, sql: str) -> Any:
    """The first column of the first row of a query the backend built itself (names from the spec)."""
    try:
        result = backend.clients.bigquery.query(sql, retry=None).result(max_results=1)
        row = next(iter(result), None)
    except Exception as exc:
        raise retry.describe(exc, "the period query", "bigquery.jobs.create") from None
    return None if row is None else row.values()[0]


def _partition_date(partition_id: Any) -> str:
    """A partition id (YYYYMMDD, YYYYMM, YYYY, or YYYYMMDDHH) as the first day of its period."""
    text = str(partition_id)
    if text.isdigit() and len(text) in (4, 6, 8, 10):
        year, month, day = text[:4], text[4:6] or "01", text[6:8] or "01"
        return f"{year}-{month}-{day}"
    return text


def _text(value: Any) -> str | None:
    if value is None:
        return None
    iso = getattr(value, "isoformat", None)
    return iso() if callable(iso) else str(value)
