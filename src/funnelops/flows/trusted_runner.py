"""Running trusted flows (raw -> trusted): the step sequence, written once for every engine.

Per flow: choose the period (a monthly source is read by whole months), list the period's raw
files (none is an error naming the expected file), take the flow's build slot (an engine may
reuse an identical earlier `full` build), stage the files, call the flow's `transform` (user
code, PySpark API) which returns every input row with a `dq_rule` (NULL = keep), add the
runtime's own rule (`date_in_period`: a row dated outside the period would otherwise land in a
partition this run does not own), materialize once, check the output columns, count, hold the
counts to the flow's quarantine limit (:mod:`funnelops.flows.quality`: over it, the run fails
before anything is written), then replace the period's partitions: kept rows into the flow's
table, failing rows into `<trusted>/_quarantine/<flow>/extract_date=.../` with rule, source
file, line and raw record.
Counting comes from the materialized rows, so read = kept + quarantined holds by construction.

The engine (:class:`funnelops.flows.engines.base.TrustedEngine`) does the I/O: DuckDB/SQLFrame
over local folders, or Spark over Hadoop URIs. The overlap guard's `verify` runs at every commit
point the engine has.
"""

from __future__ import annotations

import time
from typing import Any

from funnelops.flows import layout, quality
from funnelops.flows import raw as rawmod
from funnelops.flows.args import Period
from funnelops.flows.context import FlowResult, RunContext, report_flow
from funnelops.flows.engine import api
from funnelops.flows.engines.base import Replacement, TrustedEngine, Verify, no_check
from funnelops.flows.layout import Layout
from funnelops.flows.registry import load_trusted
from funnelops.flows.source_checks import FlowSourceError

QUARANTINE = "_quarantine"
LINEAGE = ("dq_rule", "_file_index", "_row", "_raw_record")


def add_period_rule(checked: Any, partition: str, start: str, end: str) -> Any:
    """Quarantine rows whose partition value falls outside [start, end) (PySpark API)."""
    F = api()["F"]
    col = F.col(partition)
    outside = (col < F.lit(start).cast("date")) | (col >= F.lit(end).cast("date"))
    return checked.withColumn("dq_rule", F.coalesce(F.col("dq_rule"), F.when(outside, F.lit("date_in_period"))))


def raw_records(staged_df: Any, columns: tuple[str, ...]) -> Any:
    """`(_file_index, _row, _raw_record)` of every staged row (PySpark API, both engines).

    `dq.finish` keeps the raw text of rows that failed a flow rule only; a row the runtime's
    period rule quarantines afterwards gets its text back from here, so every quarantined row
    can be traced to its delivered record.
    """
    from funnelops.flows import dq

    return staged_df.select(*dq.lineage(columns))


def run_trusted(ctx: RunContext, names: list[str], engine: TrustedEngine,
                verify: Verify = no_check) -> list[FlowResult]:
    """Run the flows `names` on `engine`, printing one line per flow.

    Takes the first flow whose build slot is free (concurrent runs of other workflows build the
    others meanwhile); when all are busy, waits for the first one.
    """
    out, pending = [], list(names)
    while pending:
        for name in pending:
            result = run_trusted_flow(ctx, engine, name, wait=False, verify=verify)
            if result is not None:
                break
        else:
            name = pending[0]
            result = run_trusted_flow(ctx, engine, name, wait=True, verify=verify)
        assert result is not None  # a waiting claim is always granted
        pending.remove(name)
        print(result.line(), flush=True)
        report_flow(ctx, result)
        out.append(result)
    return out


def flow_period(ctx: RunContext, source: Layout | str) -> Period | None:
    """The period a flow reads: None for `full` and for a snapshot read whole (PERIOD_FILTER =
    False: the run replaces the whole table), whole months (years) for a monthly (yearly) source."""
    lay = layout.as_layout(source)
    if ctx.full or (lay.snapshot and not lay.filters):
        return None
    return layout.widen(ctx.period, lay.unit)


