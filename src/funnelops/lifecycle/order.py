"""The seed's order: IaC, then Initial data, then the workflow pipeline (as often as wanted)."""

from __future__ import annotations

from funnelops.errors import StageOrderError
from funnelops.resources import STAGE_TITLES

# What must be done before each step can run.
PREREQUISITE = {
    ("create-infra", "iac"): None,
    ("create-infra", "initial_data"): "iac",
    ("create-infra", "workflow"): "initial_data",
    ("run-workflow-templates", None): "iac",
    ("rerun-workflow-templates", None): "iac",
    ("force-scheduler", None): "initial_data",
}

HOW_TO = {
    "iac": 'funnelops pipeline funnel --data-stage IaC',
    "initial_data": 'funnelops pipeline funnel --data-stage "Initial data"',
}


def require_before(ledger, stage: str | None, step: str) -> None:
    """Raise StageOrderError (exit 4) if the stage `step` needs has not completed."""
    needed = PREREQUISITE.get((step, stage), PREREQUISITE.get((step, None)))
    if needed is None:
        return
    if needed not in ledger.stages():
        title = STAGE_TITLES[needed]
        what = f"{step} --stage {STAGE_TITLES.get(stage, '')}".strip() if stage else step
        raise StageOrderError(
            f"cannot run {what}: the '{title}' stage has not completed yet",
            f"run it first: {HOW_TO[needed]}", needed=needed)


def current_stage(ledger) -> str:
    """The last stage the lifecycle completed ('iac' when none has): what infra should match now."""
    from funnelops.resources import STAGES

    done = ledger.stages()
    completed = [s for s in STAGES if s in done]
    return completed[-1] if completed else "iac"
