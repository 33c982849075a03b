"""A minimal stand-in for `create-infra` on the local backend, for tests and the bench only.

The flows need the refined native tables in the warehouse (and, for ad-hoc queries, the trusted
external tables as views). The real infrastructure comes from the plan/apply of the lifecycle;
this helper creates the same objects directly so the data flows can be exercised on their own.
"""

from __future__ import annotations

from pathlib import Path

DUCK_TYPES = {"STRING": "VARCHAR", "BYTES": "BLOB", "INTEGER": "BIGINT", "INT64": "BIGINT",
              "FLOAT": "DOUBLE", "FLOAT64": "DOUBLE", "NUMERIC": "DECIMAL(38, 9)",
              "BIGNUMERIC": "DECIMAL(38, 9)", "BOOLEAN": "BOOLEAN", "BOOL": "BOOLEAN",
              "TIMESTAMP": "TIMESTAMPTZ", "DATE": "DATE", "TIME": "TIME", "DATETIME": "TIMESTAMP",
              "JSON": "JSON"}


def ensure_local_infra(loaded, home: Path, *, external_views: bool = True) -> None:
    """Create the datasets (schemas), native tables and, where data exists, the external-table views."""
    from funnelops.backends.local.warehouse_conn import warehouse

    spec = loaded.spec
    home = Path(home)
    with warehouse(home / "warehouse.duckdb", write=True, time_zone=spec.project.time_zone) as con:
        for d in spec.datasets:
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{d.id}"')
        for t in spec.tables:
            cols = ", ".join(f'"{c.name}" {DUCK_TYPES[c.type]}' + (" NOT NULL" if c.mode == "REQUIRED" else "")
                             for c in loaded.table_schemas[t.address])
            con.execute(f'CREATE TABLE IF NOT EXISTS "{t.dataset}"."{t.name}" ({cols})')
        if not external_views:
            return
        for e in spec.external_tables:
            folder = home / "buckets" / e.bucket / e.prefix.rstrip("/")
            if not any(folder.glob("**/*.parquet")):
                continue
            pattern = str(folder / "**" / "*.parquet").replace("'", "''")
            con.execute(f'CREATE OR REPLACE VIEW "{e.dataset}"."{e.name}" AS SELECT * FROM '
                        f"read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)")
