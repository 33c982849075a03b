"""The seed's two pipelines as ordered lists of jobs.

`Datos_GCP_Funnel` (dataStage IaC | Initial data) and `Datos_GCP_Funnel_Workflow` (Select a
Scheduler). A pipeline runs its jobs in the seed's order, stops at the first failure, and returns
one result per job with its timing, for the summary. Progress (pipeline, job and everything the
jobs report) goes to one `funnelops.reporting.Reporter`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

from funnelops.errors import FunnelopsError, UsageError
from funnelops.lifecycle import jobs
from funnelops.lifecycle.infra import create_infra
from funnelops.reporting import (QUIET, JobFinished, JobStarted, PipelineFinished, PipelineStarted, Reporter,
                                 RunsFinished, RunsWaiting)
from funnelops.resources import normalize_stage
from funnelops.runs import coordinator

if TYPE_CHECKING:
    from funnelops.backends.base import Backend
    from funnelops.runs.model import RunRecord
    from funnelops.spec.project import LoadedProject

FUNNEL_PIPELINE = "Datos_GCP_Funnel"
WORKFLOW_PIPELINE = "Datos_GCP_Funnel_Workflow"


@dataclass
class JobResult:
    name: str
    ok: bool
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.name, "ok": self.ok, "seconds": round(self.seconds, 3), "detail": self.detail,
                "error": self.error}


@dataclass
class PipelineResult:
    pipeline: str
    parameter: dict[str, str]
    jobs: list[JobResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(j.ok for j in self.jobs)

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "parameters": self.parameter, "ok": self.ok,
                "seconds": round(sum(j.seconds for j in self.jobs), 3), "jobs": [j.to_dict() for j in self.jobs]}


Job = tuple[str, Callable[[], dict[str, Any]]]


def _finished(result: PipelineResult, jr: JobResult) -> JobFinished:
    return JobFinished(result.pipeline, jr.name, jr.ok, jr.seconds, jr.error)


def _run_jobs(result: PipelineResult, job_list: list[Job], reporter: Reporter) -> PipelineResult:
    reporter.emit(PipelineStarted(result.pipeline, dict(result.parameter), tuple(n for n, _ in job_list)))
    for name, fn in job_list:
        reporter.emit(JobStarted(result.pipeline, name))
        t0 = time.perf_counter()
        try:
            detail = fn()
        except FunnelopsError as exc:
            jr = JobResult(name, False, time.perf_counter() - t0, error=exc.message)
            result.jobs.append(jr)
            reporter.emit(_finished(result, jr))
            reporter.emit(PipelineFinished(result.pipeline, False, sum(j.seconds for j in result.jobs)))
            exc.details.setdefault("pipeline", result.to_dict())
            raise
        jr = JobResult(name, True, time.perf_counter() - t0, detail)
        result.jobs.append(jr)
        reporter.emit(_finished(result, jr))
    reporter.emit(PipelineFinished(result.pipeline, result.ok, sum(j.seconds for j in result.jobs)))
    return result


# The funnel pipeline's jobs per dataStage: (job name, step); `infra` creates the stage's infra.
_FUNNEL_STEPS: dict[str, tuple[tuple[str, str], ...]] = {
    "iac": (("GCP create infra", "infra"),),
    "initial_data": (("GCP run workflow template", "run"), ("GCP create infra", "infra"),
                     ("GCP re run workflow template", "rerun")),
}


def _funnel_steps(data_stage: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    stage = normalize_stage(data_stage)
    steps = _FUNNEL_STEPS.get(stage)
    if steps is None:
        raise UsageError(f"the {FUNNEL_PIPELINE} pipeline takes dataStage IaC or 'Initial data', not '{data_stage}'",
                         "for the workflow stage use `funnelops pipeline workflow --scheduler ...`")
    return stage, steps


def funnel_job_names(data_stage: str) -> list[str]:
    """The funnel pipeline's job names for `data_stage`, without a backend (dry runs)."""
    return [name for name, _ in _funnel_steps(data_stage)[1]]


