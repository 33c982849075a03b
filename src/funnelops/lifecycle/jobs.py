"""The seed's jobs: run / re-run the initial-load workflow templates, and force a scheduler.

Each job is a small composition of the backend's Runtime and the plan, reporting typed events
to a `funnelops.reporting.Reporter` (the CLI prints them; tests record them).
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING
from collections.abc import Callable

from funnelops.errors import FunnelopsError, RunFailed, RunInProgress, UsageError, did_you_mean
from funnelops.lifecycle.order import current_stage, job_completed, require_before
from funnelops.plan.apply import apply_plan, raise_if_failed
from funnelops.plan.diff import build_plan
from funnelops.runs import coordinator
from funnelops.runs.model import RunRecord
from funnelops.reporting import (QUIET, Notice, Refused, Reporter, RunsFinished, RunStarted,
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


# The stage whose template arguments each initial-load job expects: the run before "create infra
# Initial data" loads trusted data only (the IaC stage's `--refined_flows=false`: the refined tables
# do not exist yet); the re-run after it, refined data only (the Initial data stage's arguments).
JOB_TEMPLATE_STAGE = {"run-workflow-templates": "iac"}


def _run_all_and_wait(loaded: LoadedProject, backend: Backend, actor: str, reporter: Reporter,
                      step: str) -> list[RunRecord]:
    require_before(backend.ledger, None, step)
    names = initial_load_workflows(loaded)
    if not names:
        reporter.emit(Notice("no initial-load workflows in the project: nothing to run"))
        return []
    for name in names:  # refuse before starting any, so a refusal never leaves half the load running
        _refuse_if_running(backend, name, reporter, trigger="initial-load", actor=actor, job=step)
    expected = JOB_TEMPLATE_STAGE.get(step)
    if expected is None:
        return _start_and_wait(backend, names, actor, reporter)
    # Start the stage cleanly: a failed earlier attempt may have left the templates switched to
    # a later job's arguments (`--trusted_flows=false`), and this job would then skip trusted.
    if set_templates(loaded, backend, expected, reporter):
        reporter.emit(Notice(f"templates set to the arguments this job expects (the '{expected}' stage's)"))
    try:
        return _start_and_wait(backend, names, actor, reporter)
    finally:
        # A stage completed before (a repair run): put the templates back as that stage left them.
        # Mid-stage (the usual case) this is a no-op: the next job switches them itself.
        back = current_stage(backend.ledger)
        if back != expected:
            try:
                set_templates(loaded, backend, back, reporter)
            except FunnelopsError as exc:  # never hide the runs' own outcome behind this one
                reporter.emit(Notice(f"could not set the templates back to the '{back}' stage: {exc.message} "
                                     f"(run `funnelops job create-infra --stage {back}`)", level="warning"))


def _start_and_wait(backend: Backend, names: list[str], actor: str, reporter: Reporter) -> list[RunRecord]:
    started = []
    for name in names:
        run = coordinator.start(backend, name, trigger="initial-load", actor=actor, extra_args=INITIAL_LOAD_ARGS)
        reporter.emit(RunStarted(run.id, name, "initial-load"))
        started.append(run)
    reporter.emit(RunsWaiting(tuple(r.id for r in started)))
    finished = coordinator.wait(backend.runtime, [r.id for r in started], **coordinator.report_to(reporter))
    bad = [r for r in finished if r.state != "DONE"]
    reporter.emit(RunsFinished(tuple(r.id for r in finished), tuple(r.id for r in bad)))
    if bad:
        detail = "; ".join(f"run {r.id} of {r.workflow} ended {r.state}" + (f": {r.error}" if r.error else "")
                           for r in bad)
        raise RunFailed(f"{len(bad)} of {len(finished)} initial-load run(s) did not succeed: {detail}",
                        "read the logs with `funnelops logs RUN`, fix the cause, then re-run the whole stage: "
                        'funnelops pipeline funnel --data-stage "Initial data" (it starts cleanly)',
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
    return set_templates(loaded, backend, "workflow", reporter)


def set_templates(loaded: LoadedProject, backend: Backend, stage: str, reporter: Reporter = QUIET) -> int:
    """Set every workflow template to `stage`'s arguments (nothing else); returns how many changed."""
    plan = build_plan(loaded, backend, stage, kinds={"workflow_template"})
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
                    reporter: Reporter = QUIET, period: str | None = None) -> RunRecord:
    """Initialize the templates, check the workflow is not running, and force the scheduler.

    The Workflow stage is NOT recorded here: only when the forced run succeeds (lifecycle/forced.py).
    `period` (YYYY-MM-DD | YYYY-MM | YYYY | previous | current) is the period the run processes.
    """
    from funnelops.lifecycle import forced

    s = resolve_scheduler(loaded, scheduler)
    extra = period_args(loaded, s.workflow, period)
    require_before(backend.ledger, None, "force-scheduler")
    forced.settle(backend)  # an earlier force that has since succeeded completes the stage first
    _refuse_if_running(backend, s.workflow, reporter, trigger="forced", actor=actor, scheduler=s.id,
                       check=coordinator.refuse_if_applying)  # before the templates are touched
    initialize_templates(loaded, backend, reporter)
    _refuse_if_running(backend, s.workflow, reporter, trigger="forced", actor=actor, scheduler=s.id)
    if extra and not backend.scheduler_daemon:
        reporter.emit(Notice(f"{extra[0]}: instantiating {s.workflow} directly (a Cloud Scheduler fire of "
                             f"{s.name} carries fixed values, so it cannot carry a period)"))
    run = coordinator.force_scheduler(backend, s.id, s.workflow, actor=actor, extra_args=extra)
    reporter.emit(SchedulerForced(s.id, s.name, s.workflow, run.id, run.state,
                                  period_text(loaded, s.workflow, run.period)))
    forced.note_forced(backend, run, s.id, loaded.spec_hash, actor)
    return run


def period_args(loaded: LoadedProject, workflow: str, period: str | None) -> list[str]:
    """`["--period=P"]` after checking P against the workflow's granularity (exit 2 if it is not one)."""
    if period is None:
        return []
    from funnelops.flows.args import resolve_period

    wf = loaded.spec.workflow(workflow)
    granularity = wf.granularity if wf is not None else "DAY"
    resolve_period(granularity, period, loaded.spec.project.time_zone)  # UsageError naming the format
    return [f"--period={period}"]


def period_text(loaded: LoadedProject, workflow: str, period: str | None) -> str:
    """The period a run processes, as people read it: 'current (2026-11-29)', '2026-10'; '' if unknown."""
    from funnelops.flows.args import resolve_period

    wf = loaded.spec.workflow(workflow)
    try:
        p = resolve_period(wf.granularity if wf is not None else "DAY", period, loaded.spec.project.time_zone)
    except FunnelopsError:
        return period or ""
    shown = {"DAY": "%Y-%m-%d", "MONTH": "%Y-%m"}.get(p.granularity, "%Y")
    return f"{p.label} ({p.start.strftime(shown)})" if p.label in ("current", "previous") else p.start.strftime(shown)


def _refuse_if_running(backend: Backend, workflow: str, reporter: Reporter,
                       check: Callable[..., None] = coordinator.refuse_if_running, **audit: str) -> None:
    """The coordinator's refusal (audited in the ledger), also reported as a `Refused` event."""
    try:
        check(backend, workflow, **audit)
    except RunInProgress as err:
        reporter.emit(Refused(workflow, err.kind, err.message))
        raise


refuse_workflow_running = _refuse_if_running
