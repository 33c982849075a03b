"""A refined job as a DuckDB transaction on the local warehouse.

The query, transpiled from BigQuery SQL, runs in a private in-memory DuckDB where each trusted
external table it reads is a view over its Parquet folder (exactly what the warehouse's external
tables are), under shared locks on those folders. Only the small result then goes into the
warehouse, in one transaction that deletes the job's predicate and inserts the rows again: the
warehouse's write lock is held for the swap alone, not for the computation, so concurrent
workflows wait milliseconds, not minutes. The commit-point check runs inside the transaction,
right before COMMIT.
"""

from __future__ import annotations

import re
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from collections.abc import Iterator

from funnelops.errors import BackendError
from funnelops.flows.context import RunContext
from funnelops.flows.engines.base import FolderStore, Verify
from funnelops.flows.refined_runner import RefinedJob, sql_problem
from funnelops.flows.source_checks import FlowSourceError
from funnelops.spec.sqlrefs import SqlError, to_duckdb


class DuckRefined:
    """:class:`funnelops.flows.engines.base.RefinedEngine` on DuckDB and local folders."""

    def __init__(self, store: FolderStore, time_zone: str) -> None:
        self.store, self.time_zone = store, time_zone

    @classmethod
    @contextmanager
    def open(cls, ctx: RunContext, store: FolderStore) -> Iterator[DuckRefined]:
        yield cls(store, ctx.time_zone)

    def run(self, job: RefinedJob, before_commit: Verify) -> int:
        try:
            sql = to_duckdb(job.sql)  # one query, checked again as DuckDB text, or refused here
        except SqlError as exc:
            raise sql_problem(job.flow, exc) from None
        used = {k: v for k, v in job.params.items() if re.search(r"\$" + k + r"\b", sql)}
        staged = self.store.scratch / f"refined-{job.name}-{uuid.uuid4().hex}.parquet"
        mem = self.store.memory(self.time_zone)  # reads the buckets, writes scratch only
        try:
            tables = self._views(mem, job)
            with self.store.reading(tables):
                mem.execute(f"CREATE TABLE result AS {sql}", used)
            rows = mem.execute("SELECT count(*) FROM result").fetchone()[0]
            mem.execute(f"COPY result TO '{str(staged).replace(chr(39), chr(39) * 2)}' (FORMAT parquet)")
        finally:
            mem.close()
        try:
            self._swap_into_warehouse(job, staged, before_commit)
        finally:
            staged.unlink(missing_ok=True)
        return rows

    def _views(self, con: Any, job: RefinedJob) -> list[tuple[str, str]]:
        """Create the views the query reads; returns the (bucket, table) pairs to lock."""
        tables = []
        for ext in job.reads:
            folder = self.store.bucket_dir(ext.bucket) / ext.prefix.rstrip("/")
            if not any(folder.glob("**/*.parquet")):
                raise FlowSourceError(f"refined flow {job.name}: no trusted data for {ext.address} in {folder}",
                                      "run the trusted flows first (--refined_flows=false)")
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{ext.dataset}"')
            pattern = str(folder / "**" / "*.parquet").replace("'", "''")
            con.execute(f'CREATE OR REPLACE VIEW "{ext.dataset}"."{ext.name}" AS SELECT * FROM '
                        f"read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)")
            tables.append((ext.bucket, ext.prefix.rstrip("/")))
        return tables

    def _swap_into_warehouse(self, job: RefinedJob, staged: Path, before_commit: Verify) -> None:
        dataset, table = job.dataset, job.table
        with self.store.warehouse(self.time_zone) as con:
            cols = [r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
                [dataset, table]).fetchall()]
            if not cols:
                raise BackendError(f"refined flow {job.name}: table {dataset}.{table} does not exist in the warehouse",
                                   "create the infrastructure first (`funnelops job create-infra`)")
            where = job.predicate(cols)
            clause = ("WHERE " + " AND ".join(f"{c.column} {c.op} ?" for c in where)) if where else ""
            args = [_text(job.params[c.param]) for c in where]
            src = str(staged).replace("'", "''")
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f'DELETE FROM "{dataset}"."{table}" {clause}', args)
                con.execute(f'INSERT INTO "{dataset}"."{table}" BY NAME SELECT * FROM read_parquet(\'{src}\')')
                before_commit()  # commit point: only the lease holder publishes
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise


def _text(value: Any) -> Any:
    """Dates as ISO text, as the warehouse has always been given them (DuckDB casts on compare)."""
    return value.isoformat() if hasattr(value, "isoformat") else value
