"""The reverse rule of the apply lease: which plans an apply may carry out while a run is in progress."""

from __future__ import annotations

import pytest

from funnelops.backends.types import Holder
from funnelops.errors import RunInProgress
from funnelops.plan.model import Change, Plan
from funnelops.runs.busy import refuse_apply_while_running, run_unsafe_changes

RUN = [Holder(workflow="wf", run_id=7, owner="run-7", acquired_at="2026-11-29T10:00:00+00:00", trigger="scheduled")]


def plan(*changes: tuple[str, str, str]) -> Plan:
    return Plan(stage="iac", backend="local", spec_hash="h",
                changes=tuple(Change(kind, name, action, None, None) for kind, name, action in changes))


def test_templates_schedulers_and_new_data_resources_may_change_during_a_run() -> None:
    p = plan(("workflow_template", "wf", "update"), ("scheduler", "dia", "replace"), ("alert_policy", "a", "delete"),
             ("table", "ds.new", "create"), ("dataset", "ds2", "create"), ("table", "ds.t", "unchanged"))
    assert run_unsafe_changes(p) == []
    refuse_apply_while_running(p, RUN)  # no refusal


@pytest.mark.parametrize("kind, action", [("table", "update"), ("table", "replace"), ("table", "delete"),
                                          ("dataset", "update"), ("bucket", "delete"), ("view", "update"),
                                          ("external_table", "replace"), ("artifacts", "create"),
                                          ("artifacts", "update")])
def test_changes_to_what_a_run_reads_or_writes_wait_for_it(kind: str, action: str) -> None:
    p = plan((kind, "x", action), ("workflow_template", "wf", "update"))
    assert [c.kind for c in run_unsafe_changes(p)] == [kind]
    with pytest.raises(RunInProgress) as refused:
        refuse_apply_while_running(p, RUN)
    assert refused.value.exit_code == 3
    assert f"cannot apply this plan ({action} {kind}.x) while a run is in progress: workflow 'wf': run 7" \
        in refused.value.message
    refuse_apply_while_running(p, [])  # no run: goes on
