"""Running trusted flows (raw -> trusted) locally: SQLFrame on an in-memory DuckDB.

Per flow: stage the period's raw files (runtime), call the flow's `transform` (user code, PySpark
API) which returns every input row with a `dq_rule` (NULL = keep), add the runtime's own rule
(`date_in_period`: a row dated outside the period would otherwise land in a partition this run
does not own), materialize once, then write kept rows as hive partitions and failing rows to
`<trusted>/_quarantine/<flow>/extract_date=.../` with rule, source file and line, and swap both
in atomically. Counting comes from the materialized table, so read = kept + quarantined holds by
construction.

A `full` run whose inputs (flow code, runtime code, every source file's size and mtime) match
the last full build of that flow reuses it instead of rebuilding: the initial load starts the
DAY, MONTH and YEAR workflows at once, all with `full`, and the output is a function of those
inputs. Builders of one flow are serialized by a lock, so the first builds and the others reuse.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import time
import uuid
from pathlib import Path

from funnelops.flows import raw as rawmod
from funnelops.flows.context import FlowResult, RunContext
from funnelops.flows.engine import DuckEngine, activate, api
from funnelops.backends.local.warehouse_conn import file_lock
from funnelops.errors import BackendError
from funnelops.flows.partitions import lock_path, replace_partitions
from funnelops.flows.raw import FlowSourceError
from funnelops.flows.registry import load_trusted
from funnelops.backends.local.guard import verify_lease_held

QUARANTINE = "_quarantine"
MANIFESTS = "_manifests"


def add_period_rule(checked, partition: str, start: str, end: str):
    """Quarantine rows whose partition value falls outside [start, end) (PySpark API)."""
    F = api()["F"]
    col = F.col(partition)
    outside = (col < F.lit(start).cast("date")) | (col >= F.lit(end).cast("date"))
    return checked.withColumn("dq_rule", F.coalesce(F.col("dq_rule"), F.when(outside, F.lit("date_in_period"))))


def raw_records(staged_df, columns):
    """`(_file_index, _row, _raw_record)` of every staged row (PySpark API, both engines).

    `dq.finish` keeps the raw text of rows that failed a flow rule only; a row the runtime's
    period rule quarantines afterwards gets its text back from here, so every quarantined row
    can be traced to its delivered record.
    """
    from funnelops.flows import dq

    return staged_df.select(*dq.lineage(columns))


def run_trusted(ctx: RunContext, names: list[str]) -> list[FlowResult]:
    if not names:
        return []
    activate("duckdb")
    engine = DuckEngine(ctx.time_zone, temp_dir=str(ctx.tmp_root / "duckdb-spill"))
    try:
        out, pending = [], list(names)
        while pending:
            # Take the first flow whose build lock is free (concurrent runs of other workflows
            # build the others meanwhile); when all are busy, wait for the first one.
            for name in pending:
                result = run_trusted_flow(ctx, engine, name, wait=False)
                if result is not None:
                    break
            else:
                name = pending[0]
                result = run_trusted_flow(ctx, engine, name, wait=True)
            pending.remove(name)
            print(result.line(), flush=True)
            out.append(result)
        return out
    finally:
        engine.close()


def run_trusted_flow(ctx: RunContext, engine: DuckEngine, name: str, wait: bool = True) -> FlowResult | None:
    """Run one flow; with `wait=False`, return None at once if another run is building it."""
    t0 = time.perf_counter()
    module = load_trusted(ctx.project_dir, name)
    raw_root, trusted_root = ctx.bucket_dir("raw"), ctx.bucket_dir("trusted")
    daily = rawmod._is_daily(module.FILES)
    period = None if ctx.full else (ctx.period if daily else ctx.period.widen_to_months())
    files = rawmod.source_files(raw_root, module.FILES, period)
    if not files:
        raise FlowSourceError(
            f"trusted flow {name}: missing source file {raw_root.name}/{rawmod.expected_files(module.FILES, period)}",
            "generate data with `funnelops data generate`, or pick a period that has data (--period)")
    manifest = trusted_root / MANIFESTS / f"{name}.json"
    build_lock = lock_path(ctx.home, trusted_root.name, f"_build/{name}")
    try:
        held = file_lock(build_lock, exclusive=True, **({} if wait else {"timeout": 0}))
        held.__enter__()
    except BackendError:
        return None
    with contextlib.ExitStack() as stack:
        stack.push(held.__exit__)
        fingerprint = _fingerprint(module, files, period)
        reused = _reuse(manifest, fingerprint, trusted_root / module.TARGET) if period is None else None
        if reused is not None:
            reused.seconds = round(time.perf_counter() - t0, 3)
            return reused
        manifest.unlink(missing_ok=True)
        result = _build(ctx, engine, name, module, files, period, raw_root, trusted_root)
        if period is None:
            _save_manifest(manifest, fingerprint, result, trusted_root / module.TARGET)
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


def _fingerprint(module, files, period) -> str:
    h = hashlib.sha256()
    here = Path(__file__).parent
    for code in (Path(module.__file__), *(here / f for f in ("dq.py", "raw.py", "source_checks.py", "trusted.py"))):
        h.update(code.read_bytes())
    h.update(repr(None if period is None else (period.start, period.end)).encode())
    for _, p in files:
        st = p.stat()
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _reuse(manifest: Path, fingerprint: str, table_dir: Path) -> FlowResult | None:
    try:
        m = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if m.get("fingerprint") != fingerprint or not all((table_dir / p).is_dir() for p in m.get("partitions", [])):
        return None
    r = m["result"]
    return FlowResult("trusted", r["flow"], read=r["read"], kept=r["kept"], quarantined=r["quarantined"],
                      rules=r.get("rules", {}), reused=True)


def _save_manifest(manifest: Path, fingerprint: str, result: FlowResult, table_dir: Path) -> None:
    manifest.parent.mkdir(parents=True, exist_ok=True)
    parts = sorted(p.name for p in table_dir.iterdir() if p.is_dir()) if table_dir.is_dir() else []
    body = {"fingerprint": fingerprint, "partitions": parts,
            "result": {k: getattr(result, k) for k in ("flow", "read", "kept", "quarantined", "rules")}}
    tmp = manifest.with_name(manifest.name + f".{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(body), encoding="utf-8")
    tmp.replace(manifest)


def _build(ctx, engine, name, module, files, period, raw_root: Path, trusted_root: Path) -> FlowResult:
    con = engine.con
    stg, chk = f"stg_{name}", f"chk_{name}"
    staged = rawmod.stage(con, stg, raw_root, files, tuple(module.COLUMNS),
                          allow_empty=getattr(module, "ALLOW_EMPTY", False))
    checked = module.transform(engine.table(staged.view))
    if period is not None:
        checked = add_period_rule(checked, module.PARTITION, period.start.isoformat(), period.end.isoformat())
    try:
        engine.materialize(checked, chk)
    except Exception as exc:  # DuckDB names the file when a CSV cannot be decoded at all
        raise FlowSourceError(f"trusted flow {name}: cannot read its source files: {exc}") from None
    # checked on the result table: asking SQLFrame for `df.columns` costs a query rebuild
    have = {r[0] for r in con.execute(f"DESCRIBE {chk}").fetchall()}
    missing = [c for c in (*module.OUTPUT, "dq_rule", "_file_index", "_row", "_raw_record") if c not in have]
    if missing:
        raise FlowSourceError(f"trusted flow {name}: transform() output lacks {', '.join(missing)}",
                              "end the flow with dq.finish(df, OUTPUT)")
    rawmod.check_complete(con, staged, chk, name)
    if period is not None:
        _restore_raw_records(engine, staged, chk, tuple(module.COLUMNS))

    work = ctx.tmp_root / f"{name}-{uuid.uuid4().hex}"
    work.mkdir(parents=True)
    try:
        result = _write(ctx, con, name, module, staged, chk, work, trusted_root, period)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for obj in (chk, f"{stg}_files", f"{stg}_rej", f"{stg}_rejscan"):
            con.execute(f"DROP TABLE IF EXISTS {obj}")
        con.execute(f"DROP {'VIEW' if staged.kind == 'csv' else 'TABLE'} IF EXISTS {stg}")
    return result


def _restore_raw_records(engine, staged, chk: str, columns: tuple[str, ...]) -> None:
    """Give rows quarantined by the period rule their raw text (only when there are such rows:
    it reads the staged input again)."""
    con = engine.con
    if not con.execute(f"SELECT count(*) FROM {chk} WHERE dq_rule = 'date_in_period' "
                       f"AND _raw_record IS NULL").fetchone()[0]:
        return
    src = engine.to_sql(raw_records(engine.table(staged.view), columns))
    con.execute(f"UPDATE {chk} SET _raw_record = r._raw_record FROM ({src}) r "
                f"WHERE {chk}.dq_rule = 'date_in_period' AND {chk}._raw_record IS NULL "
                f"AND {chk}._file_index = r._file_index AND {chk}._row = r._row")


def _write(ctx, con, name, module, staged, chk, work: Path, trusted_root: Path, period) -> FlowResult:
    key = module.PARTITION
    out_cols = ", ".join(f'"{c}"' for c in module.OUTPUT)
    data_dir, q_dir = work / "data", work / "quarantine"
    # paths are SQL string literals, escaped: a home may contain a quote (`/home/o'brien`)
    con.execute(f"COPY (SELECT {out_cols} FROM {chk} WHERE dq_rule IS NULL) TO {rawmod._sql_str(str(data_dir))} "
                f"(FORMAT parquet, PARTITION_BY ({key}), FILENAME_PATTERN 'part-{{i}}', OVERWRITE_OR_IGNORE)")
    con.execute(f"""
        COPY (
          SELECT c.dq_rule AS rule, f.source_file, l.source_line, c._raw_record AS raw_record,
                 '{name}' AS flow, f.extract_date
          FROM {chk} c JOIN ({rawmod.line_sql(staged, chk)}) l USING (_file_index, _row)
          JOIN {staged.view}_files f USING (_file_index)
          UNION ALL
          SELECT r.rule, f.source_file, CAST(r.line AS BIGINT), r.raw_record, '{name}', f.extract_date
          FROM ({staged.rejects}) r JOIN {staged.view}_files f USING (_file_index)
        ) TO {rawmod._sql_str(str(q_dir))} (FORMAT parquet, PARTITION_BY (extract_date), FILENAME_PATTERN 'part-{{i}}', OVERWRITE_OR_IGNORE)""")
    rules = dict(con.execute(f"SELECT dq_rule, count(*) FROM {chk} WHERE dq_rule IS NOT NULL GROUP BY 1").fetchall())
    for rule, n in con.execute(f"SELECT rule, count(*) FROM ({staged.rejects}) GROUP BY 1").fetchall():
        rules[rule] = rules.get(rule, 0) + n
    total, kept = con.execute(f"SELECT count(*), count(*) FILTER (WHERE dq_rule IS NULL) FROM {chk}").fetchone()
    rejected = sum(n for r, n in rules.items()) - (total - kept)

    if period is None:
        in_scope = lambda d: True  # noqa: E731  full: every partition is rebuilt
    else:
        in_scope = lambda d: period.start <= d < period.end  # noqa: E731
    bucket = trusted_root.name
    # Commit points: only the lease holder publishes, checked under the table's exclusive lock.
    still_ours = lambda: verify_lease_held(ctx.home)  # noqa: E731
    replace_partitions(trusted_root / module.TARGET, data_dir, key, in_scope,
                       lock_path(ctx.home, bucket, module.TARGET), ctx.tmp_root, before_commit=still_ours)
    extracted = {d for _, d, _ in staged.files}
    replace_partitions(trusted_root / QUARANTINE / name, q_dir, "extract_date",
                       (lambda d: True) if period is None else (lambda d: d in extracted),
                       lock_path(ctx.home, bucket, f"{QUARANTINE}/{name}"), ctx.tmp_root,
                       before_commit=still_ours)
    return FlowResult("trusted", name, read=total + rejected, kept=kept,
                      quarantined=total - kept + rejected, rules=dict(sorted(rules.items())))
