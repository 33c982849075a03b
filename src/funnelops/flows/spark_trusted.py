"""Running trusted flows (raw -> trusted) on Spark: the gcp path (Dataproc), testable locally.

The same flow files as on DuckDB (user code, PySpark API) between the same runtime steps:
stage the period's raw files (:mod:`funnelops.flows.spark_io`), `transform`, add the runtime's
`date_in_period` rule, cache the checked rows once, count, then write. Writing uses Spark's
dynamic partition overwrite (`partitionOverwriteMode=dynamic`, `partitionBy` the date column):
a run replaces exactly the partitions it writes, so re-running a period never duplicates rows
and never touches other periods. A partition of the period that the new output no longer has
(all its rows now quarantined, say) is deleted afterwards, as the local swap does. Quarantined
rows go to `<trusted>/_quarantine/<flow>/extract_date=.../` with the rule, source file and line,
in the same columns as on DuckDB. read = kept + quarantined holds by construction: both come
from one aggregate of the cached rows plus the staging rejects.

Buckets are URIs: `gs://<bucket>` on gcp; `$FUNNELOPS_BUCKETS_URI/<bucket>` when that is set
(a `file://` folder, so the whole gcp path can be exercised on one machine).
"""

from __future__ import annotations

import os
import time
from datetime import date

from funnelops.errors import UsageError
from funnelops.flows import raw as rawmod
from funnelops.flows import spark_io
from funnelops.flows.context import FlowResult, RunContext
from funnelops.flows.engine import SparkEngine, activate, api
from funnelops.flows.raw import FlowSourceError
from funnelops.flows.registry import load_trusted
from funnelops.flows.trusted import QUARANTINE, add_period_rule, raw_records


def bucket_uri(ctx: RunContext, role: str) -> str:
    bucket = ctx.loaded.spec.bucket_for(role)
    if bucket is None:
        raise UsageError(f"the project has no bucket with role `{role}`", "add one to the project's buckets")
    root = os.environ.get("FUNNELOPS_BUCKETS_URI", "").strip().rstrip("/")
    return f"{root}/{bucket.name}" if root else f"gs://{bucket.name}"


def run_trusted(ctx: RunContext, names: list[str], engine: SparkEngine | None = None,
                raw_root: str | None = None, trusted_root: str | None = None) -> list[FlowResult]:
    """Run `names` on Spark; `engine` and the roots default to a new session and the buckets."""
    if not names:
        return []
    from pyspark.sql import SparkSession

    activate("spark")
    # Stop only a session this run started: a caller's (a test's, a notebook's) stays up.
    own = engine is None and SparkSession.getActiveSession() is None
    engine = engine or SparkEngine(ctx.time_zone, master=os.environ.get("FUNNELOPS_SPARK_MASTER") or None)
    # Dynamic: an overwrite replaces only the partitions present in the new output.
    engine.session.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
    raw_root = raw_root or bucket_uri(ctx, "raw")
    trusted_root = trusted_root or bucket_uri(ctx, "trusted")
    try:
        out = []
        for name in names:
            result = run_trusted_flow(ctx, engine.session, name, raw_root, trusted_root)
            print(result.line(), flush=True)
            out.append(result)
        return out
    finally:
        if own:
            engine.close()


def run_trusted_flow(ctx: RunContext, session, name: str, raw_root: str, trusted_root: str) -> FlowResult:
    t0 = time.perf_counter()
    module = load_trusted(ctx.project_dir, name)
    daily = rawmod._is_daily(module.FILES)
    period = None if ctx.full else (ctx.period if daily else ctx.period.widen_to_months())
    files = spark_io.source_files(session, raw_root, module.FILES, period)
    if not files:
        raise FlowSourceError(
            f"trusted flow {name}: missing source file {raw_root}/{rawmod.expected_files(module.FILES, period)}",
            "check the raw bucket, or pick a period that has data (--period)")
    staged = spark_io.stage(session, raw_root, files, tuple(module.COLUMNS), ctx.loaded.spec.project.id,
                            getattr(module, "ALLOW_EMPTY", False))
    checked = module.transform(staged.df)
    if period is not None:
        checked = add_period_rule(checked, module.PARTITION, period.start.isoformat(), period.end.isoformat())
    missing = [c for c in (*module.OUTPUT, "dq_rule", "_file_index", "_row", "_raw_record") if c not in checked.columns]
    if missing:
        raise FlowSourceError(f"trusted flow {name}: transform() output lacks {', '.join(missing)}",
                              "end the flow with dq.finish(df, OUTPUT)")
    checked = checked.cache()
    try:
        result = _write(session, name, module, staged, checked, trusted_root, period, tuple(module.COLUMNS))
    except FlowSourceError:
        raise
    except Exception as exc:  # Spark wraps a file it cannot read in a long JVM error: keep it, name the flow
        if "FileNotFound" in str(exc) or "AccessDenied" in str(exc):
            raise FlowSourceError(f"trusted flow {name}: cannot read its source files: "
                                  f"{str(exc).splitlines()[0]}") from None
        raise
    finally:
        checked.unpersist()
        staged.release()
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


