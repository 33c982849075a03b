"""Runs on the gcp backend: leases in GCS, Dataproc operations as runs, forcing through Cloud
Scheduler, and the ledger shared between processes. Real clients, the double and fake-gcs."""

from __future__ import annotations

import threading
import time

import pytest

from funnelops.runs import coordinator
from funnelops.errors import BackendError, RunInProgress

from test_backend_iac import apply, gcp_env, make_project, open_gcp  # noqa: F401 - fixture re-used

pytestmark = pytest.mark.gcp


@pytest.fixture
def deployed(gcp_env, gcp_double, tmp_path):  # noqa: F811
    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)
    apply(loaded, backend, "iac")
    gcp_double.reset_counters()
    return loaded, backend


def test_start_runs_one_and_refuses_a_second_while_it_runs(deployed, gcp_double):
    loaded, backend = deployed
    gcp_double.dataproc.set_run_outcome("funnel-dia", duration_s=None)  # runs until finished
    rt = backend.runtime
    run = coordinator.start(backend, "funnel-dia", trigger="initial-load", actor="ci", extra_args=["--execution_type=full"])
    assert run.state == "RUNNING" and "--execution_type=full" in run.args
    op = gcp_double.dataproc.operations(template="funnel-dia")[0]
    lease = backend.leases.read("funnel-dia")
    # A value for every declared parameter: the run's execution type and the CLI's lease token.
    assert op["metadata"]["parameters"] == {"FO_EXECUTION_TYPE": "--execution_type=full",
                                            "FO_LEASE": f"--lease={lease.token}", "FO_PERIOD": "--period=current"}
    args = gcp_double.dataproc.run_args(op["name"])["funnel-flows"]
    assert args[-4:] == ["--execution_type=full", f"--lease={lease.token}", "--period=current",
                         "--workflow=funnel-dia"] and args == run.args
    with pytest.raises(RunInProgress) as refused:
        coordinator.start(backend, "funnel-dia", trigger="manual", actor="someone")
    assert refused.value.exit_code == 3
    assert f"workflow 'funnel-dia' is already running: run {run.id}" in refused.value.message
    holder = rt.holder("funnel-dia")
    assert holder.run_id == run.id and holder.trigger == "initial-load"
    assert len(gcp_double.dataproc.operations(template="funnel-dia")) == 1
    gcp_double.dataproc.finish(template="funnel-dia")
    done = coordinator.wait(rt, [run.id], poll_s=0.05)
    assert done[0].state == "DONE" and done[0].ended_at
    assert backend.leases.read("funnel-dia") is None  # released when the run ended
    assert rt.holder("funnel-dia") is None
    assert [r.id for r in rt.list("funnel-dia")] == [run.id]
    gcp_double.assert_clean()


def test_two_concurrent_starts_exactly_one_wins(deployed, gcp_double, tmp_path):
    loaded, backend = deployed
    gcp_double.dataproc.set_run_outcome(duration_s=None)
    backends = [backend] + [open_gcp(loaded.path, tmp_path)[1] for _ in range(3)]
    barrier = threading.Barrier(len(backends))
    results: list[object] = []

    def go(b):
        barrier.wait()
        try:
            results.append(coordinator.start(b, "funnel-mes", trigger="manual", actor="racer"))
        except RunInProgress as exc:
            results.append(exc)

    threads = [threading.Thread(target=go, args=(b,)) for b in backends]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wins = [r for r in results if not isinstance(r, RunInProgress)]
    assert len(wins) == 1 and len(results) == 4
    assert len(gcp_double.dataproc.operations(template="funnel-mes")) == 1
    gcp_double.assert_clean()


def test_a_stale_lease_is_taken_over_and_a_live_one_never(deployed, gcp_double):
    import json

    loaded, backend = deployed
    leases = backend.leases
    gcp_double.dataproc.set_run_outcome(duration_s=None)
    # A crashed starter left a lease that has expired: taken over.
    blob = backend.clients.storage.bucket(backend.artifacts_bucket).blob("funnelops/leases/funnel-anio.json")
    blob.upload_from_string(json.dumps({"workflow": "funnel-anio", "owner": "crashed", "expires": time.time() - 1,
                                        "acquired_at": "2024-01-01T00:00:00+00:00"}))
    run = coordinator.start(backend, "funnel-anio", trigger="manual", actor="me")
    lease = leases.read("funnel-anio")
    assert lease.data["run_id"] == run.id and lease.data["owner"] != "crashed"
    # A lease whose operation is done is stale too, even before it expires.
    gcp_double.dataproc.finish(template="funnel-anio")
    second = coordinator.start(backend, "funnel-anio", trigger="manual", actor="me")
    assert second.id != run.id
    # A live lease (no operation yet, not expired: a start in progress elsewhere) is never taken.
    gcp_double.dataproc.finish(template="funnel-anio")
    coordinator.wait(backend.runtime, [second.id], poll_s=0.05)
    blob.upload_from_string(json.dumps({"workflow": "funnel-anio", "owner": "starting", "actor": "other@host",
                                        "trigger": "forced", "expires": time.time() + 600,
                                        "acquired_at": "2024-01-01T10:02:11+00:00"}))
    with pytest.raises(RunInProgress) as refused:
        coordinator.start(backend, "funnel-anio", trigger="manual", actor="me")
    assert "started 10:02:11 by a forced run" in refused.value.message
    assert leases.read("funnel-anio").data["owner"] == "starting"
    gcp_double.assert_clean()


