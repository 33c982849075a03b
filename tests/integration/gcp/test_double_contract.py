"""The validator itself, driven with raw HTTP so nothing in a client can hide a bad body.

Each case sends one thing the discovery documents forbid and checks both halves of the
promise: the request is answered 400 like Google would, and the violation is on record.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gcp

requests = pytest.importorskip("requests")

TEMPLATES = "/v1/projects/funnel-test/regions/us-central1/workflowTemplates"
JOBS = "/v1/projects/funnel-test/locations/us-central1/jobs"
DATASETS = "/bigquery/v2/projects/funnel-test/datasets"
INT_ENUMS = {"$alt": "json;enum-encoding=int"}


def template(**extra):
    return {"id": "dia",
            "placement": {"managedCluster": {"clusterName": "c", "config": {"masterConfig": {"numInstances": 1}}}},
            "jobs": [{"stepId": "trusted", "pysparkJob": {"mainPythonFileUri": "gs://a/m.py"}}],
            **extra}


def job(**extra):
    body = {"name": "projects/funnel-test/locations/us-central1/jobs/dia", "schedule": "0 6 * * *",
            "timeZone": "America/Bogota",
            "httpTarget": {"uri": "https://example.com/hook", "httpMethod": 1}}
    body.update(extra)
    return body


def post(d, path, body, params=None):
    return requests.post(d.url + path, json=body, params=params or INT_ENUMS, timeout=10)


@pytest.mark.parametrize("body, field, kind", [
    (template(owner="me"), "owner", "unknown-field"),
    (template(createTime="2024-01-01T00:00:00Z"), "createTime", "output-only"),
    (template(name="projects/funnel-test/regions/us-central1/workflowTemplates/dia"), "name", "output-only"),
    ({k: v for k, v in template().items() if k != "placement"}, "placement", "missing-required"),
    (template(jobs={"stepId": "x"}), "jobs", "wrong-type"),
    (template(labels=["a"]), "labels", "wrong-type"),
    (template(dagTimeout="10 minutes"), "dagTimeout", "wrong-type"),
    (template(jobs=[{"stepId": "trusted", "pysparkJob": {"args": ["x"]}}]),
     "jobs[0].pysparkJob.mainPythonFileUri", "missing-required"),
])
def test_dataproc_bodies_are_held_to_the_schema(gcp_double, body, field, kind):
    gcp_double.expect_violations()
    resp = post(gcp_double, TEMPLATES, body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and field in error["message"]
    assert [(v.field, v.kind) for v in gcp_double.violations] == [(field, kind)]
    assert gcp_double.violations[0].method == "dataproc.projects.regions.workflowTemplates.create"
    assert gcp_double.dataproc.templates() == []  # nothing was created


def test_scheduler_output_only_and_enum_encodings(gcp_double):
    gcp_double.expect_violations()
    bad = post(gcp_double, JOBS, job(state="PAUSED"))
    assert bad.status_code == 400
    assert [(v.field, v.kind) for v in gcp_double.violations] == [("state", "output-only")]
    bad_enum = post(gcp_double, JOBS, job(httpTarget={"uri": "https://example.com", "httpMethod": 99}))
    assert bad_enum.status_code == 400 and gcp_double.violations[-1].kind == "bad-enum"
    ok = post(gcp_double, JOBS, job())  # httpMethod sent as the integer 1
    assert ok.status_code == 200, ok.text
    assert ok.json()["httpTarget"]["httpMethod"] == "POST"  # decoded through the proto enum
    assert len(gcp_double.violations) == 2


def test_patch_is_partial_but_still_typed(gcp_double):
    gcp_double.expect_violations()
    assert post(gcp_double, JOBS, job()).status_code == 200
    name = f"{JOBS}/dia"
    ok = requests.patch(gcp_double.url + name, json={"description": "x"},
                        params={**INT_ENUMS, "updateMask": "description"}, timeout=10)
    assert ok.status_code == 200, ok.text  # no "schedule is required" on a partial update
    bad = requests.patch(gcp_double.url + name, json={"attemptDeadline": 30},
                         params={"updateMask": "attemptDeadline"}, timeout=10)
    assert bad.status_code == 400
    assert [(v.field, v.kind) for v in gcp_double.violations] == [("attemptDeadline", "wrong-type")]


def test_int64_as_string_or_number_and_unknown_query_params(gcp_double):
    gcp_double.expect_violations()
    ref = {"datasetReference": {"projectId": "funnel-test", "datasetId": "a"},
           "defaultTableExpirationMs": "3600000"}
    assert post(gcp_double, DATASETS, ref, params={"prettyPrint": "false"}).status_code == 200
    ref = {"datasetReference": {"datasetId": "b"}, "defaultTableExpirationMs": 3600000}
    assert post(gcp_double, DATASETS, ref).status_code == 200
    ref = {"datasetReference": {"datasetId": "c"}, "defaultTableExpirationMs": "one hour"}
    assert post(gcp_double, DATASETS, ref).status_code == 400
    assert gcp_double.violations[-1].kind == "wrong-type"
    resp = requests.get(gcp_double.url + DATASETS, params={"pageSize": "5"}, timeout=10)
    assert resp.status_code == 400  # BigQuery pages with maxResults, not pageSize
    assert gcp_double.violations[-1].kind == "unknown-param"
    assert requests.get(gcp_double.url + DATASETS, params={"maxResults": "5"},
                        timeout=10).status_code == 200


def test_unknown_routes_are_recorded(gcp_double):
    gcp_double.expect_violations()
    resp = requests.get(gcp_double.url + "/v1/projects/p/regions/r/workflowTemplate", timeout=10)
    assert resp.status_code == 404
    assert gcp_double.violations[-1].kind == "unknown-route"


def test_empty_request_messages_take_no_fields(gcp_double):
    gcp_double.expect_violations()
    assert post(gcp_double, JOBS, job()).status_code == 200
    resp = post(gcp_double, f"{JOBS}/dia:pause", {"name": "x"})
    assert resp.status_code == 400
    assert [(v.field, v.kind) for v in gcp_double.violations] == [("name", "unknown-field")]
    assert post(gcp_double, f"{JOBS}/dia:pause", {}).status_code == 200


def test_http_control_surface(gcp_double):
    gcp_double.expect_violations()
    post(gcp_double, TEMPLATES, template(owner="me"))
    assert requests.post(gcp_double.url + "/_double/config", json={"latencyMs": 5},
                         timeout=10).status_code == 200
    state = requests.get(gcp_double.url + "/_double/state", timeout=10).json()
    assert state["calls"] == {"dataproc.projects.regions.workflowTemplates.create": 1}
    assert "owner" in state["violations"][0]
