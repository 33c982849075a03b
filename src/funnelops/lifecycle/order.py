"""The seed's order: IaC, then Initial data, then the workflow pipeline (as often as wanted).

Two levels. A step needs the stage before it (PREREQUISITE). And inside a stage, each job needs
the jobs before it, in order (STAGE_JOBS): Initial data is run-workflow-templates (trusted data
loaded), then create-infra for Initial data (refined tables, templates switched to the refined
flows), then rerun-workflow-templates (refined data loaded). Every job's completion is recorded
in the ledger, and a stage is recorded only when its jobs completed in that order since the last
reset -- so `job rerun-workflow-templates` alone can never mark Initial data done.

Once a stage has completed, its jobs may run again in any order (re-running one repairs, and
ledgers written before jobs were recorded keep working); a refusal names the job to run first.
Every refusal is audited in the ledger as a `refused` event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from funnelops.backends.types import record_refusal
from funnelops.errors import StageOrderError
from funnelops.resources import STAGE_TITLES

if TYPE_CHECKING:
    from funnelops.backends.base import Ledger

# What must be done before each step can run.
PREREQUISITE = {
    ("create-infra", "iac"): None,
    ("create-infra", "initial_data"): "iac",
    ("create-infra", "workflow"): "initial_data",
    ("run-workflow-templates", None): "iac",
    ("rerun-workflow-templates", None): "iac",
    ("force-scheduler", None): "initial_data",
    ("backfill", None): "initial_data",
}

HOW_TO = {
    "iac": 'funnelops pipeline funnel --data-stage IaC',
    "initial_data": 'funnelops pipeline funnel --data-stage "Initial data"',
}

# The jobs of each stage of the funnel pipeline, in the order they must complete.
STAGE_JOBS = {
    "iac": ("create-infra:iac",),
    "initial_data": ("run-workflow-templates", "create-infra:initial_data", "rerun-workflow-templates"),
}

JOB_COMMANDS = {
    "create-infra:iac": "funnelops job create-infra --stage IaC",
    "run-workflow-templates": "funnelops job run-workflow-templates",
    "create-infra:initial_data": 'funnelops job create-infra --stage "Initial data"',
    "rerun-workflow-templates": "funnelops job rerun-workflow-templates",
}


def job_key(step: str, stage: str | None = None) -> str:
    """The ledger's name for a job: create-infra is one job per stage."""
    return f"{step}:{stage}" if step == "create-infra" and stage else step


def _stage_of(key: str) -> tuple[str, int] | None:
    for stage, chain in STAGE_JOBS.items():
        if key in chain:
            return stage, chain.index(key)
    return None


def first_missing(chain: tuple[str, ...] | list[str], done: list[dict]) -> str | None:
    """The first job of `chain` that has not completed after the ones before it (None: all did)."""
    i = 0
    for rec in done:
        if i < len(chain) and rec.get("job") == chain[i]:
            i += 1
    return chain[i] if i < len(chain) else None


def first_missing_stage(needed: str, stages: Mapping[str, object]) -> str:
    """The earliest stage still missing on the way to `needed`: what to run FIRST.

    `force-scheduler` on a new home needs 'Initial data', which itself needs IaC; naming 'Initial
    data' sent the operator to a command that would be refused in turn (issue 13).
    """
    first = needed
    while (before := PREREQUISITE.get(("create-infra", first))) is not None and before not in stages:
        first = before
    return first


def _stages_from(first: str, last: str) -> list[str]:
    from funnelops.resources import STAGES

    return list(STAGES[STAGES.index(first):STAGES.index(last) + 1])


def _refuse(ledger: Ledger, step: str, err: StageOrderError) -> StageOrderError:
    record_refusal(ledger, step, err, needed=err.details.get("needed"))
    return err


def require_before(ledger: Ledger, stage: str | None, step: str) -> None:
    """Raise StageOrderError (exit 4) if the stage `step` needs, or a job before it, has not completed."""
    needed = PREREQUISITE.get((step, stage), PREREQUISITE.get((step, None)))
    what = f"{step} --stage {STAGE_TITLES.get(stage, '')}".strip() if stage else step
    stages = ledger.stages() if needed is not None or _stage_of(job_key(step, stage)) else {}
    if needed is not None and needed not in stages:
        first = first_missing_stage(needed, stages)
        later = [STAGE_TITLES[s] for s in _stages_from(first, needed)[1:]]
        then = f" (then {', then '.join(repr(t) for t in later)})" if later else ""
        raise _refuse(ledger, step, StageOrderError(
            f"cannot run {what}: the '{STAGE_TITLES[first]}' stage has not completed yet{then}",
            f"run it first: {HOW_TO[first]}", needed=first))
    found = _stage_of(job_key(step, stage))
    if found is None or found[1] == 0 or found[0] in stages:
        return
    own, pos = found
    chain = STAGE_JOBS[own]
    missing = first_missing(chain[:pos], ledger.jobs_done())
    if missing is not None:
        order = " → ".join(JOB_COMMANDS[j].removeprefix("funnelops job ") for j in chain)
        raise _refuse(ledger, step, StageOrderError(
            f"cannot run {what}: `{JOB_COMMANDS[missing]}` has not completed yet (the '{STAGE_TITLES[own]}' "
            f"stage runs {order}, in this order)",
            f"run it first: {JOB_COMMANDS[missing]} (or the whole stage: {HOW_TO[own]})", needed=missing))


def job_completed(ledger: Ledger, step: str, stage: str | None, spec_hash: str, actor: str) -> str | None:
    """Record that a job succeeded; if it ends its stage's chain, in order, record the stage too.

    Returns the stage recorded, if any. The chain is checked again here (not only before the
    job ran): a destroy that reset the ledger meanwhile leaves the stage unrecorded.
    """
    key = job_key(step, stage)
    ledger.record_job(key, spec_hash, actor)
    found = _stage_of(key)
    if found is None:
        return None
    own, pos = found
    chain = STAGE_JOBS[own]
    if pos != len(chain) - 1 or first_missing(chain, ledger.jobs_done()) is not None:
        return None
    ledger.record_stage(own, spec_hash, actor)
    return own


def current_stage(ledger: Ledger) -> str:
    """The last stage the lifecycle completed ('iac' when none has): what infra should match now."""
    from funnelops.resources import STAGES

    done = ledger.stages()
    completed = [s for s in STAGES if s in done]
    return completed[-1] if completed else "iac"
