"""Workflow templates on the gcp backend, right the first time: parameters with a value on every
instantiation (CLI, initial load, Cloud Scheduler's own fire), the cluster's identity and network,
and a stale-version update answered with 400 read again and retried.

Real clients against the double (which now requires and substitutes parameter values and
resolves their field paths) and fake-gcs.
"""

from __future__ import annotations

import base64
import json

import pytest

from funnelops.runs import coordinator

from test_backend_iac import apply, gcp_env, make_project, not_unchanged, open_gcp  # noqa: F401 - fixture re-used

pytestmark = pytest.mark.gcp

PLACEMENT = """    placement:
      service_account: cluster-sa@analitica-funnel.iam.gserviceaccount.com
      subnetwork: projects/host-net/regions/us-east1/subnetworks/dataproc
      internal_ip_only: true
      tags: [dataproc, funnel]
      zone: us-east1-b
"""


def with_placement(text: str) -> str:
    """funnel-dia gets a placement with identity and network settings, and a user parameter."""
    anchor = "    labels: {granularity: day}\n"
    extra = PLACEMENT + ("    parameters:\n      - name: CLUSTER\n        fields: [placement.managedCluster.clusterName]\n"
                         "        regexes: ['^[a-z][a-z0-9-]{1,34}$']\n        value: funnel-dia-run\n")
    return text.replace(anchor, anchor + extra, 1)


def test_a_scheduler_fire_of_an_applied_template_is_accepted(gcp_env, gcp_double, tmp_path):  # noqa: F811
    """Cloud Scheduler's own fire (its stored HTTP body) gives every parameter a value.

    Before: the job posted `{}` while the template declared a parameter per argument, and Dataproc
    refuses an instantiation without values."""
    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)
    apply(loaded, backend, "iac")
    gcp_double.dataproc.set_run_outcome(duration_s=None)
    job = backend.clients.scheduler.run_job(name=backend.clients.job_name("mes"))
    assert not job.status.code, job.status.message
    gcp_double.scheduler.settle(10)  # jobs.run answers first, then dispatches (as Cloud Scheduler does)
    (dispatch,) = gcp_double.scheduler.dispatches
    assert dispatch["operation"], dispatch["status"]
    body = json.loads(base64.b64decode(dispatch["target"]["body"]))
    assert body == {"parameters": {"FO_EXECUTION_TYPE": "--execution_type=delta", "FO_LEASE": "--lease=scheduled",
                                   "FO_PERIOD": "--period=current"}}
    args = gcp_double.dataproc.run_args(dispatch["operation"])["funnel-flows"]
    assert args[-4:] == ["--execution_type=delta", "--lease=scheduled", "--period=current", "--workflow=funnel-mes"]
    gcp_double.assert_clean()


def test_every_instantiation_sends_every_declared_parameter(gcp_env, gcp_double, tmp_path):  # noqa: F811
    """CLI start, the initial load's --execution_type=full, and a forced run: all values, each time."""
    loaded, backend = open_gcp(make_project(tmp_path, with_placement), tmp_path)
    apply(loaded, backend, "iac")
    declared = {p["name"] for t in gcp_double.dataproc.templates() if t["id"] == "funnel-dia"
                for p in t["parameters"]}
    assert declared == {"CLUSTER", "FO_EXECUTION_TYPE", "FO_LEASE", "FO_PERIOD"}
    full = coordinator.start(backend, "funnel-dia", trigger="initial-load", actor="ci",
                             extra_args=["--execution_type=full"])
    coordinator.wait(backend.runtime, [full.id], poll_s=0.05)
    forced = coordinator.force_scheduler(backend, "dia", "funnel-dia", actor="pipeline")
    coordinator.wait(backend.runtime, [forced.id], poll_s=0.05)
    ops = {op["name"].rsplit("/", 1)[-1]: op for op in gcp_double.dataproc.operations(template="funnel-dia")}
    assert set(ops) == {str(full.id), str(forced.id)}
    for op in ops.values():
        assert set(op["metadata"]["parameters"]) == declared
        assert op["metadata"]["clusterName"].startswith("funnel-dia-run-")  # the user parameter's value ran
    assert ops[str(full.id)]["metadata"]["parameters"]["FO_EXECUTION_TYPE"] == "--execution_type=full"
    assert ops[str(forced.id)]["metadata"]["parameters"]["FO_LEASE"] == "--lease=scheduled"
    assert ops[str(full.id)]["metadata"]["parameters"]["FO_LEASE"] != "--lease=scheduled"
    gcp_double.assert_clean()


