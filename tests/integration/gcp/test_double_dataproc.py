"""Dataproc workflow templates through the official REST client against the contract double.

These pin the semantics the gcp backend relies on: server-set name/version, read-modify-write
with a version check, instantiate as a long-running operation with WorkflowMetadata, requestId
deduplication, and "is it running?" answered by listing operations.
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.gcp

dataproc_v1 = pytest.importorskip("google.cloud.dataproc_v1")
from google.api_core import exceptions  # noqa: E402

PARENT = "projects/funnel-test/regions/us-central1"


def template(tid: str = "dia", args: list[str] | None = None) -> dict:
    return {
        "id": tid,
        "labels": {"app": "funnel", "granularity": tid},
        "placement": {"managed_cluster": {
            "cluster_name": "funnel",
            "config": {"software_config": {"image_version": "2.2-debian12",
                                           "optional_components": ["JUPYTER"]}},
        }},
        "jobs": [
            {"step_id": "trusted", "pyspark_job": {
                "main_python_file_uri": "gs://artifacts/flows/main.py",
                "args": args or ["--granularity=DAY", "--refined_flows=false"]}},
            {"step_id": "refined", "prerequisite_step_ids": ["trusted"], "pyspark_job": {
                "main_python_file_uri": "gs://artifacts/flows/main.py", "args": ["--x=1"]}},
        ],
        "dag_timeout": "3600s",
    }


def desired_update(current, args: list[str]):
    """Build an update body from desired state + the current version (never send the fetched
    template back: it carries output-only createTime/updateTime)."""
    body = dataproc_v1.WorkflowTemplate(template(current.id, args))
    body.name = current.name
    body.version = current.version
    return body


def operations(clients, filter_: str) -> list:
    """The operations mixin answers a ListOperationsResponse (no pager)."""
    resp = clients.templates.list_operations(
        request={"name": f"{PARENT}/operations", "filter": filter_})
    return list(resp.operations)


def template_of(op) -> str:
    """Which template an operation runs: WorkflowMetadata.template, read from the Any."""
    meta = dataproc_v1.WorkflowMetadata.pb(dataproc_v1.WorkflowMetadata())
    assert op.metadata.Unpack(meta)
    return meta.template


def test_create_sets_name_version_and_times(clients, gcp_double):
    created = clients.templates.create_workflow_template(parent=PARENT, template=template())
    assert created.name == f"{PARENT}/workflowTemplates/dia"
    assert created.version == 1
    assert created.create_time and created.update_time
    fetched = clients.templates.get_workflow_template(name=created.name)
    assert fetched.jobs[1].prerequisite_step_ids == ["trusted"]
    assert fetched.placement.managed_cluster.config.software_config.optional_components == [
        dataproc_v1.Component.JUPYTER]  # sent as an int enum, kept as the proto value
    listed = list(clients.templates.list_workflow_templates(parent=PARENT))
    assert [t.id for t in listed] == ["dia"]
    assert gcp_double.count("workflowTemplates.create") == 1


def test_duplicate_create_is_409_and_missing_is_404(clients):
    clients.templates.create_workflow_template(parent=PARENT, template=template())
    with pytest.raises(exceptions.Conflict):
        clients.templates.create_workflow_template(parent=PARENT, template=template())
    with pytest.raises(exceptions.NotFound):
        clients.templates.get_workflow_template(name=f"{PARENT}/workflowTemplates/nope")


def test_update_in_place_bumps_version_and_stale_version_is_aborted(clients, gcp_double):
    created = clients.templates.create_workflow_template(parent=PARENT, template=template())
    updated = clients.templates.update_workflow_template(
        template=desired_update(created, ["--trusted_flows=false"]))
    assert updated.version == 2
    assert updated.create_time == created.create_time
    assert list(updated.jobs[0].pyspark_job.args) == ["--trusted_flows=false"]
    # A writer holding version 1 lost the race: 409 ABORTED. The REST transport picks the
    # exception class from the HTTP status alone, so the client sees Conflict.
    with pytest.raises(exceptions.Conflict) as info:
        clients.templates.update_workflow_template(template=desired_update(created, ["--a=1"]))
    assert "version" in str(info.value)
    assert info.value.response.json()["error"]["status"] == "ABORTED"
    assert clients.templates.get_workflow_template(name=created.name).version == 2
    # The old version stays readable, as the API documents.
    old = clients.templates.get_workflow_template(request={"name": created.name, "version": 1})
    assert list(old.jobs[0].pyspark_job.args)[0] == "--granularity=DAY"


def test_update_without_version_is_rejected(clients):
    created = clients.templates.create_workflow_template(parent=PARENT, template=template())
    body = desired_update(created, ["--a=1"])
    body.version = 0
    with pytest.raises(exceptions.BadRequest):
        clients.templates.update_workflow_template(template=body)


def test_sending_back_a_fetched_template_is_a_contract_violation(clients, gcp_double):
    gcp_double.expect_violations()
    created = clients.templates.create_workflow_template(parent=PARENT, template=template())
    with pytest.raises(exceptions.BadRequest):
        clients.templates.update_workflow_template(template=created)
    assert {v.field for v in gcp_double.violations} == {"createTime", "updateTime"}
    assert {v.kind for v in gcp_double.violations} == {"output-only"}


def test_instantiate_runs_as_a_long_running_operation(clients, gcp_double):
    gcp_double.dataproc.set_run_outcome(duration_s=0.8)
    created = clients.templates.create_workflow_template(parent=PARENT, template=template())
    op = clients.templates.instantiate_workflow_template(
        request={"name": created.name, "request_id": "run-1", "parameters": {}})
    meta = op.metadata
    assert meta.template == created.name and meta.version == 1
    assert meta.state == dataproc_v1.WorkflowMetadata.State.RUNNING
    assert [n.step_id for n in meta.graph.nodes] == ["trusted", "refined"]
    assert not op.done()
    started = time.monotonic()
    op.result(timeout=10)
    assert time.monotonic() - started < 5
    assert op.metadata.state == dataproc_v1.WorkflowMetadata.State.DONE
    assert gcp_double.count("operations.get") >= 1


def test_request_id_dedupes_but_plain_instantiations_overlap(clients, gcp_double):
    gcp_double.dataproc.set_run_outcome(duration_s=None)  # run until finished by the test
    created = clients.templates.create_workflow_template(parent=PARENT, template=template())
    first = clients.templates.instantiate_workflow_template(
        request={"name": created.name, "request_id": "same-id"})
    again = clients.templates.instantiate_workflow_template(
        request={"name": created.name, "request_id": "same-id"})
    assert first.operation.name == again.operation.name
    clients.templates.instantiate_workflow_template(name=created.name)  # Dataproc lets it overlap
    active = operations(clients, "status.state = ACTIVE")
    assert len(active) == 2
    assert {template_of(op) for op in active} == {created.name}
    assert gcp_double.dataproc.finish(template="dia") == 2
    assert operations(clients, "status.state = ACTIVE") == []
    assert len(operations(clients, "status.state = DONE AND labels.app = funnel")) == 2
    assert operations(clients, "labels.app = other") == []


def test_failed_run_surfaces_as_operation_error(clients, gcp_double):
    gcp_double.dataproc.set_run_outcome("mes", duration_s=0.1, error="Job trusted failed")
    created = clients.templates.create_workflow_template(parent=PARENT, template=template("mes"))
    op = clients.templates.instantiate_workflow_template(name=created.name)
    with pytest.raises(exceptions.GoogleAPICallError, match="Job trusted failed"):
        op.result(timeout=10)


def test_bad_instantiate_requests_are_refused(clients):
    created = clients.templates.create_workflow_template(parent=PARENT, template=template())
    with pytest.raises(exceptions.BadRequest, match="requestId"):
        clients.templates.instantiate_workflow_template(
            request={"name": created.name, "request_id": "not valid!"})
    with pytest.raises(exceptions.BadRequest, match="parameters"):
        clients.templates.instantiate_workflow_template(
            request={"name": created.name, "parameters": {"UNDECLARED": "x"}})
    with pytest.raises(exceptions.Conflict, match="version"):
        clients.templates.instantiate_workflow_template(request={"name": created.name, "version": 7})


def test_semantic_template_checks(clients):
    bad = template()
    bad["jobs"][1]["prerequisite_step_ids"] = ["missing"]
    with pytest.raises(exceptions.BadRequest, match="prerequisite"):
        clients.templates.create_workflow_template(parent=PARENT, template=bad)
    bad = template()
    bad["dag_timeout"] = "60s"
    with pytest.raises(exceptions.BadRequest, match="dagTimeout"):
        clients.templates.create_workflow_template(parent=PARENT, template=bad)


def test_delete_and_locations_parent(clients):
    loc_parent = "projects/funnel-test/locations/us-central1"
    created = clients.templates.create_workflow_template(parent=loc_parent, template=template("anio"))
    assert created.name == f"{loc_parent}/workflowTemplates/anio"
    clients.templates.delete_workflow_template(name=created.name)
    with pytest.raises(exceptions.NotFound):
        clients.templates.get_workflow_template(name=created.name)


def test_concurrent_instantiations_with_one_request_id_start_one_run(clients, gcp_double):
    from concurrent.futures import ThreadPoolExecutor

    gcp_double.dataproc.set_run_outcome(duration_s=None)
    created = clients.templates.create_workflow_template(parent=PARENT, template=template())
    with ThreadPoolExecutor(8) as pool:
        names = set(pool.map(lambda _: clients.templates.instantiate_workflow_template(
            request={"name": created.name, "request_id": "force-dia-1"}).operation.name, range(16)))
    assert len(names) == 1
    assert len(gcp_double.dataproc.operations(active=True)) == 1
    assert gcp_double.count("workflowTemplates.instantiate") == 16


def test_cancel_operation_ends_it_with_cancelled(clients, gcp_double):
    gcp_double.dataproc.set_run_outcome(duration_s=None)
    created = clients.templates.create_workflow_template(parent=PARENT, template=template())
    op = clients.templates.instantiate_workflow_template(name=created.name)
    clients.templates.cancel_operation(request={"name": op.operation.name})
    with pytest.raises(exceptions.GoogleAPICallError, match="cancelled"):
        op.result(timeout=10)
    assert operations(clients, "status.state = ACTIVE") == []
