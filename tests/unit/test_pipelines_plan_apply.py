"""The pipelines apply the plan a person reviewed and approved, per environment (issue 15).

Checked on the expanded Azure pipelines (every runtime value) and on the GitHub workflows:

- a plan stage/job runs `plan --stage S -out <dir>/plan.json` (and saves plan.txt beside it) and
  publishes that folder as the artifact `plan`;
- the create-infra is a deployment job in the Azure DevOps environment `funnel-<env>` / a GitHub
  job in the protected environment `funnel-<env>`, after the plan; it downloads the artifact `plan`
  and runs `apply <that folder>/plan.json`; nothing runs `job create-infra` (plan + apply in one);
- every parameter has an explicit default, and docs/pipelines.md states it;
- GitHub authenticates with google-github-actions/auth@v3 and `id-token: write`; Azure defaults to
  workload identity federation and keeps the key file as a selectable fallback;
- pip's cache is keyed on constraints.txt and installs use it;
- the helper scripts do what the pipelines rely on, run for real: the Azure DevOps OIDC helper
  against a local HTTP endpoint (and through google-auth's own executable-credential code), the
  GitHub variable export, and the wrapper's plan text and stale-plan message.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_pipelines import (AZURE_CASES, AZURE_PIPELINES, FUNNEL, GITHUB_CASES, GITHUB_PIPELINES, REPO,
                                       WORKFLOW, WRAPPER, _case_id, azure_active, azure_macros, expanded,
                                       funnelops_calls, github_active_jobs, github_calls, job_id, job_steps,
                                       load_azure, load_github)

OIDC = REPO / "pipelines" / "scripts" / "azure-devops-oidc.py"
EXPORT = REPO / "pipelines" / "scripts" / "export-github-vars.py"
DOCS = REPO / "docs" / "pipelines.md"
FUNNEL_AZURE_CASES = [c for c in AZURE_CASES if c[0] == FUNNEL]
FUNNEL_GITHUB_CASES = [c for c in GITHUB_CASES if c[0] == FUNNEL]


def _arg_after(call: list[str], option: str) -> str:
    return call[call.index(option) + 1]


# ============================================================================================
# Azure: Plan stage -> artifact `plan` -> deployment job in funnel-<env> applies plan.json
# ============================================================================================
def _azure_job_calls(job: dict) -> list[list[str]]:
    calls = []
    for step in job_steps(job):
        script = step.get("bash") or step.get("script") or ""
        calls += funnelops_calls(azure_macros(script), where=job.get("displayName", ""))
    return calls


@pytest.mark.parametrize("case", FUNNEL_AZURE_CASES, ids=_case_id)
def test_azure_plan_stage_publishes_the_saved_plan_as_artifact_plan(case) -> None:
    name, values = case
    stages = {s["stage"]: (s, jobs) for s, jobs in azure_active(expanded(name, values))}
    stage, (job,) = stages["plan"]
    assert stage.get("dependsOn") == [] and "condition" not in stage, "the plan runs first, for every dataStage"
    (call,) = _azure_job_calls(job)
    assert call[call.index("--json") + 1:call.index("--json") + 4] == ["plan", "--stage", values["dataStage"]]
    out = _arg_after(call, "-out")
    assert out.endswith("/plan.json") and "--show-unchanged" in call
    run = next(s for s in job_steps(job) if funnelops_calls(azure_macros(s.get("bash", ""))))
    assert azure_macros(run["env"]["FUNNELOPS_TEXT_FILE"]) == out.replace("plan.json", "plan.txt")
    publish = [s for s in job_steps(job) if s.get("task") == "PublishPipelineArtifact@1"
               and s["inputs"]["artifact"] == "plan"]
    assert len(publish) == 1, "the plan folder is published as the artifact `plan`"
    assert azure_macros(publish[0]["inputs"]["targetPath"]) + "/plan.json" == out
    assert "always()" not in publish[0].get("condition", ""), "a failed plan is never published for apply"


@pytest.mark.parametrize("case", FUNNEL_AZURE_CASES, ids=_case_id)
def test_azure_create_infra_is_a_deployment_job_that_applies_the_reviewed_plan(case) -> None:
    name, values = case
    active = azure_active(expanded(name, values))
    (create,) = [(s, j) for s, jobs in active for j in jobs if j["displayName"] == "GCP create infra"]
    stage, job = create
    assert "deployment" in job and "job" not in job, "an approval needs a deployment job"
    assert job["environment"] == f"funnel-{values['environment']}"
    assert stage["dependsOn"] == ["plan"] and stage["condition"].startswith("and(succeeded(),")
    steps = job_steps(job)
    downloads = [i for i, s in enumerate(steps) if s.get("download") == "current" and s.get("artifact") == "plan"]
    (call,) = _azure_job_calls(job)
    assert call[call.index("--json") + 1:] == ["apply", "/azp/Pipeline.Workspace/plan/plan.json"]
    assert call[call.index("--env") + 1] == values["environment"]
    run = next(i for i, s in enumerate(steps) if funnelops_calls(azure_macros(s.get("bash", ""))))
    assert downloads and downloads[0] < run, "the artifact is downloaded before apply"


@pytest.mark.parametrize("case", AZURE_CASES, ids=_case_id)
def test_azure_nothing_plans_and_applies_in_one_step(case) -> None:
    name, values = case
    for _, jobs in azure_active(expanded(name, values)):
        for job in jobs:
            for call in _azure_job_calls(job):
                assert call[call.index("--json") + 1:][:2] != ["job", "create-infra"], job["displayName"]
                if "apply" in call:
                    assert "deployment" in job, f"{job['displayName']} applies outside a deployment job"


def test_azure_only_the_applies_use_the_environment() -> None:
    """Azure evaluates an environment's approvals when the stage that uses it starts: Data
    initialization is approved once, before its first run (docs/pipelines.md)."""
    for name, values in AZURE_CASES:
        for stage, jobs in azure_active(expanded(name, values)):
            deployments = [j for j in jobs if "deployment" in j]
            assert [job_id(j) for j in deployments] == (["gcp_create_infra"] if name == FUNNEL
                                                         and stage["stage"] != "plan" else [])


# ============================================================================================
# GitHub: plan job -> artifact `plan` -> job in the protected environment applies plan.json
# ============================================================================================
@pytest.mark.parametrize("case", FUNNEL_GITHUB_CASES, ids=_case_id)
def test_github_plan_job_uploads_the_saved_plan_as_artifact_plan(case) -> None:
    name, inputs = case
    doc = load_github(GITHUB_PIPELINES[name])
    job = doc["jobs"]["plan"]
    assert "if" not in job and "needs" not in job
    assert job["environment"] == "funnel-${{ inputs.environment }}-ops", "no reviewers for a plan"
    calls = github_calls(name, inputs)
    (plan,) = [c for c in calls if "plan" in c]
    out = _arg_after(plan, "-out")
    assert out == "/runner/temp/plan/plan.json" and _arg_after(plan, "--stage") == inputs["dataStage"]
    run = next(s for s in job["steps"] if "-out" in s.get("run", ""))
    assert run["env"]["FUNNELOPS_TEXT_FILE"] == "${{ runner.temp }}/plan/plan.txt"
    (upload,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")
                 and s["with"]["name"] == "plan"]
    assert upload["with"]["path"].rstrip("/") == "${{ runner.temp }}/plan"
    assert "if" not in upload and upload["with"]["if-no-files-found"] == "error"


@pytest.mark.parametrize("case", FUNNEL_GITHUB_CASES, ids=_case_id)
def test_github_create_infra_applies_the_reviewed_plan_in_the_protected_environment(case) -> None:
    name, inputs = case
    doc = load_github(GITHUB_PIPELINES[name])
    active = dict(github_active_jobs(doc, inputs))
    (jid,) = [j for j, job in active.items() if job["name"] == "GCP create infra"]
    job = active[jid]
    assert job["environment"] == "funnel-${{ inputs.environment }}"
    # after the plan: directly or through the jobs it needs
    chain, todo = set(), [jid]
    while todo:
        needs = active[todo.pop()].get("needs", [])
        for n in [needs] if isinstance(needs, str) else needs:
            chain.add(n)
            todo.append(n)
    assert "plan" in chain
    steps = job["steps"]
    (download,) = [i for i, s in enumerate(steps) if s.get("uses", "").startswith("actions/download-artifact@")]
    assert steps[download]["with"] == {"name": "plan", "path": "${{ runner.temp }}/plan"}
    run = next(i for i, s in enumerate(steps) if "apply" in s.get("run", ""))
    assert download < run
    applies = [c for c in github_calls(name, inputs) if "apply" in c]
    assert applies == [["--project", "projects/funnel/funnel.yaml", "--backend", "gcp", "--env",
                        inputs["environment"], "--json", "apply", "/runner/temp/plan/plan.json"]]


@pytest.mark.parametrize("name", sorted(GITHUB_PIPELINES))
def test_github_only_the_applies_use_the_protected_environment(name: str) -> None:
    """GitHub asks the reviewers for every job that uses a protected environment: only the jobs
    that apply a reviewed plan use funnel-<env>; the others use funnel-<env>-ops."""
    doc = load_github(GITHUB_PIPELINES[name])
    for jid, job in doc["jobs"].items():
        applies = any("apply " in s.get("run", "") for s in job["steps"])
        assert job["environment"] == ("funnel-${{ inputs.environment }}" if applies
                                      else "funnel-${{ inputs.environment }}-ops"), jid
        assert not any(re.search(r"\bjob create-infra\b", s.get("run", "")) for s in job["steps"]), jid


# ============================================================================================
# Parameters: explicit defaults, stated in docs/pipelines.md
# ============================================================================================
def _declared_defaults() -> set[tuple[str, str, str, str]]:
    out = set()
    for name, path in AZURE_PIPELINES.items():
        for p in load_azure(path)["parameters"]:
            assert "default" in p, f"{path.name}: parameter {p['name']} has no explicit default"
            assert p["default"] in p["values"]
            out.add((name, "Azure DevOps", p["name"], p["default"]))
    for name, path in GITHUB_PIPELINES.items():
        for key, spec in load_github(path)["on"]["workflow_dispatch"]["inputs"].items():
            assert "default" in spec, f"{path.name}: input {key} has no explicit default"
            assert spec["default"] in spec["options"]
            out.add((name, "GitHub Actions", key, spec["default"]))
    return out


def _documented_defaults() -> set[tuple[str, str, str, str]]:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("\n## Parameters and their defaults\n", 1)[1].split("\n## ", 1)[0]
    rows = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`"):
            pipeline, system, param, _values, default = cells
            rows.add((pipeline.strip("`"), system, param.split()[0].strip("`"), default.strip("`")))
    return rows


def test_every_parameter_has_an_explicit_default_and_docs_state_it() -> None:
    declared = _declared_defaults()
    assert {(p, s) for p, s, *_ in declared} == {(n, s) for n in (FUNNEL, WORKFLOW)
                                                 for s in ("Azure DevOps", "GitHub Actions")}
    assert _documented_defaults() == declared


# ============================================================================================
# Authentication
# ============================================================================================
@pytest.mark.parametrize("name", sorted(GITHUB_PIPELINES))
def test_github_uses_auth_v3_with_an_id_token(name: str) -> None:
    doc = load_github(GITHUB_PIPELINES[name])
    assert doc["permissions"]["id-token"] == "write"
    for jid, job in doc["jobs"].items():
        (auth,) = [s for s in job["steps"] if "google-github-actions/auth" in s.get("uses", "")]
        assert auth["uses"] == "google-github-actions/auth@v3", jid
        assert auth["with"] == {"workload_identity_provider": "${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}",
                                "service_account": "${{ vars.GCP_SERVICE_ACCOUNT }}"}


@pytest.mark.parametrize("name", sorted(AZURE_PIPELINES))
def test_azure_defaults_to_wif_and_keeps_the_key_file_as_fallback(name: str) -> None:
    params = {p["name"]: p for p in load_azure(AZURE_PIPELINES[name])["parameters"]}
    assert params["gcpAuth"]["default"] == "wif" and params["gcpAuth"]["values"] == ["wif", "keyfile"]
    defaults = {k: p["default"] for k, p in params.items()}
    for auth in ("wif", "keyfile"):
        for _, jobs in azure_active(expanded(name, {**defaults, "gcpAuth": auth})):
            for job in jobs:
                steps = job_steps(job)
                wif = [s for s in steps if "azure-devops-oidc.py config" in s.get("bash", "")]
                key = [s for s in steps if s.get("task") == "DownloadSecureFile@1"]
                if auth == "wif":
                    assert len(wif) == 1 and not key, job["displayName"]
                    assert wif[0]["env"]["SYSTEM_ACCESSTOKEN"] == "$(System.AccessToken)"
                    for var in ("GCP_WORKLOAD_IDENTITY_PROVIDER", "GCP_SERVICE_ACCOUNT",
                                "GCP_WIF_SERVICE_CONNECTION_ID"):
                        assert wif[0]["env"][var] == f"$({var})"
                else:
                    assert len(key) == 1 and not wif, job["displayName"]
                    assert key[0]["inputs"]["secureFile"] == f"funnel-{defaults['environment']}-sa.json"
                run = next(s for s in steps if funnelops_calls(azure_macros(s.get("bash", ""))))
                assert run["env"]["GOOGLE_APPLICATION_CREDENTIALS"] == "$(GCP_CREDENTIALS_FILE)"
                assert run["env"]["GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES"] == "1"


# ============================================================================================
# Installs: pinned by constraints.txt, pip's cache keyed on it
# ============================================================================================
@pytest.mark.parametrize("case", AZURE_CASES, ids=_case_id)
def test_azure_pip_cache_is_keyed_on_the_constraints(case) -> None:
    name, values = case
    for _, jobs in azure_active(expanded(name, values)):
        for job in jobs:
            steps = job_steps(job)
            (cache,) = [i for i, s in enumerate(steps) if s.get("task") == "Cache@2"]
            (install,) = [i for i, s in enumerate(steps) if "pip install" in s.get("bash", "")]
            key = steps[cache]["inputs"]["key"]
            assert "constraints.txt" in key and values.get("pythonVersion", "3.11") in key
            assert steps[install]["env"]["PIP_CACHE_DIR"] == steps[cache]["inputs"]["path"]
            assert re.search(r"pip install .*-c constraints\.txt \"\.\[gcp\]\"", steps[install]["bash"])
            assert cache < install


@pytest.mark.parametrize("name", sorted(GITHUB_PIPELINES))
def test_github_pip_cache_is_keyed_on_the_constraints(name: str) -> None:
    for jid, job in load_github(GITHUB_PIPELINES[name])["jobs"].items():
        (setup,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
        assert setup["uses"] == "actions/setup-python@v5"
        assert setup["with"]["cache"] == "pip" and setup["with"]["cache-dependency-path"] == "constraints.txt"
        (install,) = [s for s in job["steps"] if "pip install" in s.get("run", "")]
        assert re.search(r"pip install .*-c constraints\.txt \"\.\[gcp\]\"", install["run"]), jid


# ============================================================================================
# The Azure DevOps OIDC helper, for real: a local oidctoken endpoint, then google-auth runs it
# ============================================================================================
def _jwt(exp: int) -> str:
    def part(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
    return f"{part({'alg': 'RS256'})}.{part({'iss': 'https://vstoken.dev.azure.com/org', 'exp': exp})}.c2ln"


class _Endpoint:
    """Azure DevOps' oidctoken endpoint as documented: POST, bearer job token, {"oidcToken": ...}."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[dict[str, Any]] = []
        self.exp = int(time.time()) + 600
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server calls it by this name
                length = int(self.headers.get("Content-Length") or 0)
                owner.requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                       "body": self.rfile.read(length)})
                body = (json.dumps({"oidcToken": _jwt(owner.exp)}) if status == 200
                        else json.dumps({"message": "no permission"})).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/org/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    created: list[_Endpoint] = []

    def make(status: int = 200) -> _Endpoint:
        created.append(_Endpoint(status))
        return created[-1]

    yield make
    for e in created:
        e.close()