def funnel_jobs(loaded: LoadedProject, backend: Backend, data_stage: str, *, actor: str,
                reporter: Reporter = QUIET, allow_data_loss: bool = False, allow_rollback: bool = False) -> list[Job]:
    stage, steps = _funnel_steps(data_stage)
    command = f"funnelops pipeline funnel --data-stage {_quoted(stage)}"

    def infra() -> dict[str, Any]:
        plan, res = create_infra(loaded, backend, stage, actor=actor, allow_data_loss=allow_data_loss,
                                 reporter=reporter, allow_rollback=allow_rollback, command=command)
        return {"stage": stage, "summary": plan.summary(), "applied": res.to_dict()["applied"]}

    def runs(fn: Callable[..., list[RunRecord]]) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            return {"runs": [r.to_dict() for r in fn(loaded, backend, actor=actor, reporter=reporter)]}
        return run

    build: dict[str, Callable[[], dict[str, Any]]] = {
        "infra": infra, "run": runs(jobs.run_workflow_templates), "rerun": runs(jobs.rerun_workflow_templates)}
    return [(name, build[step]) for name, step in steps]


def _quoted(stage: str) -> str:
    from funnelops.lifecycle.rollback import _quoted as quoted

    return quoted(stage)


def guard_rollback(loaded: LoadedProject, backend: Backend, data_stage: str, *, actor: str,
                   allow_rollback: bool) -> None:
    """Refuse the pipeline BEFORE its first job when its create-infra job would roll the templates
    back (the Initial data pipeline would otherwise have re-loaded everything first); with
    `allow_rollback`, rewind the ledger here (lifecycle/rollback.py)."""
    from funnelops.lifecycle import rollback
    from funnelops.plan.diff import build_plan

    from funnelops.lifecycle.order import current_stage
    from funnelops.resources import STAGES

    stage = normalize_stage(data_stage)
    if STAGES.index(stage) >= STAGES.index(current_stage(backend.ledger)):
        return  # the usual case: no stage after this one completed, nothing to observe
    plan = build_plan(loaded, backend, stage, kinds={"workflow_template"})
    rollback.guard(loaded, backend, stage, plan, allow_rollback=allow_rollback, actor=actor,
                   command=f"funnelops pipeline funnel --data-stage {_quoted(stage)}")


def run_funnel_pipeline(loaded: LoadedProject, backend: Backend, data_stage: str, *, actor: str,
                        reporter: Reporter = QUIET, allow_data_loss: bool = False,
                        allow_rollback: bool = False) -> PipelineResult:
    guard_rollback(loaded, backend, data_stage, actor=actor, allow_rollback=allow_rollback)
    job_list = funnel_jobs(loaded, backend, data_stage, actor=actor, reporter=reporter,
                           allow_data_loss=allow_data_loss, allow_rollback=allow_rollback)
    from funnelops.resources import STAGE_TITLES

    result = PipelineResult(FUNNEL_PIPELINE, {"dataStage": STAGE_TITLES[normalize_stage(data_stage)]})
    return _run_jobs(result, job_list, reporter)


def run_workflow_pipeline(loaded: LoadedProject, backend: Backend, scheduler: str, *, actor: str,
                          reporter: Reporter = QUIET, wait: bool = False, period: str | None = None) -> PipelineResult:
    """Force the scheduler (for `period` when given); with `wait`, follow the run and, when it
    succeeds, record the Workflow stage (without `wait`, `status` records it once the run is DONE)."""
    from funnelops.lifecycle import forced

    s = jobs.resolve_scheduler(loaded, scheduler)
    state: dict[str, Any] = {}

    def force() -> dict[str, Any]:
        run = jobs.force_scheduler(loaded, backend, s.id, actor=actor, reporter=reporter, period=period)
        state["run"] = run
        return {"scheduler": s.name, "workflow": s.workflow, "run": run.to_dict()}

    job_list: list[Job] = [("GCP force scheduler", force)]
    if wait:
        def follow() -> dict[str, Any]:
            from funnelops.errors import RunFailed

            reporter.emit(RunsWaiting((state["run"].id,)))
            run = coordinator.wait(backend.runtime, [state["run"].id], **coordinator.report_to(reporter))[0]
            reporter.emit(RunsFinished((run.id,), () if run.state == "DONE" else (run.id,)))
            if not forced.record_if_done(backend, run, loaded.spec_hash, actor):
                raise RunFailed(f"run {run.id} of {run.workflow} ended {run.state}" + (f": {run.error}" if run.error else ""),
                                f"read its logs: funnelops logs {run.id} (the Workflow stage is not recorded "
                                "until a forced run succeeds)")
            return {"run": run.to_dict()}
        job_list.append(("Follow the forced run", follow))
    result = PipelineResult(WORKFLOW_PIPELINE, {"Select a Scheduler": s.name, **({"period": period} if period else {})})
    return _run_jobs(result, job_list, reporter)
