"""The gcp backend's infrastructure as code, through the official clients, against the contract
double (BigQuery, Dataproc, Cloud Scheduler) and fake-gcs-server (GCS).

The key test is the re-plan: after an apply, observing must give back exactly the neutral shape
`resources.py` builds, or a no-op plan would not be all 'unchanged'. It is proven on both
observation paths (listings + fingerprints, and full GETs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.gcp

pytest.importorskip("google.cloud.bigquery")

REPO = Path(__file__).resolve().parents[3]
FUNNEL = REPO / "projects" / "funnel"


def make_project(tmp_path: Path, edit=None) -> Path:
    """The Funnel project with bucket names unique to this test (fake-gcs is shared)."""
    dest = tmp_path / "funnel"
    shutil.copytree(FUNNEL, dest, ignore=shutil.ignore_patterns("__pycache__", "data"))
    uid = uuid.uuid4().hex[:8]
    text = (dest / "funnel.yaml").read_text(encoding="utf-8").replace("analitica-funnel-", f"af{uid}-")
    if edit:
        text = edit(text)
    (dest / "funnel.yaml").write_text(text, encoding="utf-8")
    return dest / "funnel.yaml"


@pytest.fixture
def gcp_env(monkeypatch, gcp_double, fake_gcs):
    env = {"FUNNELOPS_STORAGE_ENDPOINT": fake_gcs.url, "FUNNELOPS_BIGQUERY_ENDPOINT": gcp_double.url,
           "FUNNELOPS_DATAPROC_ENDPOINT": gcp_double.url, "FUNNELOPS_SCHEDULER_ENDPOINT": gcp_double.url,
           "FUNNELOPS_MONITORING_ENDPOINT": gcp_double.url,
           "FUNNELOPS_GCP_RETRY_INITIAL_S": "0.01"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    return env


def open_gcp(project_file: Path, tmp_path: Path, **kw):
    from funnelops.backends.gcp import GcpBackend
    from funnelops.spec.loader import load_project

    loaded = load_project(project_file)
    p = loaded.spec.project
    from funnelops.backends.gcp.backend import artifacts_bucket_of

    backend = GcpBackend(p.id, p.region, artifacts_bucket=artifacts_bucket_of(loaded.spec), loaded=loaded,
                         service_account=p.service_account, home=tmp_path, **kw)
    return loaded, backend


def apply(loaded, backend, stage: str):
    from funnelops.plan.apply import apply_plan, raise_if_failed
    from funnelops.plan.diff import build_plan

    plan = build_plan(loaded, backend, stage)
    result = apply_plan(plan, backend)
    raise_if_failed(result)
    return plan, result


def not_unchanged(plan) -> list[str]:
    return [f"{c.action} {c.address} {[f.to_dict() for f in c.fields]}" for c in plan.changes
            if c.action not in ("unchanged", "waiting")]


def test_iac_from_empty_then_replan_is_a_noop_on_both_observation_paths(gcp_env, gcp_double, fake_gcs, tmp_path):
    from funnelops.plan.diff import build_plan

    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)
    plan, result = apply(loaded, backend, "iac")
    summary = plan.summary()
    # buckets, the artifacts, datasets, tables, views, templates, schedulers; no external tables in IaC
    assert summary["create"] == 4 + 1 + 3 + 5 + 3 + 4 + 4 and summary["waiting"] == 0
    assert result.ok
    # What landed, in Google's shapes.
    views = [t for t in gcp_double.bigquery.tables("funnel_reporting") if t["type"] == "VIEW"]
    assert views and all(v["view"]["useLegacySql"] is False for v in views)
    daily = next(t for t in gcp_double.bigquery.tables("funnel_refined")
                 if t["tableReference"]["tableId"] == "funnel_daily")
    assert daily["timePartitioning"] == {"type": "DAY", "field": "period_start"}
    assert daily["clustering"] == {"fields": ["channel", "segment"]}
    tpl = next(t for t in gcp_double.dataproc.templates() if t["id"] == "funnel-dia")
    art = backend.artifacts_bucket
    job = tpl["jobs"][0]["pysparkJob"]
    assert job["mainPythonFileUri"] == f"gs://{art}/funnelops/artifacts/mains/funnelops.flows.py"
    assert job["pythonFileUris"] == [f"gs://{art}/funnelops/artifacts/funnelops.zip"]
    # The stage's dynamic argument, then the run tail: what varies per run (template parameters),
    # then the workflow's name, by which the program on the cluster finds its lease.
    assert job["args"][-5:] == ["--refined_flows=false", "--execution_type=delta", "--lease=scheduled",
                                "--period=current", "--workflow=funnel-dia"]
    assert tpl["placement"]["managedCluster"]["config"]["workerConfig"]["numInstances"] == 2
    objects = {b.name for b in fake_gcs.client.list_blobs(art)}
    assert {"funnelops/artifacts/funnelops.zip", "funnelops/artifacts/mains/funnelops.flows.py",
            "funnelops/artifacts/project/funnel.yaml"} <= objects
    jobs = {j["name"].rsplit("/", 1)[-1]: j for j in gcp_double.scheduler.jobs()}
    assert set(jobs) == {"dia", "mes", "anio", "duplicado-mes"}
    target = jobs["dia"]["httpTarget"]
    assert target["uri"] == f"{gcp_double.url}/v1/projects/analitica-funnel/regions/us-east1/workflowTemplates/funnel-dia:instantiate"
    assert target["oauthToken"]["serviceAccountEmail"].startswith("funnel-workflows@")
    assert jobs["dia"]["timeZone"] == "America/Bogota" and jobs["dia"]["retryConfig"]["retryCount"] == 2

    # The re-plan, fast path: listings only (one tables.list per dataset, no GET per table).
    gcp_double.reset_counters()
    again = build_plan(loaded, backend, "iac")
    assert not_unchanged(again) == []
    assert gcp_double.count("tables.get") == 0 and gcp_double.count("datasets.get") == 0
    assert gcp_double.count("tables.list") == 3 and gcp_double.count("workflowTemplates.list") == 1
    assert gcp_double.count("jobs.list") == 1
    # ...and the deep path: every resource fetched and translated in full.
    _, deep = open_gcp(loaded.path, tmp_path, deep_observe=True)
    assert not_unchanged(build_plan(loaded, deep, "iac")) == []
    assert gcp_double.count("tables.get") == 8
    gcp_double.assert_clean()


def test_a_second_apply_uploads_no_artifact_and_changes_nothing(gcp_env, gcp_double, tmp_path):
    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)
    apply(loaded, backend, "iac")
    assert "funnelops/artifacts/funnelops.zip" in backend.artifacts.uploaded
    loaded2, backend2 = open_gcp(loaded.path, tmp_path)
    plan, result = apply(loaded2, backend2, "iac")
    assert not plan.has_changes and backend2.artifacts.uploaded == []
    backend2.upload_artifacts()  # content hashes unchanged: nothing is sent again
    assert backend2.artifacts.uploaded == []
    gcp_double.assert_clean()


def test_args_change_updates_templates_in_place(gcp_env, gcp_double, tmp_path):
    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)
    apply(loaded, backend, "iac")
    before = {t["id"]: t for t in gcp_double.dataproc.templates()}
    gcp_double.reset_counters()
    plan, _ = apply(loaded, backend, "workflow")  # the workflow stage drops --refined_flows=false
    updates = [c for c in plan.changes if c.action == "update"]
    assert {c.address for c in updates} == {f"workflow_template.{n}" for n in before}
    assert all(c.kind == "workflow_template" for c in plan.mutating())
    after = {t["id"]: t for t in gcp_double.dataproc.templates()}
    for name, tpl in after.items():
        assert tpl["version"] == before[name]["version"] + 1 and tpl["name"] == before[name]["name"]
        assert tpl["createTime"] == before[name]["createTime"]
        assert "--refined_flows=false" not in tpl["jobs"][0]["pysparkJob"]["args"]
    assert gcp_double.count("workflowTemplates.delete") == 0 and gcp_double.count("workflowTemplates.create") == 0
    assert gcp_double.count("workflowTemplates.update") == 4


@pytest.mark.parametrize("stale_status", [409, 400])
def test_a_version_conflict_is_read_again_and_retried(stale_status, gcp_env, gcp_double, tmp_path):
    """A stale version is answered 409 ABORTED or 400 FAILED_PRECONDITION (the REST client raises
    BadRequest for the latter, which the update used to pass on as a failure): both are re-read."""
    from funnelops.resources import desired_resources

    gcp_double.dataproc.stale_version_status = stale_status
    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)
    apply(loaded, backend, "iac")
    res = next(r for r in desired_resources(loaded, "workflow") if r.address == "workflow_template.funnel-dia")
    handler = backend.handler("workflow_template")
    api = backend.clients.dataproc
    real_update = api.update_workflow_template
    raced = []

    def racing_update(*args, **kwargs):
        if not raced:  # someone else updates it between our read and our write
            raced.append(1)
            from google.cloud import dataproc_v1

            cur = api.get_workflow_template(name=backend.clients.template_name("funnel-dia"))
            body = dataproc_v1.WorkflowTemplate(handler._message(handler.body(res)))
            body.name, body.version = cur.name, cur.version
            real_update(template=body)
        return real_update(*args, **kwargs)

    api.update_workflow_template = racing_update
    try:
        handler.update(res, None, ["jobs"])
    finally:
        api.update_workflow_template = real_update
    tpl = next(t for t in gcp_double.dataproc.templates() if t["id"] == "funnel-dia")
    assert tpl["version"] == 3  # ours landed on top of the other writer's, after a re-read
    assert gcp_double.count("workflowTemplates.get") == 3


def test_external_tables_wait_for_parquet_in_gcs(gcp_env, gcp_double, fake_gcs, tmp_path):
    from funnelops.plan.diff import build_plan

    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)
    apply(loaded, backend, "iac")
    plan = build_plan(loaded, backend, "initial_data")
    waiting = {c.name for c in plan.changes if c.action == "waiting"}
    assert waiting == {"funnel_trusted.leads", "funnel_trusted.stage_changes", "funnel_trusted.opportunities",
                       "funnel_trusted.won_deals", "funnel_trusted.targets"}
    trusted = loaded.spec.bucket_for("trusted").name
    bucket = fake_gcs.client.bucket(trusted)
    bucket.blob("leads/_SUCCESS").upload_from_string(b"")  # a marker is not data
    bucket.blob("leads/period=2024-01-01/part-0.parquet").upload_from_string(b"PAR1")
    plan, _ = apply(loaded, backend, "initial_data")
    created = {c.name for c in plan.changes if c.action == "create"}
    assert "funnel_trusted.leads" in created
    assert "funnel_trusted.targets" in {c.name for c in plan.changes if c.action == "waiting"}
    leads = next(t for t in gcp_double.bigquery.tables("funnel_trusted") if t["tableReference"]["tableId"] == "leads")
    ext = leads["externalDataConfiguration"]
    assert ext["sourceFormat"] == "PARQUET" and ext["sourceUris"] == [f"gs://{trusted}/leads/*"]
    assert ext["hivePartitioningOptions"] == {"mode": "AUTO", "sourceUriPrefix": f"gs://{trusted}/leads/"}
    again = build_plan(loaded, backend, "initial_data")
    assert not_unchanged(again) == []
    _, deep = open_gcp(loaded.path, tmp_path, deep_observe=True)
    assert not_unchanged(build_plan(loaded, deep, "initial_data")) == []


def test_drift_and_label_changes_show_and_converge(gcp_env, gcp_double, tmp_path):
    from funnelops.plan.diff import build_plan

    path = make_project(tmp_path)
    loaded, backend = open_gcp(path, tmp_path)
    apply(loaded, backend, "iac")
    # Someone relabels a table by hand; the project changes a view's SQL and a scheduler's cron.
    bq = backend.clients.bigquery
    t = bq.get_table("analitica-funnel.funnel_refined.attainment")
    t.labels = {**t.labels, "owner": "someone"}
    bq.update_table(t, ["labels"])
    text = path.read_text(encoding="utf-8").replace('cron: "0 6 * * *"', 'cron: "30 6 * * *"')
    path.write_text(text, encoding="utf-8")
    view_sql = path.parent / "sql" / "views" / "v_funnel_monthly.sql"
    view_sql.write_text(view_sql.read_text(encoding="utf-8") + "\n-- edited\n", encoding="utf-8")
    loaded, backend = open_gcp(path, tmp_path)
    gcp_double.reset_counters()
    plan = build_plan(loaded, backend, "iac")
    changed = {c.address: [f.field for f in c.fields] for c in plan.mutating()}
    assert changed == {"table.funnel_refined.attainment": ["labels.owner"],
                       "view.funnel_reporting.v_funnel_monthly": ["query"],
                       "scheduler.dia": ["schedule"],
                       # the project file and the SQL travel to the cluster: their new content too
                       f"artifacts.{backend.artifacts_bucket}": ["funnelops.zip", "project/funnel.yaml"]}
    # Only the view is fetched (its fingerprint no longer matches the project); the label drift
    # shows from the listing itself.
    assert gcp_double.count("tables.get") == 1
    gcp_double.reset_counters()
    apply(loaded, backend, "iac")
    patch = [entry for entry in gcp_double.log if entry[0].endswith("jobs.patch")]
    assert len(patch) == 1
    assert not_unchanged(build_plan(loaded, backend, "iac")) == []
    gcp_double.assert_clean()


def test_cli_create_infra_and_plan_against_the_emulators(gcp_env, gcp_double, tmp_path):
    path = make_project(tmp_path)
    env = {**os.environ, **gcp_env, "NO_COLOR": "1"}
    base = [sys.executable, "-m", "funnelops", "--backend", "gcp", "--project", str(path), "--home", str(tmp_path / "h")]
    done = subprocess.run(base + ["job", "create-infra", "--stage", "IaC"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    assert len(gcp_double.dataproc.templates()) == 4
    planned = subprocess.run(base + ["plan", "--stage", "IaC", "--json"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert planned.returncode == 0, planned.stderr
    summary = json.loads(planned.stdout)["summary"]
    assert summary["unchanged"] == 24 and summary["create"] == summary["update"] == summary["replace"] == 0
    # The ledger lives in GCS: a separate process (another pipeline agent) sees the IaC stage.

    _, backend = open_gcp(path, tmp_path)
    assert "iac" in backend.ledger.stages()
    gcp_double.assert_clean()


def test_without_the_extra_the_backend_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['google.cloud.dataproc_v1'] = None\n"
            "from funnelops.errors import MissingExtra\n"
            "try:\n    from funnelops.backends.gcp import GcpBackend\nexcept MissingExtra as e:\n"
            "    print(e.exit_code, e.message, '|', e.hint)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("2 the gcp backend needs google.cloud.dataproc_v1"), out.stderr
    assert "pip install 'funnelops[gcp]'" in out.stdout
    # The cluster's flows program needs only the storage and BigQuery clients (the wheelhouse): its
    # modules import without the Dataproc and Scheduler clients.
    cluster = ("import sys; sys.modules['google.cloud.dataproc_v1'] = None\n"
               "sys.modules['google.cloud.scheduler_v1'] = None\n"
               "import funnelops.backends.gcp.flows_runtime, funnelops.backends.gcp.leases\n"
               "import funnelops.backends.gcp.clients\nprint('ok')\n")
    out = subprocess.run([sys.executable, "-c", cluster], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr[-500:]
    # ...and the core never imports it: the CLI answers --help without the Google clients.
    probe = ("import sys, runpy; sys.argv = ['funnelops', '--help']\n"
             "try:\n    runpy.run_module('funnelops', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.startswith('google.cloud')))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().endswith("[]"), out.stdout[-300:] + out.stderr