def _agent_env(ep: _Endpoint) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSTEM_", "GCP_"))}
    env.update({"SYSTEM_COLLECTIONURI": ep.url, "SYSTEM_TEAMPROJECTID": "p-guid", "SYSTEM_PLANID": "plan-guid",
                "SYSTEM_JOBID": "job-guid", "SYSTEM_ACCESSTOKEN": "job-token-secret",
                "GCP_WIF_SERVICE_CONNECTION_ID": "sc-guid",
                "GCP_WORKLOAD_IDENTITY_PROVIDER": "projects/123/locations/global/workloadIdentityPools/azdo/providers/funnel",
                "GCP_SERVICE_ACCOUNT": "funnel-deployer@analitica-funnel.iam.gserviceaccount.com"})
    return env


def test_oidc_helper_writes_googles_external_account_config(tmp_path: Path, endpoint) -> None:
    ep = endpoint()
    out = tmp_path / "creds" / "gcp.json"
    proc = subprocess.run([sys.executable, str(OIDC), "config", str(out)], env=_agent_env(ep),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (req,) = ep.requests  # one token fetched right away, to fail early
    assert req["path"] == ("/org/p-guid/_apis/distributedtask/hubs/build/plans/plan-guid/jobs/job-guid/oidctoken"
                           "?serviceConnectionId=sc-guid&api-version=7.1-preview.1")
    assert req["auth"] == "Bearer job-token-secret"
    config = json.loads(out.read_text())
    assert config["type"] == "external_account"
    assert config["audience"] == ("//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/azdo"
                                  "/providers/funnel")
    assert config["subject_token_type"] == "urn:ietf:params:oauth:token-type:jwt"
    assert config["token_url"] == "https://sts.googleapis.com/v1/token"
    assert config["service_account_impersonation_url"] == (
        "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"
        "funnel-deployer@analitica-funnel.iam.gserviceaccount.com:generateAccessToken")
    assert "job-token-secret" not in out.read_text() and "job-token-secret" not in proc.stdout + proc.stderr
    assert out.stat().st_mode & 0o077 == 0


def test_google_auth_runs_the_helper_for_a_fresh_token(tmp_path: Path, endpoint, monkeypatch) -> None:
    """google-auth's own executable-sourced credentials load the configuration and run the command
    in it: each refresh asks Azure DevOps for a new token (what keeps a long job authenticated)."""
    pluggable = pytest.importorskip("google.auth.pluggable")
    ep = endpoint()
    out = tmp_path / "gcp.json"
    env = _agent_env(ep)
    assert subprocess.run([sys.executable, str(OIDC), "config", str(out)], env=env, timeout=60).returncode == 0
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1")
    creds = pluggable.Credentials.from_info(json.loads(out.read_text()))
    assert creds.retrieve_subject_token(None) == _jwt(ep.exp)
    assert creds.retrieve_subject_token(None) == _jwt(ep.exp)
    assert len(ep.requests) == 3, "one token per retrieval, none cached in a file"


def test_oidc_helper_names_the_refusal(tmp_path: Path, endpoint) -> None:
    ep = endpoint(status=401)
    proc = subprocess.run([sys.executable, str(OIDC), "config", str(tmp_path / "gcp.json")], env=_agent_env(ep),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and not (tmp_path / "gcp.json").exists()
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("##vso[task.logissue type=error]")]
    assert "HTTP 401" in line and "Pipeline permissions" in line
    token = subprocess.run([sys.executable, str(OIDC), "token", "--url", ep.url + "x"], env=_agent_env(ep),
                           capture_output=True, text=True, timeout=60)
    answer = json.loads(token.stdout)
    assert answer["version"] == 1 and answer["success"] is False and "HTTP 401" in answer["message"]


def test_oidc_helper_refuses_a_missing_variable(tmp_path: Path, endpoint) -> None:
    env = _agent_env(endpoint())
    env["GCP_WIF_SERVICE_CONNECTION_ID"] = "$(GCP_WIF_SERVICE_CONNECTION_ID)"  # not in the variable group
    proc = subprocess.run([sys.executable, str(OIDC), "config", str(tmp_path / "gcp.json")], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "GCP_WIF_SERVICE_CONNECTION_ID is not set" in proc.stdout


# ============================================================================================
# GitHub: the environment's variables reach funnelops as environment variables
# ============================================================================================
def test_github_vars_are_exported_to_the_following_steps(tmp_path: Path) -> None:
    github_env = tmp_path / "github_env"
    variables = {"GCP_PROJECT_ID": "analitica-funnel-prod", "FUNNEL_BUCKET_SUFFIX": "prod",
                 "MULTI": "line one\nline two", "GITHUB_TOKEN_X": "no", "not-a-name": "no"}
    env = {**os.environ, "GITHUB_ENV": str(github_env), "VARS_JSON": json.dumps(variables)}
    proc = subprocess.run([sys.executable, str(EXPORT)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "analitica-funnel-prod" not in proc.stdout + proc.stderr, "values are never printed"
    # read it back as the runner does: NAME<<DELIMITER ... DELIMITER
    parsed, lines = {}, github_env.read_text().splitlines()
    while lines:
        name, delimiter = lines.pop(0).split("<<", 1)
        end = lines.index(delimiter)
        parsed[name], lines = "\n".join(lines[:end]), lines[end + 1:]
    assert parsed == {"FUNNEL_BUCKET_SUFFIX": "prod", "GCP_PROJECT_ID": "analitica-funnel-prod",
                      "MULTI": "line one\nline two"}
    assert proc.stdout.count("::warning::") == 2


# ============================================================================================
# The wrapper: the plan's text beside plan.json, and a stale plan said as such
# ============================================================================================
needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


@needs_bash
def test_wrapper_saves_the_text_beside_the_plan(tmp_path: Path) -> None:
    text_file = tmp_path / "plan" / "plan.txt"
    fake = "echo '{\"changes\": 1}'; echo 'Plan: 1 to create' >&2; test -d \"$(dirname \"$FUNNELOPS_TEXT_FILE\")\""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_BUILD", "GITHUB_ACTIONS")}
    env["FUNNELOPS_TEXT_FILE"] = str(text_file)
    proc = subprocess.run(["bash", str(WRAPPER), str(tmp_path / "out" / "o.json"), "bash", "-c", fake],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert text_file.read_text() == "Plan: 1 to create\n"
    assert json.loads((tmp_path / "out" / "o.json").read_text()) == {"changes": 1}


@needs_bash
def test_wrapper_says_a_stale_plan_is_stale(tmp_path: Path) -> None:
    doc = json.dumps({"error": "stale_plan", "message": "the plan is stale (gcs://b changed): re-run plan",
                      "exit_code": 1})
    fake = f"printf '%s\\n' '{doc}'; exit 1"
    env = {k: v for k, v in os.environ.items() if k not in ("TF_BUILD", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY")}
    env["TF_BUILD"] = "True"
    proc = subprocess.run(["bash", str(WRAPPER), str(tmp_path / "o.json"), "bash", "-c", fake],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("##vso[task.logissue type=error]")]
    assert "Refused: the reviewed plan is stale" in line and "gcs://b changed" in line
    assert "Run the pipeline again" in line
