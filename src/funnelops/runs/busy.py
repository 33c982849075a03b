"""Refusing whole-home operations while any run is in progress.

A lease guards one workflow against a second run of itself. `destroy` and `data generate` touch
what EVERY workflow reads (the buckets, the warehouse), so they must wait for all runs: a run
reading raw files that are being replaced writes trusted data from torn input, and a destroy
deletes the bucket under a running step. They refuse (exit 3) naming each run in progress.
An apply refuses the same way when its plan changes something a run in progress uses
(`refuse_apply_while_running`; docs/reliability.md says why this rule).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from collections.abc import Iterable

from funnelops.backends.types import Holder
from funnelops.errors import RunInProgress

if TYPE_CHECKING:
    from funnelops.backends.base import Backend
    from funnelops.plan.model import Change, Plan


def backend_holders(backend: Backend, workflows: Iterable[str]) -> list[Holder]:
    """Live runs on `backend` (its runtime's `holders`: every local lease; on gcp, each workflow's)."""
    return backend.runtime.holders(workflows)


def refuse_while_running(holders: list[Holder], action: str) -> None:
    """Raise RunInProgress (exit 3) naming every run in progress; return if there is none."""
    if not holders:
        return
    runs = "; ".join(f"workflow '{h.workflow}': {h.describe()}" for h in holders)
    first = next((h for h in holders if h.run_id is not None), None)
    if first is not None:
        hint = (f"wait for it to end (`funnelops logs {first.run_id} --follow`) or cancel it "
                f"(`funnelops cancel {first.run_id}`), then retry; nothing was changed")
    else:
        hint = "wait for it to end (`funnelops runs` lists what is running), then retry; nothing was changed"
    raise RunInProgress(f"cannot {action} while a run is in progress: {runs}", hint,
                        holders=[h.to_dict() for h in holders])


# What an apply may change while a run is in progress: a run took its steps and arguments when it
# started (local: copied into its run record; gcp: Dataproc instantiates a snapshot of the
# template), and schedulers and alert policies only decide later fires and notifications.
RUN_SAFE_KINDS = ("workflow_template", "scheduler", "alert_policy")


def run_unsafe_changes(plan: Plan) -> list[Change]:
    """The plan's changes that may break a run in progress: anything updated, replaced or deleted
    besides templates, schedulers and alert policies (a run reads and writes those buckets, datasets
    and tables, and a later step of it downloads the artifacts), and a create of artifacts. Creating
    a new bucket, dataset or table touches nothing a running run uses."""
    return [c for c in plan.mutating() if c.kind not in RUN_SAFE_KINDS and (c.action != "create" or c.kind == "artifacts")]


def refuse_apply_while_running(plan: Plan, holders: list[Holder]) -> None:
    """Raise RunInProgress (exit 3) if `plan` changes something a run in progress uses."""
    unsafe = run_unsafe_changes(plan)
    if unsafe and holders:
        shown = ", ".join(f"{c.action} {c.address}" for c in unsafe[:5]) + (" …" if len(unsafe) > 5 else "")
        refuse_while_running(holders, f"apply this plan ({shown})")
