"""Neutral configs <-> Dataproc / Cloud Scheduler bodies: the round trip is the identity."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from funnelops.backends.local.workflows import main_name, main_uri
from funnelops.backends.shapes import (scheduler_from_cloud, scheduler_to_cloud, template_from_dataproc,
                                       template_to_dataproc)
from funnelops.resources import desired_resources
from funnelops.spec.loader import load_project

FUNNEL = Path(__file__).resolve().parents[3] / "projects" / "funnel" / "funnel.yaml"

LABEL = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)
STEP = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{1,10}[A-Za-z0-9]", fullmatch=True)
ARG = st.from_regex(r"--[a-z_]{1,8}(=[a-z0-9 ,]{0,6})?", fullmatch=True)
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


OPT = st.none() | LABEL


@st.composite
def placement_cfg(draw):
    custom = draw(st.booleans())
    return {"cluster_name": "funnel-cluster", "master_machine_type": draw(LABEL),
            "worker_machine_type": draw(LABEL), "workers": draw(st.integers(0, 1000)),
            "image_version": "" if custom else "2.2-debian12",
            "image_uri": draw(LABEL) if custom else None,
            "bootstrap": draw(st.sampled_from(["wheelhouse", "none"])),
            "service_account": draw(st.none() | st.just("sa@p.iam.gserviceaccount.com")),
            "scopes": draw(st.lists(LABEL, max_size=2)), "subnetwork": draw(OPT),
            "internal_ip_only": draw(st.booleans()), "tags": draw(st.lists(LABEL, max_size=2)),
            "zone": draw(OPT), "properties": dict(sorted(draw(st.dictionaries(LABEL, LABEL, max_size=2)).items()))}


@st.composite
def template_cfg(draw):
    steps = draw(st.lists(STEP, min_size=1, max_size=4, unique=True))
    jobs = []
    for i, sid in enumerate(steps):
        jobs.append({
            "step_id": sid,
            "main": draw(st.sampled_from(["funnelops.flows", "pkg.mod"])),
            "args": draw(st.lists(ARG, max_size=4)),
            "prerequisites": draw(st.lists(st.sampled_from(steps[:i]), unique=True)) if i else [],
            "properties": dict(sorted(draw(st.dictionaries(LABEL, TEXT, max_size=2)).items())),
        })
    return {
        "granularity": draw(st.sampled_from(["DAY", "MONTH", "YEAR"])),
        "initial_load": draw(st.booleans()),
        "jobs": jobs,
        "parameters": [{"name": n, "fields": draw(st.lists(LABEL, min_size=1, max_size=2)),
                        "description": draw(TEXT), "regexes": draw(st.lists(LABEL, max_size=2))}
                       for n in draw(st.lists(st.from_regex(r"[A-Z0-9_]{1,10}", fullmatch=True), max_size=2,
                                              unique=True))],
        "placement": draw(placement_cfg()),
        "dag_timeout": f"{draw(st.integers(1, 86400))}s",
        "labels": dict(sorted(draw(st.dictionaries(LABEL.filter(lambda k: not k.startswith("funnelops")), LABEL,
                                                   max_size=3)).items())),
    }


@settings(max_examples=100, deadline=None)
@given(cfg=template_cfg())
def test_template_round_trip(cfg) -> None:
    body = template_to_dataproc("wf-x", cfg, main_uri)
    json.dumps(body)  # a JSON body
    assert template_from_dataproc(body, main_name) == cfg


@st.composite
def scheduler_cfg(draw):
    return {
        "display_name": draw(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"),
                                                            blacklist_characters="[]"), min_size=1, max_size=20)),
        "schedule": draw(st.sampled_from(["0 6 * * *", "*/5 * * * *", "0 7 1 * *"])),
        "time_zone": draw(st.sampled_from(["America/Bogota", "UTC", "Europe/Madrid"])),
        "workflow": draw(STEP),
        "description": draw(TEXT),
        "retry": {"retry_count": draw(st.integers(0, 5)), "min_backoff_s": draw(st.integers(0, 3600)),
                  "max_backoff_s": draw(st.integers(0, 7200)), "max_doublings": draw(st.integers(0, 10))},
        "attempt_deadline": f"{draw(st.integers(15, 1800))}s",
        "paused": draw(st.booleans()),
        "parameters": dict(sorted(draw(st.dictionaries(st.from_regex(r"[A-Z_]{1,8}", fullmatch=True), TEXT,
                                                       max_size=3)).items())),
    }


@settings(max_examples=100, deadline=None)
@given(cfg=scheduler_cfg(), sa=st.none() | st.just("sa@demo-project.iam.gserviceaccount.com"))
def test_scheduler_round_trip(cfg, sa) -> None:
    body = scheduler_to_cloud("projects/p/locations/us-east1/jobs/dia", cfg, "demo-project", "us-east1", sa)
    # Cloud Scheduler reports pause as the job's state (output only); the local store keeps it beside the body
    body["state"] = "PAUSED" if cfg["paused"] else "ENABLED"
    back = scheduler_from_cloud(body)
    if cfg["description"] != cfg["description"].rstrip():  # the body's description is rstripped
        cfg = {**cfg, "description": cfg["description"].rstrip()}
    assert back == cfg


def test_scheduler_body_is_what_cloud_scheduler_takes() -> None:
    cfg = {"display_name": "Día", "schedule": "0 6 * * *", "time_zone": "America/Bogota", "workflow": "funnel-dia",
           "description": "Daily funnel load",
           "retry": {"retry_count": 2, "min_backoff_s": 60, "max_backoff_s": 600, "max_doublings": 5},
           "attempt_deadline": "1800s", "paused": False,
           "parameters": {"FO_LEASE": "--lease=scheduled", "FO_EXECUTION_TYPE": "--execution_type=delta"}}
    body = scheduler_to_cloud("projects/p/locations/us-east1/jobs/dia", cfg, "analitica-funnel", "us-east1",
                              "sa@x.iam.gserviceaccount.com")
    assert body["description"] == "[Día] Daily funnel load"
    assert body["httpTarget"]["uri"] == ("https://dataproc.googleapis.com/v1/projects/analitica-funnel/regions/"
                                         "us-east1/workflowTemplates/funnel-dia:instantiate")
    assert body["httpTarget"]["httpMethod"] == "POST"
    # A value for every template parameter, or Dataproc refuses the fire; no requestId (it would
    # join every later fire to the first operation).
    assert json.loads(base64.b64decode(body["httpTarget"]["body"])) == {"parameters": {
        "FO_EXECUTION_TYPE": "--execution_type=delta", "FO_LEASE": "--lease=scheduled"}}
    assert body["httpTarget"]["oauthToken"]["serviceAccountEmail"] == "sa@x.iam.gserviceaccount.com"
    assert body["retryConfig"] == {"retryCount": 2, "minBackoffDuration": "60s", "maxBackoffDuration": "600s",
                                   "maxDoublings": 5}
    assert body["timeZone"] == "America/Bogota" and body["schedule"] == "0 6 * * *"


def test_template_body_is_what_dataproc_takes() -> None:
    cfg = {"granularity": "DAY", "initial_load": True,
           "jobs": [{"step_id": "funnel-flows", "main": "funnelops.flows", "args": ["--a=1"], "prerequisites": [],
                     "properties": {}}],
           "parameters": [], "placement": {"cluster_name": "c1", "master_machine_type": "n2-standard-4",
                                           "worker_machine_type": "n2-standard-8", "workers": 3,
                                           "image_version": "2.2-debian12", "service_account": "sa@p.iam.gserviceaccount.com",
                                           "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                                           "subnetwork": "projects/host/regions/us-east1/subnetworks/shared",
                                           "internal_ip_only": True, "tags": ["dataproc"], "zone": "us-east1-b",
                                           "properties": {"dataproc:x": "1"}},
           "dag_timeout": "3600s", "labels": {"app": "funnel"}}
    body = template_to_dataproc("funnel-dia", cfg, main_uri)
    assert body["id"] == "funnel-dia"
    assert body["labels"] == {"app": "funnel", "funnelops-granularity": "day", "funnelops-initial-load": "true"}
    assert body["jobs"] == [{"stepId": "funnel-flows",
                             "pysparkJob": {"mainPythonFileUri": "module:funnelops.flows", "args": ["--a=1"]}}]
    mc = body["placement"]["managedCluster"]
    assert mc["clusterName"] == "c1"
    assert mc["config"]["workerConfig"] == {"numInstances": 3, "machineTypeUri": "n2-standard-8"}
    assert mc["config"]["gceClusterConfig"] == {
        "serviceAccount": "sa@p.iam.gserviceaccount.com",
        "serviceAccountScopes": ["https://www.googleapis.com/auth/cloud-platform"],
        "subnetworkUri": "projects/host/regions/us-east1/subnetworks/shared", "zoneUri": "us-east1-b",
        "tags": ["dataproc"], "internalIpOnly": True}
    assert mc["config"]["softwareConfig"] == {"imageVersion": "2.2-debian12", "properties": {"dataproc:x": "1"}}
    actions = [{"executableFile": "gs://b/init.sh", "executionTimeout": "600s"}]
    with_actions = template_to_dataproc("funnel-dia", {**cfg, "init_actions": actions}, main_uri)
    assert with_actions["placement"]["managedCluster"]["config"]["initializationActions"] == actions
    assert template_from_dataproc(with_actions, main_name)["init_actions"] == actions
    assert body["dagTimeout"] == "3600s" and "parameters" not in body


def test_round_trip_of_the_shipped_project() -> None:
    loaded = load_project(FUNNEL)
    res = desired_resources(loaded, "initial_data")
    templates = [r for r in res if r.kind == "workflow_template"]
    schedulers = [r for r in res if r.kind == "scheduler"]
    assert len(templates) == 4 and len(schedulers) == 4
    for r in templates:
        assert template_from_dataproc(template_to_dataproc(r.name, r.config, main_uri), main_name) == r.config
    for r in schedulers:
        body = scheduler_to_cloud(f"projects/p/locations/r/jobs/{r.name}", r.config, "p", "r", None)
        body["state"] = "ENABLED"
        assert scheduler_from_cloud(body) == r.config


def test_scheduler_names_with_brackets_are_refused(tmp_path) -> None:
    """`[name] description` is how the display name travels; a ']' in it would not come back."""
    from funnelops.errors import ProjectError
    import pytest

    (tmp_path / "funnel.yaml").write_text(
        "project: {id: demo-project}\nworkflows:\n  - {name: wf-day, granularity: DAY, jobs: [{step_id: s-1}]}\n"
        'schedulers:\n  - {name: "Día] x", id: dia, cron: "0 6 * * *", workflow: wf-day}\n', encoding="utf-8")
    with pytest.raises(ProjectError) as info:
        load_project(tmp_path / "funnel.yaml")
    (p,) = info.value.problems
    assert p.line == 5 and p.field == "schedulers[Día] x].name"
