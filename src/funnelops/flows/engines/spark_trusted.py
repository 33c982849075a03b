"""The trusted engine on Spark: the gcp path (Dataproc), testable locally with a `file://` root.

Staging is :mod:`funnelops.flows.spark_io` (raw files read where they live, through Hadoop's
FileSystem: ``gs://`` on Dataproc). The checked rows are cached once, counted, then written with
Spark's dynamic partition overwrite (`partitionOverwriteMode=dynamic`, `partitionBy` the date
column): a run replaces exactly the partitions it writes, so re-running a period never
duplicates rows and never touches other periods. A partition in scope that the new output no
longer has (all its rows now quarantined, say) is deleted afterwards, as the local swap does.
Quarantined rows land in the same columns as on DuckDB.

The roots of the raw and trusted buckets, and how a whole object is read (Excel workbooks are
read on the driver), are injected by the backend's flows runtime.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from types import ModuleType
from typing import Any
from collections.abc import Callable, Iterator

from funnelops.flows import spark_io
from funnelops.flows.args import Period
from funnelops.flows.context import RunContext
from funnelops.flows.engine import SparkEngine, activate, api
from funnelops.flows.engines.base import NoReuse, Replacement, RuleCounts, SourceFile, Verify
from funnelops.flows.layout import Layout
from funnelops.flows.source_checks import FlowSourceError

ReadBytes = Callable[[str], bytes]


@dataclass
class SparkFlow:
    staged: spark_io.SparkStaged
    columns: tuple[str, ...]


def _source_errors(method: Callable) -> Callable:
    """Spark reads lazily, so a file it cannot read fails the first action (a count, a write),
    wrapped in a long JVM error: keep its first line and name the flow."""

    @functools.wraps(method)
    def wrapper(self: SparkTrusted, flow: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, flow, *args, **kwargs)
        except FlowSourceError:
            raise
        except Exception as exc:
            if "FileNotFound" in str(exc) or "AccessDenied" in str(exc):
                raise FlowSourceError(f"trusted flow {flow}: cannot read its source files: "
                                      f"{str(exc).splitlines()[0]}") from None
            raise

    return wrapper


class SparkTrusted:
    """:class:`funnelops.flows.engines.base.TrustedEngine` on Spark and Hadoop filesystem URIs."""

    missing_hint = ("check the raw bucket (`funnelops data load FILE... --flow NAME` puts files where a flow "
                    "reads them), or pick a period that has data (--period)")

    def __init__(self, session: Any, raw_root: str, trusted_root: str, read_bytes: ReadBytes | None = None) -> None:
        self.session, self.raw_root, self.trusted_root = session, raw_root, trusted_root
        self.read_bytes = read_bytes
        self.raw_location = raw_root

    @classmethod
    @contextmanager
    def open(cls, ctx: RunContext, session: Any = None, *, raw_root: str, trusted_root: str,
             read_bytes: ReadBytes | None = None, master: str | None = None) -> Iterator[SparkTrusted]:
        """An engine for one run on `session` (default: a new one on `master`, or the active one).

        Stops only a session this run started: a caller's (a test's, a notebook's) stays up.
        """
        from pyspark.sql import SparkSession

        activate("spark")
        own = session is None and SparkSession.getActiveSession() is None
        engine = SparkEngine(ctx.time_zone, master=master) if session is None else None
        session = engine.session if engine is not None else session
        # Dynamic: an overwrite replaces only the partitions present in the new output.
        session.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
        try:
            yield cls(session, raw_root, trusted_root, read_bytes)
        finally:
            if own and engine is not None:
                engine.close()

    def source_files(self, source: Layout | str, period: Period | None) -> list[SourceFile]:
        return spark_io.source_files(self.session, self.raw_root, source, period)

    def claim(self, flow: str, module: ModuleType, files: list[SourceFile], period: Period | None, *,
              wait: bool) -> NoReuse:
        return NoReuse()

    def stage(self, flow: str, files: list[SourceFile], columns: tuple[str, ...], allow_empty: bool, *,
              source: Layout | None = None, period: Period | None = None) -> SparkFlow:
        staged = spark_io.stage(self.session, self.raw_root, files, columns, allow_empty=allow_empty,
                                read_bytes=self.read_bytes, source=source, period=period)
        return SparkFlow(staged, columns)

    def frame(self, staged: SparkFlow) -> Any:
        return staged.staged.df

    def materialize(self, flow: str, checked: Any) -> Any:
        return checked.cache()

    def columns(self, checked: Any) -> set[str]:
        return set(checked.columns)

    @_source_errors
    def count_rules(self, flow: str, staged: SparkFlow, checked: Any) -> RuleCounts:
        counts = {r[0]: r[1] for r in checked.groupBy("dq_rule").count().collect()}
        kept = counts.pop(None, 0)
        rules = dict(counts)
        for r in staged.staged.rejects.groupBy("rule").count().collect():
            rules[r[0]] = rules.get(r[0], 0) + r[1]
        return RuleCounts(kept, rules, sum(staged.staged.out_of_period.values()))

    @_source_errors
    def replace_partitions(self, flow: str, staged: SparkFlow, checked: Any, output: tuple[str, ...],
                           data: Replacement, quarantine: Replacement, *, period_rule: bool,
                           before_commit: Verify) -> None:
        F = api("spark")["F"]
        kept_df = checked.where(F.col("dq_rule").isNull()).select(*[F.col(c).alias(c) for c in output])
        before_commit()
        self._replace(kept_df, data)
        before_commit()
        self._replace(self._quarantine(flow, staged, checked), quarantine)

    @_source_errors
    def quarantine_sample(self, flow: str, staged: SparkFlow, checked: Any, rules: list[str],
                          per_rule: int) -> list[tuple[str, str, int | None, str | None]]:
        F, Window = api("spark")["F"], api("spark")["Window"]
        first = Window.partitionBy("rule").orderBy("source_file", "source_line")
        rows = (self._quarantine(flow, staged, checked).where(F.col("rule").isin(rules))
                .withColumn("_n", F.row_number().over(first)).where(F.col("_n") <= F.lit(per_rule))
                .select("rule", "source_file", "source_line", "raw_record").collect())
        rows.sort(key=lambda r: (rules.index(r[0]), r[1], r[2] if r[2] is not None else -1))
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def release(self, flow: str, staged: SparkFlow, checked: Any | None) -> None:
        if checked is not None:
            checked.unpersist()
        staged.staged.release()

    def _quarantine(self, flow: str, staged: SparkFlow, checked: Any) -> Any:
        """Rows that failed a rule plus the staging rejects, in the local quarantine's columns;
        rows the period rule quarantined get their raw text back from the staged input."""
        from pyspark.sql import types as T

        from funnelops.flows.trusted_runner import raw_records

        F = api("spark")["F"]
        st = staged.staged
        files = self.session.createDataFrame(
            [(i, d, rel) for i, d, rel in st.files],
            T.StructType([T.StructField("_file_index", T.IntegerType()), T.StructField("extract_date", T.DateType()),
                          T.StructField("source_file", T.StringType())]))
        base = F.lit(st.row_base).cast("bigint")
        texts = raw_records(st.df, staged.columns).withColumnRenamed("_raw_record", "_staged_record")
        failed = (checked.where(F.col("dq_rule").isNotNull())
                  .join(texts, ["_file_index", "_row"], "left")
                  .select(F.col("dq_rule").alias("rule"), F.col("_file_index"),
                          (F.col("_row") - F.col("_file_index").cast("bigint") * base).alias("source_line"),
                          F.coalesce(F.col("_raw_record"), F.col("_staged_record")).alias("raw_record")))
        rejected = st.rejects.select(F.col("rule"), F.col("_file_index"), F.col("line").alias("source_line"),
                                     F.col("raw_record"))
        return (failed.unionByName(rejected).join(F.broadcast(files), "_file_index")
                .select(F.col("rule"), F.col("source_file"), F.col("source_line").cast("bigint").alias("source_line"),
                        F.col("raw_record"), F.lit(flow).alias("flow"), F.col("extract_date")))

    def _replace(self, df: Any, rep: Replacement) -> None:
        """Overwrite the partitions `df` has (dynamic mode), then drop the in-scope ones it lacks."""
        table_uri = spark_io.join_uri(self.trusted_root, rep.table)
        key = rep.key
        written = {r[0].isoformat() for r in df.select(key).distinct().collect() if r[0] is not None}
        if written:
            df.write.mode("overwrite").partitionBy(key).parquet(table_uri)
        for folder in spark_io.list_dirs(self.session, table_uri):
            value = folder.partition("=")[2] if folder.startswith(key + "=") else None
            try:
                d = date.fromisoformat(value) if value else None
            except ValueError:
                continue
            if d is not None and rep.in_scope(d) and value not in written:
                spark_io.delete(self.session, spark_io.join_uri(table_uri, folder))
