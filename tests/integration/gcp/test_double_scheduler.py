"""Cloud Scheduler jobs through the official REST client, and the jobs.run -> Dataproc chain."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.gcp

scheduler_v1 = pytest.importorskip("google.cloud.scheduler_v1")
dataproc_v1 = pytest.importorskip("google.cloud.dataproc_v1")
from google.api_core import exceptions  # noqa: E402
from google.protobuf import field_mask_pb2  # noqa: E402

LOCATION = "projects/funnel-test/locations/us-central1"
TEMPLATES = "projects/funnel-test/regions/us-central1"


def job(job_id: str = "dia", template: str = "dia", oauth: bool = True, body: dict | None = None):
    target = {
        "uri": f"https://dataproc.googleapis.com/v1/{TEMPLATES}/workflowTemplates/{template}:instantiate",
        "http_method": scheduler_v1.HttpMethod.POST,
        "body": json.dumps(body or {}).encode(),
        "headers": {"Content-Type": "application/json"},
    }
    if oauth:
        target["oauth_token"] = {"service_account_email": "funnel@funnel-test.iam.gserviceaccount.com",
                                 "scope": "https://www.googleapis.com/auth/cloud-platform"}
    return {"name": f"{LOCATION}/jobs/{job_id}", "description": "Día", "schedule": "0 6 * * *",
            "time_zone": "America/Bogota", "http_target": target,
            "retry_config": {"retry_count": 1}, "attempt_deadline": "1800s"}


def make_template(clients, tid: str = "dia"):
    return clients.templates.create_workflow_template(parent=TEMPLATES, template={
        "id": tid,
        "placement": {"managed_cluster": {
            "cluster_name": "funnel",
            "config": {"gce_cluster_config": {"zone_uri": "us-central1-a"}}}},
        "jobs": [{"step_id": "trusted",
                  "pyspark_job": {"main_python_file_uri": "gs://artifacts/main.py"}}],
    })


def test_create_fills_server_side_fields(clients, gcp_double):
    created = clients.scheduler.create_job(parent=LOCATION, job=job())
    assert created.state == scheduler_v1.Job.State.ENABLED
    assert created.user_update_time and created.schedule_time
    assert created.http_target.http_method == scheduler_v1.HttpMethod.POST
    assert created.retry_config.retry_count == 1
    assert created.retry_config.max_doublings == 5  # server default filled in
    assert created.attempt_deadline.seconds == 1800
    with pytest.raises(exceptions.Conflict):
        clients.scheduler.create_job(parent=LOCATION, job=job())
    assert [j.name for j in clients.scheduler.list_jobs(parent=LOCATION)] == [created.name]
    assert gcp_double.count("jobs.create") == 2


def test_patch_with_update_mask_changes_only_the_masked_fields(clients):
    created = clients.scheduler.create_job(parent=LOCATION, job=job())
    patch = scheduler_v1.Job(name=created.name, schedule="30 7 * * 1-5", description="ignored")
    updated = clients.scheduler.update_job(
        job=patch, update_mask=field_mask_pb2.FieldMask(paths=["schedule"]))
    assert updated.schedule == "30 7 * * 1-5"
    assert updated.description == "Día"  # not in the mask: untouched
    assert updated.http_target.uri == created.http_target.uri
    with pytest.raises(exceptions.BadRequest, match="[Ss]chedule"):
        clients.scheduler.update_job(job=scheduler_v1.Job(name=created.name, schedule="nope"),
                                     update_mask=field_mask_pb2.FieldMask(paths=["schedule"]))


def test_pause_and_resume_follow_the_state_rules(clients):
    created = clients.scheduler.create_job(parent=LOCATION, job=job())
    assert clients.scheduler.pause_job(name=created.name).state == scheduler_v1.Job.State.PAUSED
    with pytest.raises(exceptions.BadRequest, match="ENABLED"):
        clients.scheduler.pause_job(name=created.name)
    assert clients.scheduler.resume_job(name=created.name).state == scheduler_v1.Job.State.ENABLED
    with pytest.raises(exceptions.BadRequest, match="PAUSED"):
        clients.scheduler.resume_job(name=created.name)


def test_run_starts_the_dataproc_workflow_named_in_the_target(clients, gcp_double):
    gcp_double.dataproc.set_run_outcome(duration_s=None)
    tpl = make_template(clients)
    created = clients.scheduler.create_job(parent=LOCATION, job=job())
    ran = clients.scheduler.run_job(name=created.name)
    assert not ran.last_attempt_time  # the answer is the job as it was: no attempt yet
    gcp_double.scheduler.settle()
    got = clients.scheduler.get_job(name=created.name)
    assert got.last_attempt_time and got.status.code == 0
    ops = clients.templates.list_operations(
        request={"name": f"{TEMPLATES}/operations", "filter": "status.state = ACTIVE"}).operations
    assert len(ops) == 1
    meta = dataproc_v1.WorkflowMetadata.pb(dataproc_v1.WorkflowMetadata())
    ops[0].metadata.Unpack(meta)
    assert meta.template == tpl.name
    # "even if the job is already running": a second run starts a second workflow.
    clients.scheduler.run_job(name=created.name)
    gcp_double.scheduler.settle()
    assert len(gcp_double.dataproc.operations(template="dia", active=True)) == 2
    assert [d["operation"] is not None for d in gcp_double.scheduler.dispatches] == [True, True]


def test_run_reports_what_the_real_dispatch_would_get_wrong(clients, gcp_double):
    make_template(clients)
    no_token = clients.scheduler.create_job(parent=LOCATION, job=job("no-token", oauth=False))
    assert clients.scheduler.run_job(name=no_token.name).status.code == 0  # answered before the attempt
    missing = clients.scheduler.create_job(parent=LOCATION, job=job("missing", template="gone"))
    clients.scheduler.run_job(name=missing.name)
    gcp_double.scheduler.settle()
    assert clients.scheduler.get_job(name=no_token.name).status.code == 16  # UNAUTHENTICATED
    assert clients.scheduler.get_job(name=missing.name).status.code == 5  # NOT_FOUND
    assert gcp_double.dataproc.operations() == []


def test_target_body_is_held_to_the_instantiate_schema(clients, gcp_double):
    gcp_double.expect_violations()
    make_template(clients)
    bad = clients.scheduler.create_job(parent=LOCATION, job=job("bad", body={"requestid": "x"}))
    clients.scheduler.run_job(name=bad.name)
    gcp_double.scheduler.settle()
    ran = clients.scheduler.get_job(name=bad.name)
    assert ran.status.code == 3  # INVALID_ARGUMENT, and the violation is on record
    assert [(v.field, v.kind) for v in gcp_double.violations] == [("requestid", "unknown-field")]


def test_delete_then_not_found(clients):
    created = clients.scheduler.create_job(parent=LOCATION, job=job())
    clients.scheduler.delete_job(name=created.name)
    with pytest.raises(exceptions.NotFound):
        clients.scheduler.get_job(name=created.name)
    with pytest.raises(exceptions.NotFound):
        clients.scheduler.run_job(name=created.name)


def test_per_service_endpoint_and_the_shared_operations_path(gcp_double):
    """``d.url`` serves all three APIs; Dataproc and Scheduler both define
    ``/v1/projects/*/locations/*/operations``, which ``d.url`` routes to Dataproc. A client that
    needs Scheduler's can use ``d.endpoint("scheduler")``."""
    from google.auth.credentials import AnonymousCredentials

    only = scheduler_v1.CloudSchedulerClient(
        transport="rest", credentials=AnonymousCredentials(),
        client_options={"api_endpoint": gcp_double.endpoint("scheduler")})
    created = only.create_job(parent=LOCATION, job=job())
    assert only.get_job(name=created.name).schedule == "0 6 * * *"
    requests = pytest.importorskip("requests")
    resp = requests.get(f"{gcp_double.url}/v1/{LOCATION}/operations", timeout=10)
    assert resp.status_code == 200
    assert gcp_double.count("dataproc.projects.locations.operations.list") == 1
    gcp_double.expect_violations()
    resp = requests.get(f"{gcp_double.endpoint('scheduler')}/v1/{TEMPLATES}/workflowTemplates",
                        timeout=10)
    assert resp.status_code == 404  # the scheduler-only endpoint knows no Dataproc paths