def test_a_retried_instantiate_never_starts_a_second_run(deployed, gcp_double):
    loaded, backend = deployed
    gcp_double.dataproc.set_run_outcome(duration_s=None)
    api = backend.clients.dataproc
    real = api.instantiate_workflow_template
    sent = []

    def lost_answer(*args, **kwargs):  # the first answer is lost on the way back: we retry
        sent.append(kwargs["request"]["request_id"])
        op = real(*args, **kwargs)
        if len(sent) == 1:
            from google.api_core import exceptions

            raise exceptions.ServiceUnavailable("connection reset after the request was served")
        return op

    api.instantiate_workflow_template = lost_answer
    try:
        run = coordinator.start(backend, "funnel-dia", trigger="manual", actor="me")
    finally:
        api.instantiate_workflow_template = real
    assert len(sent) == 2 and sent[0] == sent[1]
    assert len(gcp_double.dataproc.operations(template="funnel-dia")) == 1
    assert gcp_double.dataproc.operations(template="funnel-dia")[0]["name"].endswith(str(run.id))


def test_force_runs_the_scheduler_and_confirms_the_operation(deployed, gcp_double):
    loaded, backend = deployed
    gcp_double.dataproc.set_run_outcome(duration_s=None)
    run = coordinator.force_scheduler(backend, "dia", "funnel-dia", actor="pipeline")
    assert gcp_double.count("jobs.run") == 1
    dispatched = gcp_double.scheduler.dispatches[-1]
    assert dispatched["operation"].endswith(str(run.id)) and run.trigger == "forced"
    assert backend.leases.read("funnel-dia").data["run_id"] == run.id
    with pytest.raises(RunInProgress):
        coordinator.force_scheduler(backend, "dia", "funnel-dia", actor="pipeline")
    assert gcp_double.count("jobs.run") == 1  # refused before firing: never a second run
    # A run the scheduler started on its own clock (no lease) is seen too.
    gcp_double.dataproc.finish()
    coordinator.wait(backend.runtime, [run.id], poll_s=0.05)
    gcp_double.scheduler.fire("mes")  # its own clock
    gcp_double.scheduler.settle()
    holder = backend.runtime.holder("funnel-mes")
    assert holder is not None and holder.trigger == "scheduled"
    with pytest.raises(RunInProgress):
        coordinator.start(backend, "funnel-mes", trigger="manual", actor="me")
    states = backend.runtime.scheduler_states()
    assert states["dia"].last_fire and states["dia"].paused is False
    backend.runtime.set_paused("dia", True)
    backend.runtime.set_paused("dia", True)  # already paused: fine
    assert backend.runtime.scheduler_states()["dia"].paused is True
    gcp_double.assert_clean()


def test_failed_and_cancelled_runs_map_to_run_states(deployed, gcp_double):
    loaded, backend = deployed
    gcp_double.dataproc.set_run_outcome("funnel-dia", duration_s=0.1, error="step funnel-flows failed")
    gcp_double.dataproc.set_run_outcome("funnel-mes", duration_s=None)
    failed = coordinator.start(backend, "funnel-dia", trigger="manual", actor="me")
    running = coordinator.start(backend, "funnel-mes", trigger="manual", actor="me")
    assert coordinator.wait(backend.runtime, [failed.id], poll_s=0.05)[0].state == "FAILED"
    cancelled = coordinator.cancel(backend.runtime, running.id)
    assert cancelled.state == "CANCELLED"
    assert backend.leases.read("funnel-mes") is None
    got = backend.runtime.get(failed.id)
    assert got.state == "FAILED" and "failed" in got.error