def test_an_override_the_template_cannot_take_is_refused_before_anything_runs(gcp_env, gcp_double, tmp_path):  # noqa: F811
    from funnelops.errors import UsageError

    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)
    apply(loaded, backend, "iac")
    with pytest.raises(UsageError, match="can only vary --execution_type"):
        coordinator.start(backend, "funnel-dia", trigger="manual", actor="me", extra_args=["--granularity=MONTH"])
    with pytest.raises(UsageError, match="--period=current"):
        coordinator.start(backend, "funnel-dia", trigger="manual", actor="me", extra_args=["--period=2024-1"])
    assert gcp_double.dataproc.operations() == [] and backend.leases.read("funnel-dia") is None


def test_the_cluster_gets_its_identity_and_network(gcp_env, gcp_double, tmp_path):  # noqa: F811
    loaded, backend = open_gcp(make_project(tmp_path, with_placement), tmp_path)
    plan, _ = apply(loaded, backend, "iac")
    tpls = {t["id"]: t for t in gcp_double.dataproc.templates()}
    conf = tpls["funnel-dia"]["placement"]["managedCluster"]["config"]
    assert conf["gceClusterConfig"] == {
        "serviceAccount": "cluster-sa@analitica-funnel.iam.gserviceaccount.com",
        "serviceAccountScopes": ["https://www.googleapis.com/auth/cloud-platform"],
        "subnetworkUri": "projects/host-net/regions/us-east1/subnetworks/dataproc",
        "zoneUri": "us-east1-b", "tags": ["dataproc", "funnel"], "internalIpOnly": True}
    # the others run as the project's service account (the one the docs grant), internal IPs only
    other = tpls["funnel-mes"]["placement"]["managedCluster"]["config"]["gceClusterConfig"]
    assert other["serviceAccount"] == loaded.spec.project.service_account and other["internalIpOnly"] is True
    # observed back into the same neutral shape: nothing to change
    loaded2, backend2 = open_gcp(loaded.path, tmp_path)
    from funnelops.plan.diff import build_plan

    assert not_unchanged(build_plan(loaded2, backend2, "iac")) == []
    gcp_double.assert_clean()


def test_a_forced_run_for_a_period_is_instantiated_directly_with_fo_period(gcp_env, gcp_double, tmp_path):  # noqa: F811
    """`force-scheduler --period` on gcp: Cloud Scheduler's fire carries fixed values, so the CLI
    instantiates the template itself (under its own lease) with FO_PERIOD, and says so."""
    from funnelops.lifecycle import jobs
    from funnelops.reporting import Notice, RecordingReporter

    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)
    apply(loaded, backend, "iac")
    for stage in ("iac", "initial_data"):
        backend.ledger.record_stage(stage, loaded.spec_hash, "ci")
    rec = RecordingReporter()
    run = jobs.force_scheduler(loaded, backend, "dia", actor="ci", reporter=rec, period="2024-01-05")
    done = coordinator.wait(backend.runtime, [run.id], poll_s=0.05)[0]
    (op,) = gcp_double.dataproc.operations(template="funnel-dia")
    params = op["metadata"]["parameters"]
    assert params["FO_PERIOD"] == "--period=2024-01-05"
    assert params["FO_LEASE"] != "--lease=scheduled"  # the CLI's lease, not a scheduler fire
    assert gcp_double.scheduler.dispatches == []  # Cloud Scheduler was not fired
    args = gcp_double.dataproc.run_args(op["name"])["funnel-flows"]
    assert args[-2:] == ["--period=2024-01-05", "--workflow=funnel-dia"]
    assert done.trigger == "forced" and done.period == "2024-01-05"
    assert any("instantiating funnel-dia directly" in e.text for e in rec.of(Notice))
    # without a period, the force still goes through Cloud Scheduler
    again = jobs.force_scheduler(loaded, backend, "dia", actor="ci")
    coordinator.wait(backend.runtime, [again.id], poll_s=0.05)
    assert len(gcp_double.scheduler.dispatches) == 1
    gcp_double.assert_clean()
