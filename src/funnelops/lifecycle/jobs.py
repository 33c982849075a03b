"""The seed's jobs: run / re-run the initial-load workflow templates, and force a scheduler.

Each job is a small composition of the backend's Runtime and the plan, reporting through a
`Reporter` (the CLI prints it; tests collect it). Nothing here imports a backend or the CLI.
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING, Protocol

from funnelops.errors import RunFailed, UsageError, did_you_mean
from funnelops.lifecycle.order import job_completed, require_before
from funnelops.plan.apply import apply_plan, raise_if_failed
from funnelops.plan.diff import build_plan
from funnelops.runs import coordinator
from funnelops.runs.model import RunRecord

if TYPE_CHECKING:
    from funnelops.backends.base import Backend
    from funnelops.spec.project import LoadedProject
    from funnelops.spec.models import Scheduler

# The initial load reprocesses everything, whatever the template's own execution type.
INITIAL_LOAD_ARGS = ["--execution_type=full"]


class Reporter(Protocol):
    def info(self, text: str) -> None: ...

    def run_changed(self, run: RunRecord) -> None: ...


class SilentReporter:
    def info(self, text: str) -> None:
        pass

    def run_changed(self, run: RunRecord) -> None:
        pass


def _fold(text: str) -> str:
    """Case- and accent-insensitive key: 'Año' -> 'ano', 'Duplicado mes' -> 'duplicado-mes'."""
    stripped = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return "-".join(stripped.lower().replace("_", " ").split())


def resolve_scheduler(loaded: "LoadedProject", word: str) -> "Scheduler":
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


def initial_load_workflows(loaded: "LoadedProject") -> list[str]:
    return [w.name for w in loaded.spec.workflows if w.initial_load]


def _run_all_and_wait(loaded: "LoadedProject", backend: "Backend", actor: str, reporter: Reporter,
                      step: str) -> list[RunRecord]:
    require_before(backend.ledger, None, step)
    names = initial_load_workflows(loaded)
    if not names:
        reporter.info("no initial-load workflows in the project: nothing to run")
        return []
    for name in names:  # refuse before starting any, so a refusal never leaves half the load running
        coordinator.refuse_if_running(backend, name, trigger="initial-load", actor=actor, job=step)
    started = []
    for name in names:
        run = coordinator.start(backend, name, trigger="initial-load", actor=actor, extra_args=INITIAL_LOAD_ARGS)
        reporter.info(f"started run {run.id} of {name}")
        started.append(run)
    finished = coordinator.wait(backend.runtime, [r.id for r in started], on_change=reporter.run_changed)
    bad = [r for r in finished if r.state != "DONE"]
    if bad:
        detail = "; ".join(f"run {r.id} of {r.workflow} ended {r.state}" + (f": {r.error}" if r.error else "")
                           for r in bad)
        raise RunFailed(f"{len(bad)} of {len(finished)} initial-load run(s) did not succeed: {detail}",
                        "read the logs with `funnelops logs RUN`, fix the cause, and run the job again",
                        runs=[r.to_dict() for r in finished])
    return finished


def _finish_job(loaded: "LoadedProject", backend: "Backend", step: str, actor: str, reporter: Reporter) -> None:
    stage = job_completed(backend.ledger, step, None, loaded.spec_hash, actor)
    if stage is None and step == "rerun-workflow-templates":
        reporter.info("the 'Initial data' stage stays as it was: its jobs did not all complete in order "
                      "since the last reset (run `funnelops pipeline funnel --data-stage \"Initial data\"`)")


def run_workflow_templates(loaded: "LoadedProject", backend: "Backend", *, actor: str,
                           reporter: Reporter | None = None) -> list[RunRecord]:
    """GCP run workflow template: every initial-load workflow, in parallel, waiting for all."""
    reporter = reporter or SilentReporter()
    runs = _run_all_and_wait(loaded, backend, actor, reporter, "run-workflow-templates")
    _finish_job(loaded, backend, "run-workflow-templates", actor, reporter)
    return runs


def rerun_workflow_templates(loaded: "LoadedProject", backend: "Backend", *, actor: str,
                             reporter: Reporter | None = None) -> list[RunRecord]:
    """GCP re run workflow template: the same runs again; success completes 'Initial data'
    when the stage's earlier jobs completed before it, in order (see lifecycle/order.py)."""
    reporter = reporter or SilentReporter()
    runs = _run_all_and_wait(loaded, backend, actor, reporter, "rerun-workflow-templates")
    _finish_job(loaded, backend, "rerun-workflow-templates", actor, reporter)
    return runs


def initialize_templates(loaded: "LoadedProject", backend: "Backend", reporter: Reporter | None = None) -> int:
    """Set every workflow template to the workflow stage's arguments; returns how many changed."""
    plan = build_plan(loaded, backend, "workflow", kinds={"workflow_template"})
    if not plan.mutating():
        # Nothing to change: skip the apply, which would open the warehouse for writing and so wait
        # behind any run that is writing it (a force must answer at once, not after that run).
        return 0
    result = apply_plan(plan, backend)
    raise_if_failed(result)
    if reporter and result.done:
        reporter.info(f"initialized {len(result.done)} workflow template(s) to the workflow stage's arguments")
    return len(result.done)


def force_scheduler(loaded: "LoadedProject", backend: "Backend", scheduler: str, *, actor: str,
                    reporter: Reporter | None = None) -> RunRecord:
    """Initialize the templates, check the workflow is not running, and force the scheduler."""
    reporter = reporter or SilentReporter()
    s = resolve_scheduler(loaded, scheduler)
    require_before(backend.ledger, None, "force-scheduler")
    initialize_templates(loaded, backend, reporter)
    coordinator.refuse_if_running(backend, s.workflow, trigger="forced", actor=actor, scheduler=s.id)
    run = coordinator.force_scheduler(backend, s.id, s.workflow, actor=actor)
    reporter.info(f"forced scheduler {s.name} ({s.id}): run {run.id} of {s.workflow} is {run.state}")
    backend.ledger.record_stage("workflow", loaded.spec_hash, actor)
    return run