def test_the_ledger_persists_and_survives_concurrent_writers(deployed, tmp_path):
    loaded, backend = deployed
    others = [open_gcp(loaded.path, tmp_path)[1] for _ in range(4)]

    def write(i, b):
        for j in range(5):
            b.ledger.record_event("test", f"w{i}", {"n": j})

    threads = [threading.Thread(target=write, args=(i, b)) for i, b in enumerate(others)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(backend.ledger.events("test")) == 20  # no write lost to a race
    backend.ledger.record_stage("iac", "h", "me")
    backend.ledger.record_stage("initial_data", "h", "me")
    assert set(open_gcp(loaded.path, tmp_path)[1].ledger.stages()) == {"iac", "initial_data"}


def test_faults_at_a_rate_still_converge(gcp_env, gcp_double, tmp_path):  # noqa: F811
    from funnelops.plan.diff import build_plan

    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)
    gcp_double.set_faults(0.15, (429, 503), seed=7)
    apply(loaded, backend, "iac")
    assert sum(gcp_double.faults.values()) > 5
    plan = build_plan(loaded, backend, "iac")
    assert not plan.has_changes
    gcp_double.set_faults(0.0)
    gcp_double.assert_clean()


def test_a_403_fails_fast_naming_the_resource_and_permission(gcp_env, gcp_double, tmp_path):  # noqa: F811
    from funnelops.plan.apply import apply_plan
    from funnelops.plan.diff import build_plan

    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)
    gcp_double.fail_next(1, 403, "workflowTemplates.create")
    started = time.monotonic()
    result = apply_plan(build_plan(loaded, backend, "iac"), backend)
    assert time.monotonic() - started < 20
    [(change, error)] = result.failed
    assert change.address.startswith("workflow_template.")
    assert f"workflow template {change.name}: 403" in error
    assert gcp_double.count("workflowTemplates.create") == 4  # the failed one was not retried
    gcp_double.fail_next(1, 403, "workflowTemplates.list")
    with pytest.raises(BackendError) as info:
        backend.handler("workflow_template").observe([])
    assert "dataproc.workflowTemplates.list" in info.value.hint


def test_destroy_refuses_while_a_run_is_in_progress(deployed, gcp_double):
    """Issue #9 item 8 on gcp: a live run (a Dataproc operation, with its lease) stops destroy."""
    from funnelops.lifecycle.infra import destroy
    from funnelops.plan.diff import build_plan

    loaded, backend = deployed
    gcp_double.dataproc.set_run_outcome("funnel-mes", duration_s=None)
    run = coordinator.start(backend, "funnel-mes", trigger="manual", actor="ci")
    present = [c.address for c in build_plan(loaded, backend, "iac").changes if c.observed is not None]
    with pytest.raises(RunInProgress) as refused:
        destroy(loaded, backend, actor="ci")
    assert refused.value.exit_code == 3
    assert "cannot destroy while a run is in progress" in refused.value.message
    assert f"run {run.id}" in refused.value.message and "funnel-mes" in refused.value.message
    backend.refresh()
    assert [c.address for c in build_plan(loaded, backend, "iac").changes if c.observed is not None] == present
    gcp_double.dataproc.finish(template="funnel-mes")
    assert coordinator.wait(backend.runtime, [run.id], poll_s=0.05)[0].state == "DONE"
    _, result = destroy(loaded, backend, actor="ci")
    assert result.done


def test_status_shows_the_last_fire_of_a_gcp_scheduler(deployed, gcp_double):
    """Before: the gcp runtime reported `last_run` and `status` read `last_fire`, so `status` and
    `scheduler list --json` never showed a scheduler's last fire on gcp. Both runtimes now return
    a SchedulerState, and the field is the same."""
    from funnelops.lifecycle.status import collect_status

    loaded, backend = deployed
    gcp_double.dataproc.set_run_outcome(duration_s=None)
    before = {s["id"]: s for s in collect_status(loaded, backend)["schedulers"]}
    assert before["dia"]["exists"] and before["dia"]["last_fire"] is None
    run = coordinator.force_scheduler(backend, "dia", "funnel-dia", actor="pipeline")
    after = {s["id"]: s for s in collect_status(loaded, backend)["schedulers"]}
    fired = after["dia"]["last_fire"]
    assert fired and fired == backend.runtime.scheduler_states()["dia"].last_fire
    assert after["mes"]["last_fire"] is None  # only the one that fired
    gcp_double.dataproc.finish()
    assert coordinator.wait(backend.runtime, [run.id], poll_s=0.05)[0].state == "DONE"
    gcp_double.assert_clean()
