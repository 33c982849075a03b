"""`funnelops ui` on the gcp backend: the dashboard reads the same ledger and runs as the CLI.

A project is taken through IaC and Initial data with the core the CLI uses (the contract double
runs the initial loads as Dataproc operations; fake-gcs holds the ledger, leases and driver
output), then the dashboard app (`create_app` + `Dashboard` with backend "gcp") is served through
the ASGI test client. gcp run ids are Dataproc operation ids (UUIDs, with dashes): the pages and
API routes must take them as they are. The double holds a run RUNNING until the test finishes it
(`set_run_outcome(duration_s=None)`), so "a force while one runs" is deterministic.
"""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from funnelops.ui.app import create_app
from funnelops.ui.dashboard import Dashboard, UiSettings

from test_backend_iac import gcp_env, make_project, open_gcp  # noqa: F401 - fixture re-used
from tests.helpers.tiny_project import wait_until
from tests.helpers.ui_home import client, csrf

pytestmark = pytest.mark.gcp
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class GcpHome:
    """A project on the double through Initial data, its home, and the dashboard over them."""

    def __init__(self, project: Path, home: Path, env: dict[str, str], staging: str) -> None:
        self.project, self.home, self.env, self.staging = project, home, env, staging
        self.board = Dashboard(UiSettings(project_path=project, home=home, backend_name="gcp"))
        self.client = client(create_app(self.board.settings, self.board))

    def cli_json(self, *args: str) -> Any:
        """The real CLI (a separate process, as an operator would run it) on the same project and home."""
        env = {k: v for k, v in os.environ.items() if k != "STORAGE_EMULATOR_HOST"}
        env.update(self.env, NO_COLOR="1")
        cmd = [sys.executable, "-m", "funnelops", "--backend", "gcp", "--project", str(self.project),
               "--home", str(self.home), *args, "--json"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        return json.loads(proc.stdout)


@pytest.fixture
def gcp_home(gcp_env, gcp_double, fake_gcs, tmp_path):  # noqa: F811
    from funnelops.lifecycle.pipelines import run_funnel_pipeline

    project = make_project(tmp_path)
    loaded, backend = open_gcp(project, tmp_path)
    staging = fake_gcs.new_bucket("staging").name
    gcp_double.dataproc_jobs.set_staging_bucket(staging)
    gcp_double.dataproc.set_run_outcome(duration_s=0.05)
    assert run_funnel_pipeline(loaded, backend, "IaC", actor="ci").ok
    trusted = loaded.spec.bucket_for("trusted").name  # some trusted data, as a real run would write
    fake_gcs.client.bucket(trusted).blob("leads/period=2024-01-01/part-0.parquet").upload_from_string(b"PAR1")
    assert run_funnel_pipeline(loaded, backend, "Initial data", actor="ci").ok
    backend.close()
    gcp_double.reset_counters()
    home = GcpHome(project, tmp_path, gcp_env, staging)
    try:
        yield home
    finally:
        gcp_double.dataproc.finish()  # no run outlives the test
        home.board.close()


def _put(fake_gcs, uri: str, suffix: str, text: str) -> None:
    bucket, _, name = uri[len("gs://"):].partition("/")
    fake_gcs.client.bucket(bucket).blob(name + suffix).upload_from_string(text.encode())


def test_status_runs_and_schedulers_on_gcp_are_the_clis_documents(gcp_home, gcp_double):
    c = gcp_home.client
    status = c.get("/api/status")
    assert status.status_code == 200, status.text
    cli_status = gcp_home.cli_json("status")
    assert status.json() == cli_status
    assert cli_status["backend"] == "gcp" and cli_status["position"] == "initial_data"
    ops = gcp_double.dataproc.operations()
    assert len(ops) == 6 and all(op["done"] for op in ops)  # the initial loads, twice each
    runs = c.get("/api/runs")
    assert runs.status_code == 200, runs.text
    assert runs.json() == gcp_home.cli_json("runs")
    assert sorted(r["id"] for r in runs.json()) == sorted(op["name"].rsplit("/", 1)[-1] for op in ops)
    assert all(r["state"] == "DONE" and r["trigger"] == "initial-load" for r in runs.json())
    one = runs.json()[0]
    got = c.get(f"/api/runs/{one['id']}")
    assert got.status_code == 200 and got.json() == one
    filtered = c.get("/api/runs", params={"workflow": "funnel-mes", "state": "done"}).json()
    assert {r["workflow"] for r in filtered} == {"funnel-mes"} and len(filtered) == 2
    scheds = c.get("/api/schedulers")
    assert scheds.status_code == 200
    assert scheds.json() == gcp_home.cli_json("scheduler", "list")
    assert {s["id"] for s in scheds.json()} == {"dia", "mes", "anio", "duplicado-mes"}
    assert all(s["exists"] and not s["paused"] for s in scheds.json())
    # The read-only pages that observe Google (plan) or only the project (lineage) render too.
    plan = c.get("/api/plan")
    assert plan.status_code == 200, plan.text
    assert plan.json()["summary"] == gcp_home.cli_json("plan", "--stage", "Initial data")["summary"]
    page = c.get("/plan")
    assert page.status_code == 200 and ('id="plan-no-changes"' in page.text or 'id="plan"' in page.text)
    lineage = c.get("/lineage")
    assert lineage.status_code == 200 and 'id="lineage"' in lineage.text and "<svg" in lineage.text


def test_a_running_gcp_run_pages_and_logs_by_its_operation_id(gcp_home, gcp_double, fake_gcs):
    """The run page, its logs (the driver output chunks in GCS) and the run list, for a run the
    double holds RUNNING, reached by its operation id (a UUID: dashes, hex letters)."""
    from funnelops.runs import coordinator

    c = gcp_home.client
    gcp_double.dataproc.set_run_outcome("funnel-dia", duration_s=None)
    with gcp_home.board.lock:
        run = coordinator.start(gcp_home.board.backend, "funnel-dia", trigger="manual", actor="ci")
    rid = str(run.id)
    assert re.fullmatch(UUID, rid), rid
    op = gcp_double.dataproc.operations(template="funnel-dia", active=True)[0]["name"]
    assert op.endswith("/" + rid)
    flows = gcp_double.dataproc_jobs.driver_output_uri(op, "funnel-flows")
    _put(fake_gcs, flows, ".000000000", "flows: reading leads\n")
    _put(fake_gcs, flows, ".000000001", "flows: read=3 kept=<b>3</b>\n")

    got = c.get(f"/api/runs/{rid}")
    assert got.status_code == 200 and got.json()["id"] == rid and got.json()["state"] == "RUNNING"
    listed = c.get("/api/runs", params={"state": "running"}).json()
    assert [r["id"] for r in listed] == [rid]
    logs = c.get(f"/api/runs/{rid}/logs")
    assert logs.status_code == 200, logs.text
    doc = logs.json()
    assert doc["run"] == rid and doc["state"] == "RUNNING" and doc["ended"] is False
    assert "".join(ch["text"] for ch in doc["chunks"]) == "flows: reading leads\nflows: read=3 kept=<b>3</b>\n"
    assert doc["chunks"][0]["first"] and "funnel-flows" in doc["chunks"][0]["source"]
    assert doc["console_url"].endswith(f"/{rid}?project={gcp_home.board.loaded.spec.project.id}")
    again = c.get(f"/api/runs/{rid}/logs", params={"cursor": doc["cursor"]}).json()
    assert again["chunks"] == []  # nothing new since the cursor
    _put(fake_gcs, flows, ".000000002", "flows: done\n")
    more = c.get(f"/runs/{rid}/logs-fragment", params={"cursor": doc["cursor"]})
    assert more.status_code == 200 and [ch["text"] for ch in more.json()["chunks"]] == ["flows: done\n"]

    page = c.get(f"/runs/{rid}")
    assert page.status_code == 200, page.text
    html = page.text
    assert '<span id="run-state" class="state" data-state="RUNNING">RUNNING</span>' in html
    assert '<tr class="step" data-step-id="funnel-flows" data-state="RUNNING">' in html  # the graph node
    assert 'id="steps"' in html and 'id="flows"' in html and 'id="logs"' in html
    assert "flows: reading leads" in html and "kept=&lt;b&gt;3&lt;/b&gt;" in html and "<b>3</b>" not in html
    runs_page = c.get("/runs")
    assert runs_page.status_code == 200
    assert f'data-run-id="{rid}"' in runs_page.text and 'id="runs"' in runs_page.text
    assert "every 2s" in runs_page.text  # a run is active: the table polls
    overview = c.get("/")
    assert overview.status_code == 200, overview.text
    for sel in ('id="lifecycle"', 'data-stage="iac"', 'data-stage="initial_data"', 'data-stage="workflow"',
                'id="next-step"', 'id="templates"', 'id="active-runs"', 'id="chart-duration"',
                'id="chart-rows"', 'id="chart-quarantine"'):
        assert sel in overview.text, sel
    assert rid in overview.text  # the run in progress

    gcp_double.dataproc.finish(template="funnel-dia")
    ended = wait_until(lambda: (d := c.get(f"/api/runs/{rid}/logs", params={"cursor": doc["cursor"]}).json())["ended"]
                       and d, what="the run to end", poll=0.1)
    assert ended["state"] == "DONE"
    assert 'id="run-state" class="state" data-state="DONE"' in c.get(f"/runs/{rid}").text


def test_an_unknown_or_odd_run_id_is_a_404_not_a_500(gcp_home):
    """Before: `_run_key` sent any str.isdigit() id through int(), and '\u00b2' (a superscript
    two: isdigit, not a decimal) made /api/runs/\u00b2 a 500 ValueError on both backends."""
    c = gcp_home.client
    for bad in ("00000000-0000-0000-0000-000000000000", "123", "\u00b2", "\u0661\u0662", "no such op",
                "<img src=x onerror=alert(1)>"):
        got = c.get(f"/api/runs/{bad}")
        assert got.status_code == 404, (bad, got.text)
        assert got.json()["error"] == f"no run {bad}"
        assert c.get(f"/api/runs/{bad}/logs").status_code == 404, bad
        page = c.get(f"/runs/{bad}")
        assert page.status_code == 404 and "<img src=x" not in page.text, (bad, page.text)


def test_force_on_gcp_starts_a_run_and_a_second_force_is_409_naming_the_holder(gcp_home, gcp_double):
    c = gcp_home.client
    gcp_double.dataproc.set_run_outcome(duration_s=None)  # the forced run lasts until finished
    first = c.post("/api/force", json={"scheduler": "Día"}, headers=csrf(c))
    assert first.status_code == 200, first.text
    [run] = [j["detail"]["run"] for j in first.json()["jobs"] if "run" in (j["detail"] or {})]
    rid = str(run["id"])
    assert re.fullmatch(UUID, rid)
    assert gcp_double.count("jobs.run") == 1  # through Cloud Scheduler, as `pipeline workflow`
    [op] = gcp_double.dataproc.operations(template="funnel-dia", active=True)
    assert op["name"].endswith("/" + rid)
    second = c.post("/api/force", json={"scheduler": "dia"}, headers=csrf(c))
    assert second.status_code == 409, second.text
    body = second.json()
    holder = body["details"]["holder"]
    assert str(holder["run_id"]) == rid and holder["actor"].endswith("(ui)") and holder["acquired_at"]
    assert rid in body["error"]
    assert gcp_double.count("jobs.run") == 1  # the refusal fired nothing
    assert len(gcp_double.dataproc.operations(template="funnel-dia")) == 3  # two initial loads + this
    page = c.get("/schedulers")
    assert page.status_code == 200 and 'id="schedulers"' in page.text
    assert 'data-scheduler-id="dia"' in page.text and 'class="force' in page.text
    gcp_double.dataproc.finish(template="funnel-dia")
    done = wait_until(lambda: (r := c.get(f"/api/runs/{rid}").json())["state"] != "RUNNING" and r, what="the run",
                      poll=0.1)
    assert done["state"] == "DONE" and done["trigger"] != "initial-load"
    third = c.post("/api/force", json={"scheduler": "dia"}, headers=csrf(c))
    assert third.status_code == 200, third.text  # the lease went with the run


def test_pause_and_resume_round_trip_through_cloud_scheduler(gcp_home, gcp_double):
    c = gcp_home.client

    def job_state(name: str) -> str:
        return next(j["state"] for j in gcp_double.scheduler.jobs() if j["name"].endswith("/" + name))

    paused = c.post("/api/schedulers/mes/pause", headers=csrf(c))
    assert paused.status_code == 200, paused.text
    assert paused.json() == {"scheduler": "mes", "paused": True}
    assert job_state("mes") == "PAUSED" and job_state("dia") == "ENABLED"
    listed = {s["id"]: s for s in c.get("/api/schedulers").json()}
    assert listed["mes"]["paused"] is True and listed["dia"]["paused"] is False
    assert {s["id"]: s["paused"] for s in gcp_home.cli_json("scheduler", "list")}["mes"] is True
    page = c.get("/schedulers").text
    assert 'class="resume' in page and 'data-scheduler="mes"' in page
    resumed = c.post("/api/schedulers/Mes/resume", headers=csrf(c))  # by name, as the CLI takes it
    assert resumed.status_code == 200 and resumed.json() == {"scheduler": "mes", "paused": False}
    assert job_state("mes") == "ENABLED"
    assert all(not s["paused"] for s in c.get("/api/schedulers").json())
    unknown = c.post("/api/schedulers/nope/pause", headers=csrf(c))
    assert unknown.status_code == 404 and "nope" in unknown.text
    assert c.post("/api/schedulers/mes/pause").status_code == 403  # no CSRF header: refused
    assert job_state("mes") == "ENABLED"
    gcp_double.assert_clean()
