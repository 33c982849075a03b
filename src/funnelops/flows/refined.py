"""Running refined flows (trusted -> refined): BigQuery SQL, transpiled, on the local warehouse.

The query runs in a private in-memory DuckDB where each trusted external table of the project is
a view over its Parquet folder (exactly what the warehouse's external tables are), under shared
locks on those folders. Only the small result then goes into the warehouse, in one transaction
that deletes the period and inserts it again: the warehouse's write lock is held for the swap
alone, not for the computation, so concurrent workflows wait milliseconds, not minutes.

Query parameters (BigQuery `@name`): `@granularity` ('DAY'|'MONTH'|'YEAR'), `@period_start`
and `@period_end` (DATE, half-open; a `full` run gets the whole calendar).
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import date

from funnelops.errors import BackendError
from funnelops.flows.context import FlowResult, RunContext
from funnelops.flows.partitions import lock_path, shared_locks
from funnelops.flows.raw import FlowSourceError
from funnelops.flows.registry import RefinedFlow, load_refined
from funnelops.backends.local.guard import verify_lease_held
from funnelops.spec.sql_safety import problem_message
from funnelops.spec.sqlrefs import SqlError, table_refs, to_duckdb


def run_refined(ctx: RunContext, names: list[str]) -> list[FlowResult]:
    out = []
    for name in names:
        result = run_refined_flow(ctx, load_refined(ctx.project_dir, name))
        print(result.line(), flush=True)
        out.append(result)
    return out


def _ext_views(ctx: RunContext, con, flow: RefinedFlow) -> list:
    """Create the views this query reads; returns the lock files of their folders."""
    spec = ctx.loaded.spec
    externals = {e.address: e for e in spec.external_tables}
    locks = []
    for ref in table_refs(flow.sql):
        ext = externals.get(ref)
        if ext is None:
            raise FlowSourceError(f"refined flow {flow.name} reads {ref}, which is not an external table of "
                                  f"the project", "refined SQL reads the trusted external tables")
        folder = ctx.home / "buckets" / ext.bucket / ext.prefix.rstrip("/")
        if not any(folder.glob("**/*.parquet")):
            raise FlowSourceError(f"refined flow {flow.name}: no trusted data for {ref} in {folder}",
                                  "run the trusted flows first (--refined_flows=false)")
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{ext.dataset}"')
        pattern = str(folder / "**" / "*.parquet").replace("'", "''")
        con.execute(f'CREATE OR REPLACE VIEW "{ext.dataset}"."{ext.name}" AS SELECT * FROM '
                    f"read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)")
        locks.append(lock_path(ctx.home, ext.bucket, ext.prefix.rstrip("/")))
    return locks


def run_refined_flow(ctx: RunContext, flow: RefinedFlow) -> FlowResult:
    from funnelops.backends.local.warehouse_conn import confined_memory, home_dirs

    if ctx.granularity not in flow.granularities:
        return FlowResult("refined", flow.name, skipped=f"runs for {', '.join(flow.granularities)} only")
    t0 = time.perf_counter()
    start, end = ctx.bounds()
    try:
        sql = to_duckdb(flow.sql)  # one query, checked again as DuckDB text, or refused here
    except SqlError as exc:
        raise FlowSourceError(f"refined flow {flow.name} ({flow.path}): {problem_message(exc)}",
                              "a refined SQL file is one SELECT; run `funnelops validate`") from None
    params = {"granularity": ctx.granularity, "period_start": date.fromisoformat(start),
              "period_end": date.fromisoformat(end)}
    used = {k: v for k, v in params.items() if re.search(r"\$" + k + r"\b", sql)}
    staged = ctx.tmp_root / f"refined-{flow.name}-{uuid.uuid4().hex}.parquet"
    mem = confined_memory(home_dirs(ctx.home), ctx.time_zone)  # reads the buckets, writes tmp only
    try:
        locks = _ext_views(ctx, mem, flow)
        with shared_locks(locks):
            mem.execute(f"CREATE TABLE result AS {sql}", used)
        rows = mem.execute("SELECT count(*) FROM result").fetchone()[0]
        mem.execute(f"COPY result TO '{str(staged).replace(chr(39), chr(39) * 2)}' (FORMAT parquet)")
    finally:
        mem.close()
    try:
        _swap_into_warehouse(ctx, flow, staged, start, end)
    finally:
        staged.unlink(missing_ok=True)
    return FlowResult("refined", flow.name, read=rows, kept=rows, quarantined=0,
                      seconds=round(time.perf_counter() - t0, 3))


def _swap_into_warehouse(ctx: RunContext, flow: RefinedFlow, staged, start: str, end: str) -> None:
    from funnelops.backends.local.warehouse_conn import warehouse

    dataset, table = flow.table_for(ctx.granularity)
    with warehouse(ctx.warehouse_path, write=True, time_zone=ctx.time_zone) as con:
        cols = [r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            [dataset, table]).fetchall()]
        if not cols:
            raise BackendError(f"refined flow {flow.name}: table {dataset}.{table} does not exist in the warehouse",
                               "create the infrastructure first (`funnelops job create-infra`)")
        where, args = "", []
        if flow.replace == "period":
            if "period_start" not in cols:
                raise BackendError(f"refined flow {flow.name}: {dataset}.{table} has no period_start column to "
                                   f"replace a period by", "use `-- replace: all` or add the column")
            where, args = "WHERE period_start >= ? AND period_start < ?", [start, end]
            if "granularity" in cols:
                where += " AND granularity = ?"
                args.append(ctx.granularity)
        src = str(staged).replace("'", "''")
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f'DELETE FROM "{dataset}"."{table}" {where}', args)
            con.execute(f'INSERT INTO "{dataset}"."{table}" BY NAME SELECT * FROM read_parquet(\'{src}\')')
            verify_lease_held(ctx.home)  # commit point: only the lease holder publishes
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
