"""`funnelops --backend gcp plan --refresh=false --json`: every resource with the REST request apply
would send, rendered with no credentials and no network (as Terraform's `plan -refresh=false` +
`show -json`). The bodies are the ones apply sends: the same functions build both, shown here by
comparing them with what the double received from a real apply."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_backend_iac import apply, gcp_env, make_project, open_gcp  # noqa: F401 - fixture re-used

pytestmark = pytest.mark.gcp

OFFLINE_ENV = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
               "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "NO_PROXY": "",
               "no_proxy": "", "NO_COLOR": "1", "GCE_METADATA_HOST": "127.0.0.1:9",
               "GCE_METADATA_IP": "127.0.0.1:9", "CLOUDSDK_CONFIG": "/nonexistent"}


def offline_plan(project: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    """The CLI in a process with no endpoints, no credentials and every proxy unroutable."""
    # No endpoints, no credentials; the suite's stub wheelhouse stays (it names the init action, as
    # the packaged requirement set does for a user).
    env = {k: v for k, v in os.environ.items()
           if (not k.startswith("FUNNELOPS_") or k == "FUNNELOPS_WHEELHOUSE_DIR")
           and k not in ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST")}
    env.update(OFFLINE_ENV, HOME=str(home))  # no ~/.config/gcloud ADC either
    cmd = [sys.executable, "-m", "funnelops", "--backend", "gcp", "--project", str(project), "--home",
           str(home / "fo"), "plan", "--refresh=false", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def _without(body: dict, *keys: str) -> dict:
    return {k: v for k, v in body.items() if k not in keys}


def _holds(stored: object, sent: object) -> bool:
    """Every field of `sent` is in `stored` with the same value (the server adds its own fields)."""
    if isinstance(sent, dict) and isinstance(stored, dict):
        return all(k in stored and _holds(stored[k], v) for k, v in sent.items())
    return stored == sent


def test_offline_plan_lists_every_resource_with_its_body_and_matches_what_apply_sends(
        gcp_env, gcp_double, fake_gcs, tmp_path):  # noqa: F811
    project = make_project(tmp_path)
    done = offline_plan(project, tmp_path, "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["format_version"] == 1 and doc["refreshed"] is False and doc["stage"] == "workflow"
    loaded, backend = open_gcp(project, tmp_path)
    from funnelops.resources import desired_resources

    # The spec's resources and the backend's own (the artifacts Dataproc runs, diffed by hash).
    wanted = {r.address for r in desired_resources(loaded, "workflow") + backend.owned_resources("workflow")}
    by_address = {e["address"]: e for e in doc["resources"]}
    assert set(by_address) == wanted and len(doc["resources"]) == len(wanted)
    artifacts = next(e for e in doc["resources"] if e["kind"] == "artifacts")
    assert artifacts["request"]["body"]["objects_sha256"] == dict(sorted(backend.artifacts.desired().items()))
    assert all(e["request"]["method"] == "POST" and e["request"]["body"] for e in doc["resources"])
    pid, region = loaded.spec.project.id, loaded.spec.project.region
    bucket = next(e for e in doc["resources"] if e["kind"] == "bucket")
    assert bucket["request"]["url"] == f"https://storage.googleapis.com/storage/v1/b?project={pid}"
    assert bucket["request"]["body"]["name"] == bucket["name"] and bucket["request"]["body"]["labels"]
    dia = by_address["workflow_template.funnel-dia"]
    assert dia["request"]["url"] == (f"https://{region}-dataproc.googleapis.com/v1/projects/{pid}/regions/{region}"
                                     "/workflowTemplates")
    assert dia["instantiate"]["url"].endswith("/workflowTemplates/funnel-dia:instantiate")
    assert "parameters" in dia["instantiate"]["body"] and "requestId" in dia["instantiate"]["per_run"]
    sched = by_address["scheduler.dia"]
    assert sched["request"]["body"]["httpTarget"]["uri"] == (
        f"https://dataproc.googleapis.com/v1/projects/{pid}/regions/{region}/workflowTemplates/funnel-dia:instantiate")
    assert sched["http_body"] == json.loads(base64.b64decode(sched["request"]["body"]["httpTarget"]["body"]))

    # Apply sends the same bodies (built by the same functions): compare with what the double holds
    # after applying the same stage.
    iac = offline_plan(project, tmp_path, "--json", "--stage", "IaC")
    assert iac.returncode == 0, iac.stderr
    by_address = {e["address"]: e for e in json.loads(iac.stdout)["resources"]}
    dia, sched = by_address["workflow_template.funnel-dia"], by_address["scheduler.dia"]
    apply(loaded, backend, "iac")
    templates = {t["id"]: t for t in gcp_double.dataproc.templates()}
    output_only = ("name", "createTime", "updateTime", "version")
    assert _without(templates["funnel-dia"], *output_only) == _without(dia["request"]["body"], *output_only)
    jobs = {j["name"].rsplit("/", 1)[-1]: j for j in gcp_double.scheduler.jobs()}
    sent = jobs["dia"]
    assert sent["httpTarget"]["body"] == sched["request"]["body"]["httpTarget"]["body"]
    assert _holds(_without(sent, "httpTarget"), _without(sched["request"]["body"], "httpTarget"))
    table = by_address["table.funnel_refined.funnel_daily"]["request"]["body"]
    held = next(t for t in gcp_double.bigquery.tables("funnel_refined")
                if t["tableReference"]["tableId"] == "funnel_daily")
    assert _holds(held, table)


def test_offline_plan_text_mode_and_the_local_backend_refusal(tmp_path):
    project = make_project(tmp_path)
    done = offline_plan(project, tmp_path, "--stage", "IaC")
    assert done.returncode == 0, done.stderr
    assert "Offline plan (not refreshed: nothing observed)" in done.stdout
    assert "+ workflow_template.funnel-dia  POST https://" in done.stdout
    assert "external_table." not in done.stdout  # IaC defers external tables
    local = subprocess.run([sys.executable, "-m", "funnelops", "--backend", "local", "--project", str(project),
                            "--home", str(tmp_path / "h"), "plan", "--refresh=false"],
                           capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})
    assert local.returncode != 0 and "the local backend sends none" in local.stderr
    assert "Traceback" not in local.stderr
