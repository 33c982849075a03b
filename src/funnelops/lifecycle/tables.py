"""`funnelops tables`: every table, external table and view of the project, layer by layer.

For each: its kind, whether it exists, its rows (exact locally; BigQuery's numRows from the
table's metadata on gcp, nothing for external tables and views there rather than a scan), and the
last period loaded:

- a table partitioned on a column (the refined tables: `period_start`) -> that column's maximum,
  shown at the partitioning's grain (DAY 2024-02-29, MONTH 2024-02, YEAR 2024);
- an external table over hive-partitioned Parquet (the trusted layer: `event_date=2024-02-29/`)
  -> the largest partition folder, read from the bucket listing (no warehouse read at all);
- anything else -> None ("-").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from funnelops.backends.base import Backend
    from funnelops.spec.project import LoadedProject

_GRAIN = {"YEAR": 4, "MONTH": 7, "DAY": 10}  # characters of an ISO date that name the period


def collect_tables(loaded: LoadedProject, backend: Backend) -> list[dict[str, Any]]:
    """One entry per dataset of the project, in the project's order, with its relations."""
    spec = loaded.spec
    entries: list[tuple[str, str, Any]] = ([("table", t.address, t) for t in spec.tables]
                                           + [("external_table", e.address, e) for e in spec.external_tables]
                                           + [("view", v.address, v) for v in spec.views])
    existing: dict[str, set[str]] = {}
    for kind in ("table", "external_table", "view"):
        names = [a for k, a, _ in entries if k == kind]
        existing[kind] = set(backend.handler(kind).observe(names)) if names else set()
    datasets = [d.id for d in spec.datasets] + sorted({a.split(".", 1)[0] for _, a, _ in entries}
                                                     - {d.id for d in spec.datasets})
    layers = {d.id: d.labels.get("layer") for d in spec.datasets}
    out = []
    for ds in datasets:
        rels = [_relation(backend, kind, address, obj, address in existing[kind])
                for kind, address, obj in entries if address.split(".", 1)[0] == ds]
        out.append({"dataset": ds, "layer": layers.get(ds) or ds, "relations": rels})
    return out


def _relation(backend: Backend, kind: str, address: str, obj: Any, exists: bool) -> dict[str, Any]:
    item: dict[str, Any] = {"name": address, "kind": kind, "exists": exists, "rows": None, "last_period": None,
                            "period_column": None}
    if not exists:
        return item
    period_column = grain = None
    if kind == "table" and obj.partitioning is not None:
        period_column, grain = obj.partitioning.field, obj.partitioning.type
    stats = backend.relation_stats(address, kind, period_column)
    item["rows"] = stats.rows
    item["period_column"] = period_column
    item["last_period"] = _at_grain(stats.last_period, grain)
    if kind == "external_table" and obj.hive_partitioning:
        item["period_column"], item["last_period"] = _last_hive_partition(backend, obj.bucket, obj.prefix)
    return item


def _at_grain(value: str | None, grain: str | None) -> str | None:
    if value is None:
        return None
    return value[:_GRAIN[grain]] if grain in _GRAIN and len(value) >= _GRAIN[grain] else value


def _last_hive_partition(backend: Backend, bucket: str, prefix: str) -> tuple[str | None, str | None]:
    """The first partition key under `prefix` and its largest value (`event_date`, `2024-02-29`).

    Quarantine folders live beside the data under the trusted bucket but not under a table's
    prefix, so they are never counted here."""
    base = prefix.strip("/")
    key: str | None = None
    last: str | None = None
    for name in backend.storage.list_objects(bucket, base + "/" if base else ""):
        if not name.endswith(".parquet"):
            continue
        rest = name[len(base):].lstrip("/") if base else name
        first = rest.split("/", 1)[0]
        if "=" not in first:
            continue
        k, v = first.split("=", 1)
        if key is None:
            key = k
        if k == key and (last is None or v > last):
            last = v
    return key, last
