"""Running refined flows (trusted -> refined): the job built once, rendered by an engine.

A refined flow is one BigQuery SELECT (`sql/refined/<name>.sql`) with a header naming its target
table and what a run replaces there. For one run, :func:`build_job` decides everything that
does not depend on the engine: whether the flow runs at this granularity at all, that the query
parses as one SELECT reading only the project's external tables (the trusted layer), the
period parameters, and the replace predicate. An engine
(:class:`funnelops.flows.engines.base.RefinedEngine`) renders the job as one atomic
replacement: a DuckDB transaction on the local warehouse, or a BigQuery multi-statement script.

Query parameters (BigQuery `@name`): `@granularity` ('DAY'|'MONTH'|'YEAR'), `@period_start`
and `@period_end` (DATE, half-open; a `full` run gets the whole calendar).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from typing import Any
from collections.abc import Collection

from funnelops.errors import BackendError
from funnelops.flows.context import FlowResult, RunContext, report_flow
from funnelops.flows.engines.base import RefinedEngine, Verify, no_check
from funnelops.flows.registry import RefinedFlow, load_refined
from funnelops.flows.source_checks import FlowSourceError
from funnelops.spec.sqlrefs import SqlError

PARAM_TYPES = {"granularity": "STRING", "period_start": "DATE", "period_end": "DATE"}


@dataclass(frozen=True)
class Condition:
    """One term of the replace predicate: `column op @param`."""

    column: str
    op: str
    param: str


@dataclass(frozen=True)
class RefinedJob:
    """One refined flow for one run, engine-neutral."""

    flow: RefinedFlow
    dataset: str
    table: str
    reads: tuple[Any, ...]          # the spec's external tables the query reads
    params: dict[str, Any]          # granularity (str), period_start / period_end (date)

    @property
    def name(self) -> str:
        return self.flow.name

    @property
    def sql(self) -> str:
        return self.flow.sql

    def predicate(self, columns: Collection[str] | None) -> list[Condition]:
        """The rows a run replaces in a table with `columns` (None: not known here): its period
        (`replace: period`; also its granularity when the table has that column) or all rows."""
        if self.flow.replace != "period":
            return []
        if columns is not None and "period_start" not in columns:
            raise BackendError(f"refined flow {self.name}: {self.dataset}.{self.table} has no period_start column "
                               f"to replace a period by", "use `-- replace: all` or add the column")
        where = [Condition("period_start", ">=", "period_start"), Condition("period_start", "<", "period_end")]
        if columns is None or "granularity" in columns:
            where.append(Condition("granularity", "=", "granularity"))
        return where


def sql_problem(flow: RefinedFlow, exc: SqlError) -> FlowSourceError:
    """The error of a refined SQL file that is not one safe SELECT."""
    from funnelops.spec.sql_safety import problem_message

    return FlowSourceError(f"refined flow {flow.name} ({flow.path}): {problem_message(exc)}",
                           "a refined SQL file is one SELECT; run `funnelops validate`")


def build_job(ctx: RunContext, flow: RefinedFlow) -> RefinedJob:
    """The job of `flow` for this run; raises FlowSourceError for a query the runtime refuses."""
    from funnelops.spec.sql_safety import parse_query
    from funnelops.spec.sqlrefs import table_refs

    try:  # exactly one query: engines splice it into a transaction
        parse_query(flow.sql, "bigquery")
        refs = table_refs(flow.sql)
    except SqlError as exc:
        raise sql_problem(flow, exc) from None
    externals = {e.address: e for e in ctx.loaded.spec.external_tables}
    for ref in refs:
        if ref not in externals:
            raise FlowSourceError(f"refined flow {flow.name} reads {ref}, which is not an external table of "
                                  f"the project", "refined SQL reads the trusted external tables")
    start, end = ctx.bounds()
    params = {"granularity": ctx.granularity, "period_start": date.fromisoformat(start),
              "period_end": date.fromisoformat(end)}
    dataset, table = flow.table_for(ctx.granularity)
    return RefinedJob(flow, dataset, table, tuple(externals[r] for r in refs), params)


def run_refined(ctx: RunContext, names: list[str], engine: RefinedEngine,
                verify: Verify = no_check) -> list[FlowResult]:
    """Run the refined flows `names` on `engine`, in order, printing one line per flow."""
    out = []
    for name in names:
        result = run_refined_flow(ctx, engine, load_refined(ctx.project_dir, name), verify)
        print(result.line(), flush=True)
        report_flow(ctx, result)
        out.append(result)
    return out


def run_refined_flow(ctx: RunContext, engine: RefinedEngine, flow: RefinedFlow,
                     verify: Verify = no_check) -> FlowResult:
    if ctx.granularity not in flow.granularities:
        return FlowResult("refined", flow.name, skipped=f"runs for {', '.join(flow.granularities)} only")
    t0 = time.perf_counter()
    job = build_job(ctx, flow)
    rows = engine.run(job, verify)
    return FlowResult("refined", flow.name, read=rows, kept=rows, quarantined=0,
                      seconds=round(time.perf_counter() - t0, 3))
