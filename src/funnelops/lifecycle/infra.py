"""The seed's "GCP create infra" job, and destroy, as small compositions of plan and apply."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from funnelops.lifecycle.order import job_completed, require_before
from funnelops.plan.apply import ApplyResult, apply_plan, raise_if_failed
from funnelops.plan.diff import build_plan
from funnelops.plan.model import Change, Plan
from funnelops.reporting import QUIET, Reporter
from funnelops.resources import desired_resources, normalize_stage

if TYPE_CHECKING:
    from funnelops.backends.base import Backend
    from funnelops.spec.project import LoadedProject


def create_infra(loaded: LoadedProject, backend: Backend, stage: str, *, actor: str, allow_data_loss: bool = False,
                 reporter: Reporter = QUIET, allow_rollback: bool = False,
                 command: str | None = None, check: Callable[[Plan], None] | None = None) -> tuple[Plan, ApplyResult]:
    """Plan and apply the infrastructure for `stage`; records the job (and IaC its stage) as done.

    An apply that would move the templates back to an earlier stage's arguments than the lifecycle
    completed is refused unless `allow_rollback` (lifecycle/rollback.py); `command` is what the
    operator ran, repeated in that refusal's hint. `check` sees the plan made under the lock before
    anything is applied and may refuse it by raising (`apply FILE`: the saved plan must still be the plan).
    """
    from funnelops.lifecycle import rollback
    from funnelops.runs.busy import backend_holders, refuse_apply_while_running

    stage = normalize_stage(stage)
    # The project's apply lease (exit 3 while another apply holds it; no run starts while we do),
    # and the plan made under it, so it is the plan of what the last apply left.
    with backend.apply_lock():
        require_before(backend.ledger, stage, "create-infra")
        plan = build_plan(loaded, backend, stage)
        rollback.guard(loaded, backend, stage, plan, allow_rollback=allow_rollback, actor=actor,
                       command=command or f"funnelops job create-infra --stage {rollback._quoted(stage)}")
        if check is not None:
            check(plan)
        # under the lease, so no run can start between this look and the apply
        refuse_apply_while_running(plan, backend_holders(backend, [w.name for w in loaded.spec.workflows]))
        result = apply_plan(plan, backend, allow_data_loss=allow_data_loss, reporter=reporter)
        raise_if_failed(result)
        job_completed(backend.ledger, "create-infra", stage, loaded.spec_hash, actor)
    return plan, result


def destroy_plan(loaded: LoadedProject, backend: Backend) -> Plan:
    """Every managed resource, deleted in reverse dependency order; protected ones kept."""
    full = build_plan(loaded, backend, "workflow")
    wanted = desired_resources(loaded, "workflow")
    protected = {r.address for r in wanted if r.deletion_protection}
    # A dataset (or bucket) holding something protected is kept too: dropping it would take
    # the protected object with it (DROP SCHEMA ... CASCADE; BigQuery's deleteContents).
    for r in wanted:
        if r.address in protected:
            protected.update(d for d in r.depends_on if d.startswith(("dataset.", "bucket.")))
    changes = []
    present = [c for c in full.changes if c.observed is not None]
    for c in reversed(present):
        if c.address in protected:
            changes.append(Change(c.kind, c.name, "unchanged", c.resource, c.observed,
                                  reason="deletion protection is on: kept"))
        else:
            changes.append(Change(c.kind, c.name, "delete", None, c.observed, reason="destroy",
                                  data_loss=bool(c.observed and c.observed.rows)))
    return Plan(stage="destroy", backend=backend.name, changes=tuple(changes), spec_hash=loaded.spec_hash)


def destroy(loaded: LoadedProject, backend: Backend, *, actor: str, reporter: Reporter = QUIET) -> tuple[Plan, ApplyResult]:
    """Delete every unprotected resource; refused (exit 3, nothing touched) while any run is in
    progress, since its steps read and write the buckets and tables being deleted."""
    from funnelops.runs.busy import backend_holders, refuse_while_running

    with backend.apply_lock():  # then no run can start between this look and the deletes
        refuse_while_running(backend_holders(backend, [w.name for w in loaded.spec.workflows]), "destroy")
        plan = destroy_plan(loaded, backend)
        result = apply_plan(plan, backend, allow_data_loss=True, reporter=reporter, max_parallel=1)
        raise_if_failed(result)
        backend.ledger.reset_stages(actor)
    return plan, result