def run_trusted_flow(ctx: RunContext, engine: TrustedEngine, name: str, wait: bool = True,
                     verify: Verify = no_check) -> FlowResult | None:
    """Run one flow; with `wait=False`, return None at once if another run is building it."""
    t0 = time.perf_counter()
    module = load_trusted(ctx.project_dir, name)
    source = layout.layout_of(module)
    limit = quality.flow_limit(module, ctx.loaded.spec.quality.max_quarantine_share)
    period = flow_period(ctx, source)
    files = engine.source_files(source, period)
    if not files:
        raise FlowSourceError(
            f"trusted flow {name}: missing source file "
            f"{engine.raw_location}/{rawmod.expected_files(source, period)}",
            f"put it there with `funnelops data load FILE --flow {name}`, or {engine.missing_hint}")
    claim = engine.claim(name, module, files, period, wait=wait)
    if claim is None:
        return None
    with claim:
        result = claim.reused()
        if result is None:
            result = _build(engine, name, module, source, files, period, verify, limit)
            claim.save(result)
        else:  # the limit may have changed since that build: hold the reused result to it too
            quality.check(name, result.read, result.quarantined, result.rules, limit, None)
            result.warnings = quality.warnings(result.read, result.kept, result.rules)
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


def _build(engine: TrustedEngine, name: str, module: Any, source: Layout, files: list, period: Period | None,
           verify: Verify, limit: quality.Limit) -> FlowResult:
    columns = tuple(module.COLUMNS)
    staged = engine.stage(name, files, columns, getattr(module, "ALLOW_EMPTY", False), source=source, period=period)
    checked = None
    try:
        df = module.transform(engine.frame(staged))
        if period is not None:
            df = add_period_rule(df, module.PARTITION, period.start.isoformat(), period.end.isoformat())
        checked = engine.materialize(name, df)
        have = engine.columns(checked)
        missing = [c for c in (*module.OUTPUT, *LINEAGE) if c not in have]
        if missing:
            raise FlowSourceError(f"trusted flow {name}: transform() output lacks {', '.join(missing)}",
                                  "end the flow with dq.finish(df, OUTPUT)")
        counts = engine.count_rules(name, staged, checked)
        # before any write: a run over its quarantine limit changes no partition
        quality.check(name, counts.read, counts.quarantined, counts.rules, limit,
                      lambda rules, n: quality.sample_rows(engine.quarantine_sample(name, staged, checked, rules, n)))
        data, quarantine = _scopes(name, module.PARTITION, module.TARGET, files, period, source.snapshot)
        engine.replace_partitions(name, staged, checked, tuple(module.OUTPUT), data, quarantine,
                                  period_rule=period is not None, before_commit=verify)
    finally:
        engine.release(name, staged, checked)
    return FlowResult("trusted", name, read=counts.read, kept=counts.kept, quarantined=counts.quarantined,
                      rules=dict(sorted(counts.rules.items())), out_of_period=counts.out_of_period,
                      warnings=quality.warnings(counts.read, counts.kept, counts.rules))


def _scopes(name: str, key: str, target: str, files: list, period: Period | None,
            snapshot: bool = False) -> tuple[Replacement, Replacement]:
    """What a run replaces: a `full` run every partition; a period run the period's partitions of
    the table, and the quarantine partitions of the extract dates it read (of a snapshot, whose
    quarantine is dated by the period read: every quarantine partition inside the period)."""
    if period is None:
        return (Replacement(target, key, lambda d: True),
                Replacement(f"{QUARANTINE}/{name}", "extract_date", lambda d: True))
    if snapshot:
        return (Replacement(target, key, lambda d: period.start <= d < period.end),
                Replacement(f"{QUARANTINE}/{name}", "extract_date", lambda d: period.start <= d < period.end))
    extracted = {d for d, _ in files}
    return (Replacement(target, key, lambda d: period.start <= d < period.end),
            Replacement(f"{QUARANTINE}/{name}", "extract_date", lambda d: d in extracted))