def _quarantine(session, name: str, staged: spark_io.SparkStaged, checked, columns: tuple[str, ...]):
    """Rows that failed a rule plus the staging rejects, in the local quarantine's columns; rows
    the period rule quarantined get their raw text back from the staged input."""
    from pyspark.sql import types as T

    F = api("spark")["F"]
    files = session.createDataFrame(
        [(i, d, rel) for i, d, rel in staged.files],
        T.StructType([T.StructField("_file_index", T.IntegerType()), T.StructField("extract_date", T.DateType()),
                      T.StructField("source_file", T.StringType())]))
    base = F.lit(staged.row_base).cast("bigint")
    texts = raw_records(staged.df, columns).withColumnRenamed("_raw_record", "_staged_record")
    failed = (checked.where(F.col("dq_rule").isNotNull())
              .join(texts, ["_file_index", "_row"], "left")
              .select(F.col("dq_rule").alias("rule"), F.col("_file_index"),
                      (F.col("_row") - F.col("_file_index").cast("bigint") * base).alias("source_line"),
                      F.coalesce(F.col("_raw_record"), F.col("_staged_record")).alias("raw_record")))
    rejected = staged.rejects.select(F.col("rule"), F.col("_file_index"), F.col("line").alias("source_line"),
                                     F.col("raw_record"))
    return (failed.unionByName(rejected).join(F.broadcast(files), "_file_index")
            .select(F.col("rule"), F.col("source_file"), F.col("source_line").cast("bigint").alias("source_line"),
                    F.col("raw_record"), F.lit(name).alias("flow"), F.col("extract_date")))


def _replace(session, df, table_uri: str, key: str, in_scope) -> None:
    """Overwrite the partitions `df` has (dynamic mode), then drop the in-scope ones it lacks."""
    written = {r[0].isoformat() for r in df.select(key).distinct().collect() if r[0] is not None}
    if written:
        df.write.mode("overwrite").partitionBy(key).parquet(table_uri)
    for folder in spark_io.list_dirs(session, table_uri):
        value = folder.partition("=")[2] if folder.startswith(key + "=") else None
        try:
            d = date.fromisoformat(value) if value else None
        except ValueError:
            continue
        if d is not None and in_scope(d) and value not in written:
            spark_io.delete(session, spark_io.join_uri(table_uri, folder))


def _write(session, name, module, staged, checked, trusted_root: str, period, columns) -> FlowResult:
    F = api("spark")["F"]
    key = module.PARTITION
    counts = {r[0]: r[1] for r in checked.groupBy("dq_rule").count().collect()}
    kept = counts.pop(None, 0)
    rules = dict(counts)
    for r in staged.rejects.groupBy("rule").count().collect():
        rules[r[0]] = rules.get(r[0], 0) + r[1]
    quarantined = sum(rules.values())

    kept_df = checked.where(F.col("dq_rule").isNull()).select(*[F.col(c).alias(c) for c in module.OUTPUT])
    if period is None:
        in_scope = lambda d: True  # noqa: E731  full: every partition is rebuilt
    else:
        in_scope = lambda d: period.start <= d < period.end  # noqa: E731
    _replace(session, kept_df, spark_io.join_uri(trusted_root, module.TARGET), key, in_scope)
    extracted = {d for _, d, _ in staged.files}
    _replace(session, _quarantine(session, name, staged, checked, columns),
             spark_io.join_uri(trusted_root, f"{QUARANTINE}/{name}"), "extract_date",
             (lambda d: True) if period is None else (lambda d: d in extracted))
    return FlowResult("trusted", name, read=kept + quarantined, kept=kept, quarantined=quarantined,
                      rules=dict(sorted(rules.items())))
