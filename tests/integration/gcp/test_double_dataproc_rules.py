"""The double refuses what Dataproc refuses about parameters and managed clusters.

Before these rules the double took a parameter whose field path named nothing, an instantiation
without values, and clusters Google would not create, so a green gcp tier meant nothing about
them. Each test sends one such request through the official client and expects Google's 400.
"""

from __future__ import annotations

import copy

import pytest

pytestmark = pytest.mark.gcp

dataproc_v1 = pytest.importorskip("google.cloud.dataproc_v1")
from google.api_core import exceptions  # noqa: E402

PARENT = "projects/funnel-test/regions/us-central1"
ARG0 = "jobs['trusted'].pysparkJob.args[0]"
ARG1 = "jobs['trusted'].pysparkJob.args[1]"


def template(tid: str = "dia", parameters: list | None = None, config: dict | None = None) -> dict:
    return {
        "id": tid,
        "placement": {"managedCluster": {"clusterName": "funnel", "config": config or {
            "workerConfig": {"numInstances": 2}, "softwareConfig": {"imageVersion": "2.2-debian12"}}}},
        "jobs": [{"stepId": "trusted", "pysparkJob": {
            "mainPythonFileUri": "gs://artifacts/main.py",
            "args": ["--granularity=DAY", "--execution_type=delta", "--lease=scheduled"]}}],
        "parameters": parameters if parameters is not None else [
            {"name": "FO_EXECUTION_TYPE", "fields": [ARG1],
             "validation": {"regex": {"regexes": ["^--execution_type=(full|delta)$"]}}}],
    }


def create(clients, body: dict):
    return clients.templates.create_workflow_template(
        parent=PARENT, template=dataproc_v1.WorkflowTemplate.from_json(__import__("json").dumps(body)))


@pytest.mark.parametrize("path, says", [
    ("jobs['trusted'].pySparkJob.args[1]", "does not exist"),  # the job type key is pysparkJob in REST
    ("jobs['nope'].pysparkJob.args[1]", "does not exist"),
    ("jobs['trusted'].pysparkJob.args[9]", "does not exist"),
    ("jobs['trusted'].pysparkJob.args", "whole map or repeated field"),
    ("jobs[trusted].pysparkJob.args[1]", "cannot parse"),
])
def test_a_parameter_path_that_names_nothing_is_refused(clients, path, says):
    prm = [{"name": "FO_EXECUTION_TYPE", "fields": [path]}]
    with pytest.raises(exceptions.BadRequest, match="Invalid field path") as info:
        create(clients, template(parameters=prm))
    assert path in info.value.message and says in info.value.message


def test_parameter_declarations_are_checked(clients):
    with pytest.raises(exceptions.BadRequest, match="at most one parameter"):
        create(clients, template(parameters=[{"name": "A", "fields": [ARG1]}, {"name": "B", "fields": [ARG1]}]))
    with pytest.raises(exceptions.BadRequest, match="Invalid parameter name"):
        create(clients, template(parameters=[{"name": "1ST", "fields": [ARG1]}]))
    with pytest.raises(exceptions.BadRequest, match="invalid regex"):
        create(clients, template(parameters=[{"name": "A", "fields": [ARG1],
                                              "validation": {"regex": {"regexes": ["(unclosed"]}}}]))
    # a map value and the cluster name are fine paths
    ok = template(parameters=[{"name": "CLUSTER", "fields": ["placement.managedCluster.clusterName"]},
                              {"name": "A", "fields": [ARG0]}])
    assert create(clients, ok).parameters[0].name == "CLUSTER"


def test_instantiate_requires_checks_and_substitutes_every_value(clients, gcp_double):
    gcp_double.dataproc.set_run_outcome(duration_s=None)
    created = create(clients, template(parameters=[
        {"name": "FO_EXECUTION_TYPE", "fields": [ARG1],
         "validation": {"regex": {"regexes": ["^--execution_type=(full|delta)$"]}}},
        {"name": "FO_LEASE", "fields": ["jobs['trusted'].pysparkJob.args[2]"]}]))
    with pytest.raises(exceptions.BadRequest, match=r"must be provided.*missing \['FO_LEASE'\]"):
        clients.templates.instantiate_workflow_template(
            request={"name": created.name, "parameters": {"FO_EXECUTION_TYPE": "--execution_type=full"}})
    with pytest.raises(exceptions.BadRequest, match="must be provided"):
        clients.templates.instantiate_workflow_template(name=created.name)
    with pytest.raises(exceptions.BadRequest, match="does not match"):
        clients.templates.instantiate_workflow_template(request={"name": created.name, "parameters": {
            "FO_EXECUTION_TYPE": "--execution_type=everything", "FO_LEASE": "--lease=x"}})
    op = clients.templates.instantiate_workflow_template(request={"name": created.name, "parameters": {
        "FO_EXECUTION_TYPE": "--execution_type=full", "FO_LEASE": "--lease=abc"}})
    assert gcp_double.dataproc.run_args(op.operation.name) == {
        "trusted": ["--granularity=DAY", "--execution_type=full", "--lease=abc"]}
    # the template itself is unchanged: values belong to one run
    assert list(clients.templates.get_workflow_template(name=created.name).jobs[0].pyspark_job.args)[1:] == [
        "--execution_type=delta", "--lease=scheduled"]


@pytest.mark.parametrize("edit, says", [
    (lambda mc: mc.update(clusterName="c" * 36), "Invalid cluster name"),
    (lambda mc: mc.update(clusterName="Funnel"), "Invalid cluster name"),
    (lambda mc: mc["config"]["workerConfig"].update(numInstances=1), "numInstances 1"),
    (lambda mc: mc["config"].update(gceClusterConfig={"serviceAccount": "funnel-workflows"}), "e-mail"),
    (lambda mc: mc["config"].update(initializationActions=[{"executableFile": "/tmp/init.sh"}]), "gs://"),
    (lambda mc: mc["config"].update(initializationActions=[{"executableFile": "gs://b/i.sh",
                                                             "executionTimeout": "10 minutes"}]), "duration"),
])
def test_a_cluster_dataproc_would_not_create_is_refused(clients, gcp_double, edit, says):
    # The REST client checks a Duration itself; the raw request shows the double's own rule too.
    body = template()
    edit(body["placement"]["managedCluster"])
    if says == "duration":
        import json
        import urllib.request

        req = urllib.request.Request(f"{gcp_double.url}/v1/{PARENT}/workflowTemplates", method="POST",
                                     data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req)
        assert info.value.code == 400
        gcp_double.expect_violations()
        return
    with pytest.raises(exceptions.BadRequest, match=says):
        create(clients, body)


def test_zero_workers_only_with_the_single_node_property(clients, gcp_double):
    """An explicit 0 (sent raw: proto3 JSON drops a 0 on the client) needs the property."""
    import json
    import urllib.request

    body = template()
    body["placement"]["managedCluster"]["config"]["workerConfig"]["numInstances"] = 0

    def post(b):
        req = urllib.request.Request(f"{gcp_double.url}/v1/{PARENT}/workflowTemplates", method="POST",
                                     data=json.dumps(b).encode(), headers={"Content-Type": "application/json"})
        return urllib.request.urlopen(req)

    with pytest.raises(urllib.error.HTTPError) as info:
        post(body)
    assert info.value.code == 400 and "dataproc:dataproc.allow.zero.workers" in info.value.read().decode()
    single = copy.deepcopy(body)
    single["id"] = "single"
    single["placement"]["managedCluster"]["config"]["softwareConfig"]["properties"] = {
        "dataproc:dataproc.allow.zero.workers": "true"}
    assert post(single).status == 200
