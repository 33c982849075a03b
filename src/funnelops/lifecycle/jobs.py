"""The seed's jobs: run / re-run the initial-load workflow templates, and force a scheduler.

Each job is a small composition of the backend's Runtime and the plan, reporting typed events
to a `funnelops.reporting.Reporter` (the CLI prints them; tests record them).
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING

from funnelops.errors import RunFailed, RunInProgress, UsageError, did_you_mean
from funnelops.lifecycle.order import job_completed, require_before
from funnelops.plan.apply import apply_plan, raise_if_failed
from funnelops.plan.diff import build_plan
from funnelops.runs import coordinator
from funnelops.runs.model import RunRecord
from funnelops.reporting import (QUIET, Notice, Refused, Reporter, RunChanged, RunsFinished, RunStarted,
                                 RunsWaiting, SchedulerForced, TemplatesInitialized)

if TYPE_CHECKING:
    from funnelops.backends.base import Backend
    from funnelops.spec.project import LoadedProject
    from funnelops.spec.models import Scheduler

# The initial load reprocesses everything, whatever the template's own execution type.
INITIAL_LOAD_ARGS = ["--execution_type=full"]


def _fold(text: str) -> str:
    """Case- and accent-insensitive key: 'Año' -> 'ano', 'Duplicado mes' -> 'duplicado-mes'."""
    stripped = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return "-".join(stripped.lower().replace("_", " ").split())


def resolve_scheduler(loaded: LoadedProject, word: str) -> Scheduler:
    """A scheduler by its seed name (`Día`), its id (`dia`), or an ASCII spelling (`anio`, `duplicado-mes`)."""
    key = _fold(word)
    for s in loaded.spec.schedulers:
        if key in (s.id, _fold(s.name), _fold(s.id)) or word == s.name:
            return s
    # Spanish ñ is often typed as 'ni' ('anio'): compare with that spelling too.
    for s in loaded.spec.schedulers:
        if key == _fold(s.name.replace("ñ", "ni").replace("Ñ", "Ni")):
            return s
    names = [s.name for s in loaded.spec.schedulers] + [s.id for s in loaded.spec.schedulers]
    raise UsageError(f"unknown scheduler '{word}'", did_you_mean(word, names)
                     or "known: " + ", ".join(s.name for s in loaded.spec.schedulers))


def initial_load_workflows(loaded: LoadedProject) -> list[str]:
    return [w.name for w in loaded.spec.workflows if w.initial_load]


def _run_all_and_wait(loaded: LoadedProject, backend: Backend, actor: str, reporter: Reporter,
                      step: str) -> list[RunRecord]:
    require_before(backend.ledger, None, step)
    names = initial_load_workflows(loaded)
    if not names:
        reporter.emit(Notice("no initial-load workflows in the project: nothing to run"))
        return []
    for name in names:  # refuse before starting any, so a refusal never leaves half the load running
        _refuse_if_running(backend, name, reporter, trigger="initial-load", actor=actor, job=step)
    started = []
    for name in names:
        run = coordinator.start(backend, name, trigger="initial-load", actor=actor, extra_args=INITIAL_LOAD_ARGS)
        reporter.emit(RunStarted(run.id, name, "initial-load"))
        started.append(run)
    reporter.emit(RunsWaiting(tuple(r.id for r in started)))
    finished = coordinator.wait(backend.runtime, [r.id for r in started],
                                on_change=lambda r: reporter.emit(RunChanged.of(r)))
    bad = [r for r in finished if r.state != "DONE"]
    reporter.emit(RunsFinished(tuple(r.id for r in finished), tuple(r.id for r in bad)))
    if bad:
        detail = "; ".join(f"run {r.id} of {r.workflow} ended {r.state}" + (f": {r.error}" if r.error else "")
                           for r in bad)
        raise RunFailed(f"{len(bad)} of {len(finished)} initial-load run(s) did not succeed: {detail}",
                        "read the logs with `funnelops logs RUN`, fix the cause, and run the job again",
                        runs=[r.to_dict() for r in finished])
    return finished


def _finish_job(loaded: LoadedProject, backend: Backend, step: str, actor: str, reporter: Reporter) -> None:
    stage = job_completed(backend.ledger, step, None, loaded.spec_hash, actor)
    if stage is None and step == "rerun-workflow-templates":
        reporter.emit(Notice("the 'Initial data' stage stays as it was: its jobs did not all complete in order "
                             "since the last reset (run `funnelops pipeline funnel --data-stage \"Initial data\"`)",
                             level="warning"))


def run_workflow_templates(loaded: LoadedProject, backend: Backend, *, actor: str,
                           reporter: Reporter = QUIET) -> list[RunRecord]:
    """GCP run workflow template: every initial-load workflow, in parallel, waiting for all."""
    runs = _run_all_and_wait(loaded, backend, actor, reporter, "run-workflow-templates")
    _finish_job(loaded, backend, "run-workflow-templates", actor, reporter)
    return runs


def rerun_workflow_templates(loaded: LoadedProject, backend: Backend, *, actor: str,
                             reporter: Reporter = QUIET) -> list[RunRecord]:
    """GCP re run workflow template: the same runs again; success completes 'Initial data'
    when the stage's earlier jobs completed before it, in order (see lifecycle/order.py)."""
    runs = _run_all_and_wait(loaded, backend, actor, reporter, "rerun-workflow-templates")
    _finish_job(loaded, backend, "rerun-workflow-templates", actor, reporter)
    return runs


def initialize_templates(loaded: LoadedProject, backend: Backend, reporter: Reporter = QUIET) -> int:
    """Set every workflow template to the workflow stage's arguments; returns how many changed."""
    plan = build_plan(loaded, backend, "workflow", kinds={"workflow_template"})
    if not plan.mutating():
        # Nothing to change: skip the apply, which would open the warehouse for writing and so wait
        # behind any run that is writing it (a force must answer at once, not after that run).
        return 0
    result = apply_plan(plan, backend, reporter=reporter)
    raise_if_failed(result)
    if result.done:
        reporter.emit(TemplatesInitialized(len(result.done)))
    return len(result.done)


def force_scheduler(loaded: LoadedProject, backend: Backend, scheduler: str, *, actor: str,
                    reporter: Reporter = QUIET) -> RunRecord:
    """Initialize the templates, check the workflow is not running, and force the scheduler."""
    s = resolve_scheduler(loaded, scheduler)
    require_before(backend.ledger, None, "force-scheduler")
    initialize_templates(loaded, backend, reporter)
    _refuse_if_running(backend, s.workflow, reporter, trigger="forced", actor=actor, scheduler=s.id)
    run = coordinator.force_scheduler(backend, s.id, s.workflow, actor=actor)
    reporter.emit(SchedulerForced(s.id, s.name, s.workflow, run.id, run.state))
    backend.ledger.record_stage("workflow", loaded.spec_hash, actor)
    return run


def _refuse_if_running(backend: Backend, workflow: str, reporter: Reporter, **audit: str) -> None:
    """The coordinator's refusal (audited in the ledger), also reported as a `Refused` event."""
    try:
        coordinator.refuse_if_running(backend, workflow, **audit)
    except RunInProgress as err:
        reporter.emit(Refused(workflow, err.kind, err.message))
        raise
