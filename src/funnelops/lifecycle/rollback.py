"""The rollback guard: an apply never moves the templates back to an earlier stage's arguments silently.

Each lifecycle stage appends its own dynamic argument to every workflow template (`stages:` in the
project: IaC `--refined_flows=false`, Initial data `--trusted_flows=false`, Workflow none). Before
issue 13, `job create-infra --stage IaC` (or `pipeline funnel --data-stage IaC`) on a finished
lifecycle quietly put every template back to `--refined_flows=false` while `status` still showed the
lifecycle complete: the schedulers' next fires then skipped the refined layer.

Now such an apply is refused (exit 2, nothing changed) naming the templates, the argument change and
the command that does it on purpose (`--allow-rollback`). With the flag, the ledger is rewound
first: the stages after the target are forgotten (`Ledger.reset_stages`, then the stages up to the
target re-recorded with their jobs), so `status` and the order checks tell the truth: the later
stages must run again. The rewind happens before the apply, so a failed apply never leaves the
ledger claiming a stage the templates no longer match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from funnelops.backends.types import record_refusal
from funnelops.errors import UsageError
from funnelops.lifecycle.order import STAGE_JOBS, current_stage
from funnelops.resources import STAGE_TITLES, STAGES

if TYPE_CHECKING:
    from funnelops.backends.base import Backend, Ledger
    from funnelops.plan.model import Plan
    from funnelops.spec.project import LoadedProject

FLAG = "--allow-rollback"
_MOVES = ("create", "update", "replace")


@dataclass(frozen=True)
class Rollback:
    """Templates an apply of `stage` would move back from the `current` stage's arguments."""

    stage: str
    current: str
    templates: tuple[str, ...]
    before: tuple[str, ...]
    after: tuple[str, ...]

    def change_text(self) -> str:
        def args(values: tuple[str, ...]) -> str:
            return " ".join(values) or "(no stage argument)"

        return (f"the '{STAGE_TITLES[self.current]}' stage's {args(self.before)} -> "
                f"the '{STAGE_TITLES[self.stage]}' stage's {args(self.after)}")

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "from_stage": self.current, "templates": list(self.templates),
                "args_before": list(self.before), "args_after": list(self.after)}


def detect(loaded: LoadedProject, ledger: Ledger, stage: str, plan: Plan) -> Rollback | None:
    """The rollback `plan` (for `stage`) would make, or None when it moves no template backwards."""
    current = current_stage(ledger)
    if STAGES.index(stage) >= STAGES.index(current):
        return None
    before = tuple(getattr(loaded.spec.stages, current))
    after = tuple(getattr(loaded.spec.stages, stage))
    if before == after:
        return None
    names = tuple(c.name for c in plan.changes if c.kind == "workflow_template" and c.action in _MOVES)
    return Rollback(stage, current, names, before, after) if names else None


def guard(loaded: LoadedProject, backend: Backend, stage: str, plan: Plan, *, allow_rollback: bool,
          actor: str, command: str) -> Rollback | None:
    """Refuse a rollback unless allowed (exit 2, audited); when allowed, rewind the ledger to `stage`.

    `command` is what the operator typed, repeated in the hint with the flag that allows it.
    """
    found = detect(loaded, backend.ledger, stage, plan)
    if found is None:
        return None
    if not allow_rollback:
        shown = ", ".join(found.templates[:5]) + (f" and {len(found.templates) - 5} more" if len(found.templates) > 5 else "")
        err = UsageError(
            f"refused: this apply would move {len(found.templates)} workflow template(s) back to an earlier "
            f"stage's arguments ({shown}: {found.change_text()}) while the lifecycle has completed "
            f"'{STAGE_TITLES[found.current]}'",
            f"to converge the infrastructure without rolling back: funnelops job create-infra --stage "
            f"{_quoted(found.current)}; to roll back on purpose: {command} {FLAG} (the ledger then forgets "
            f"the stages after '{STAGE_TITLES[stage]}', which must run again)",
            rollback=found.to_dict())
        record_refusal(backend.ledger, "create-infra", err, needed=FLAG)
        raise err
    rewind(backend.ledger, stage, actor)
    return found


def rewind(ledger: Ledger, stage: str, actor: str) -> None:
    """Forget the stages after `stage`, keep the ones up to it (re-recorded with their jobs, in order)."""
    kept = [(s, rec) for s, rec in ledger.stages().items() if STAGES.index(s) <= STAGES.index(stage)]
    kept.sort(key=lambda item: STAGES.index(item[0]))
    ledger.reset_stages(actor)
    for name, rec in kept:
        for job in STAGE_JOBS.get(name, ()):
            ledger.record_job(job, rec.spec_hash, rec.actor)
        ledger.record_stage(name, rec.spec_hash, rec.actor)
    ledger.record_event("rollback", stage, {"actor": actor, "kept": [s for s, _ in kept]})


def _quoted(stage: str) -> str:
    title = STAGE_TITLES[stage]
    return f'"{title}"' if " " in title else title
