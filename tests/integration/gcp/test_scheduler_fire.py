"""Forcing a workflow through Cloud Scheduler (`jobs.run`): fired once, confirmed by the operation.

Issue #11 items 7 and 8. `jobs.run` is not idempotent (each call is one more dispatch) and it is
asynchronous: its answer is the Job with the PREVIOUS attempt's `status`, and the HTTP target is
called afterwards. The double models both (tests/gcp_double/scheduler.py), so these tests hold
funnelops to them: never retry the call; after an ambiguous failure (503, an answer lost) look
for the operation; never judge the new dispatch by `Job.status`.
"""

from __future__ import annotations

import pytest

from funnelops.errors import BackendError
from funnelops.runs import coordinator

from test_backend_iac import apply, gcp_env, make_project, open_gcp  # noqa: F401 - fixture re-used

pytestmark = pytest.mark.gcp
WORKFLOW = "funnel-dia"


@pytest.fixture
def deployed(gcp_env, gcp_double, tmp_path):  # noqa: F811
    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)
    apply(loaded, backend, "iac")
    gcp_double.reset_counters()
    gcp_double.dataproc.set_run_outcome(duration_s=None)  # runs until finished
    backend.runtime.confirm_timeout_s = 1.5
    return loaded, backend


def test_a_lost_answer_of_jobs_run_is_not_retried_and_the_run_is_found(deployed, gcp_double):
    """Before: retry.call retried the 503 and the second call dispatched a second run."""
    loaded, backend = deployed
    gcp_double.drop_answer_next(1, 503, "jobs.run")  # served, then answered 503
    run = coordinator.force_scheduler(backend, "dia", WORKFLOW, actor="pipeline")
    assert gcp_double.count("jobs.run") == 1
    ops = gcp_double.dataproc.operations(template=WORKFLOW)
    assert len(ops) == 1 and ops[0]["name"].endswith(str(run.id))
    assert backend.leases.read(WORKFLOW).data["run_id"] == run.id


def test_a_503_before_serving_is_not_retried_and_the_lease_is_kept(deployed, gcp_double):
    """Before: the 503 was retried (a second dispatch). Now: one call; no operation appears, so
    the command fails saying so, and keeps the lease (a late dispatch must not overlap)."""
    loaded, backend = deployed
    gcp_double.fail_next(1, 503, "jobs.run")
    with pytest.raises(BackendError) as failed:
        coordinator.force_scheduler(backend, "dia", WORKFLOW, actor="pipeline")
    assert "fired once, but no Dataproc operation" in failed.value.message
    assert "not idempotent" in failed.value.message
    gcp_double.scheduler.settle()
    assert gcp_double.count("jobs.run") == 1 and gcp_double.dataproc.operations(template=WORKFLOW) == []
    assert backend.leases.read(WORKFLOW) is not None


def test_a_refused_jobs_run_frees_the_lease_at_once(deployed, gcp_double):
    loaded, backend = deployed
    gcp_double.fail_next(1, 403, "jobs.run")
    with pytest.raises(BackendError) as failed:
        coordinator.force_scheduler(backend, "dia", WORKFLOW, actor="pipeline")
    assert "cloudscheduler.jobs.run" in (failed.value.hint or "")
    assert gcp_double.count("jobs.run") == 1
    assert backend.leases.read(WORKFLOW) is None  # nothing was dispatched: nothing to guard


def test_a_past_failed_attempt_does_not_release_the_lease_of_the_new_dispatch(deployed, gcp_double):
    """Before: the force path read `Job.status` (the previous attempt's failure), reported an error
    and released the lease while the new dispatch started a run: a run without its lease."""
    loaded, backend = deployed
    sched = backend.clients.scheduler
    name = backend.clients.job_name("dia")
    from google.cloud import scheduler_v1

    good = sched.get_job(name=name).http_target
    broken = scheduler_v1.HttpTarget(good)
    del broken.oauth_token  # an attempt made while the job lacked its token fails...
    sched.update_job(job=scheduler_v1.Job(name=name, http_target=broken), update_mask={"paths": ["http_target"]})
    gcp_double.scheduler.fire("dia")
    gcp_double.scheduler.settle()
    assert sched.get_job(name=name).status.code == 16  # UNAUTHENTICATED, and no run
    sched.update_job(job=scheduler_v1.Job(name=name, http_target=good),  # ...and the job is fixed since
                     update_mask={"paths": ["http_target"]})
    assert gcp_double.dataproc.operations(template=WORKFLOW) == []
    run = coordinator.force_scheduler(backend, "dia", WORKFLOW, actor="pipeline")
    assert run.state in ("PENDING", "RUNNING")
    ops = gcp_double.dataproc.operations(template=WORKFLOW, active=True)
    assert len(ops) == 1 and ops[0]["name"].endswith(str(run.id))
    lease = backend.leases.read(WORKFLOW)
    assert lease is not None and lease.data["run_id"] == run.id and lease.data["adopt"] == "scheduled"
    assert sched.get_job(name=name).status.code == 0  # this attempt's own result, recorded after it


def test_jobs_run_answers_with_the_previous_attempt(deployed, gcp_double):
    """The double refuses to tell a caller the result of the dispatch it just asked for, as
    Google does: the answer carries the previous attempt's status and time."""
    loaded, backend = deployed
    sched = backend.clients.scheduler
    name = backend.clients.job_name("mes")
    first = sched.run_job(name=name)
    assert not first.last_attempt_time and first.status.code == 0
    gcp_double.scheduler.settle()
    attempted = sched.get_job(name=name).last_attempt_time
    assert attempted
    second = sched.run_job(name=name)
    assert second.last_attempt_time == attempted  # the previous attempt, not this one
    gcp_double.scheduler.settle()
    assert len(gcp_double.dataproc.operations(template="funnel-mes")) == 2
