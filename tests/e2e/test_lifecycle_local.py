"""The seed's lifecycle end to end on the real local backend: the real `funnelops` console script
in subprocesses, on a copy of the Funnel project with small generated data.

Two homes, so the two halves run in parallel under xdist: one goes through the whole lifecycle from
empty (order refusals, IaC twice, Initial data, the workflow pipeline); the other, prepared once by
a module-scoped fixture, re-runs Initial data and the workflow pipeline (idempotent: same refined
rows) and operates the platform (overlap refusal, cancel, logs, runs, status, schedulers).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FUNNEL = REPO / "projects" / "funnel"
FUNNELOPS = str(Path(sys.executable).with_name("funnelops"))
ROWS = 5000
REFINED = ("funnel_daily", "funnel_monthly", "funnel_yearly", "attainment", "dim_indicators")
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$")


class Funnelops:
    """The console script against one project copy and home, through FUNNELOPS_PROJECT/FUNNELOPS_HOME."""

    def __init__(self, base: Path) -> None:
        shutil.copytree(FUNNEL, base / "project", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        self.project = base / "project" / "funnel.yaml"
        self.home = base / "home"
        self.env = dict(os.environ, FUNNELOPS_PROJECT=str(self.project), FUNNELOPS_HOME=str(self.home),
                        NO_COLOR="1", COLUMNS="200")

    def __call__(self, *args: str, code: int = 0, timeout: float = 150) -> subprocess.CompletedProcess:
        proc = subprocess.run([FUNNELOPS, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == code, (f"funnelops {' '.join(args)}: exit {proc.returncode}, expected {code}\n"
                                         f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        return proc

    def json(self, *args: str, code: int = 0) -> object:
        return json.loads(self("--json", *args, code=code).stdout)

    def refined_counts(self) -> dict[str, int]:
        import duckdb

        con = duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True)
        try:
            return {t: con.execute(f"SELECT count(*) FROM funnel_refined.{t}").fetchone()[0] for t in REFINED}
        finally:
            con.close()

    def no_changes(self, stage: str) -> None:
        plan = self.json("plan", "--stage", stage, "--detailed-exitcode")  # exit 0: no changes
        assert all(c["action"] in ("unchanged",) for c in plan["changes"]), plan["summary"]


def _wait_run(f: Funnelops, run_id: int, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = next(r for r in f.json("runs") if r["id"] == run_id)
        if run["state"] not in ("PENDING", "RUNNING"):
            return run
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} did not end in {timeout}s")


def test_lifecycle_from_empty(tmp_path):
    f = Funnelops(tmp_path)
    f("data", "generate", "--rows", str(ROWS))

    st = f.json("status")
    assert st["position"] is None and st["next"] == "funnelops pipeline funnel --data-stage IaC"

    # order refusals before IaC: exit 4 naming the command to run first
    out = f("pipeline", "funnel", "--data-stage", "Initial data", code=4)
    assert "funnelops pipeline funnel --data-stage IaC" in out.stderr
    err = f.json("pipeline", "funnel", "--data-stage", "initial-data", code=4)
    assert err["error"] == "stage_order" and err["exit_code"] == 4
    assert "funnelops pipeline funnel --data-stage IaC" in err["hint"]
    f("pipeline", "workflow", "--scheduler", "Día", code=4)

    # IaC, twice: the second apply changes nothing
    out = f("pipeline", "funnel", "--data-stage", "IaC")
    assert "GCP create infra" in out.stdout and "Succeeded" in out.stdout
    f.no_changes("IaC")
    again = f.json("pipeline", "funnel", "--data-stage", "iac")
    assert again["ok"] and not again["jobs"][0]["detail"]["applied"]  # nothing applied
    f.no_changes("IaC")

    # the workflow pipeline before Initial data: exit 4, says to run Initial data first
    out = f("pipeline", "workflow", "--scheduler", "dia", code=4)
    assert 'funnelops pipeline funnel --data-stage "Initial data"' in out.stderr
    assert "Initial data" in out.stderr

    # Initial data: run, create infra, re-run (each job printed with its timing, then a summary)
    out = f("pipeline", "funnel", "--data-stage", "Initial data")
    for job in ("GCP run workflow template", "GCP create infra", "GCP re run workflow template"):
        assert re.search(rf"✓ {job}\s+\d+\.\ds", out.stdout), out.stdout
    assert "Succeeded" in out.stdout
    f.no_changes("Initial data")
    counts = f.refined_counts()
    assert all(n > 0 for n in counts.values()), counts
    runs = f.json("runs")
    assert len(runs) == 6 and {r["trigger"] for r in runs} == {"initial-load"}
    assert {r["state"] for r in runs} == {"DONE"}
    assert {r["workflow"] for r in runs} == {"funnel-dia", "funnel-mes", "funnel-anio"}

    # the workflow pipeline: initialize templates, force Día, follow it to its end
    out = f("pipeline", "workflow", "--scheduler", "Día", "--wait")
    assert "GCP force scheduler" in out.stdout and "Follow the forced run" in out.stdout
    m = re.search(r"run (\d+) \(funnel-dia\): DONE — rows read ([\d,]+)", out.stdout)
    assert m, out.stdout
    assert int(m.group(1)) >= 1
    f.no_changes("Workflow")
    st = f.json("status")
    assert st["position"] == "workflow" and all(s["done"] for s in st["stages"])
    assert all(t["dynamic_args"] == [] for t in st["templates"])  # the workflow stage adds no argument


# -- operating a prepared platform -----------------------------------------------------------------

@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    f = Funnelops(tmp_path_factory.mktemp("prepared"))
    f("data", "generate", "--rows", str(ROWS))
    f("pipeline", "funnel", "--data-stage", "IaC")
    f("pipeline", "funnel", "--data-stage", "Initial data")
    f.initial_counts = f.refined_counts()
    return f


def test_aliases_resolve_in_the_pipelines(tmp_path):
    f = Funnelops(tmp_path)  # dry runs: the project is checked, no backend is opened
    for word, name, workflow in [("Día", "Día", "funnel-dia"), ("dia", "Día", "funnel-dia"),
                                 ("DIA", "Día", "funnel-dia"), ("mes", "Mes", "funnel-mes"),
                                 ("anio", "Año", "funnel-anio"), ("Año", "Año", "funnel-anio"),
                                 ("duplicado-mes", "Duplicado mes", "funnel-duplicado-mes"),
                                 ("Duplicado mes", "Duplicado mes", "funnel-duplicado-mes")]:
        out = f.json("--dry-run", "pipeline", "workflow", "--scheduler", word)
        assert (out["scheduler"], out["workflow"]) == (name, workflow), word
    for word, stage in [("iac", "iac"), ("IaC", "iac"), ("initial-data", "initial_data"),
                        ("Initial data", "initial_data")]:
        assert f.json("--dry-run", "pipeline", "funnel", "--data-stage", word)["dataStage"] == stage
    assert not f.home.exists()
    err = f.json("pipeline", "workflow", "--scheduler", "semana", code=2)
    assert err["error"] == "usage" and "unknown scheduler 'semana'" in err["message"]


def test_operating_overlap_refusal_cancel_logs_runs_status_schedulers(prepared):
    from funnelops.backends.local.warehouse_conn import file_lock

    f = prepared
    # re-running Initial data gives the same refined rows
    result = f.json("pipeline", "funnel", "--data-stage", "initial-data")
    assert result["ok"] and [j["job"] for j in result["jobs"]] == [
        "GCP run workflow template", "GCP create infra", "GCP re run workflow template"]
    assert f.refined_counts() == f.initial_counts
    f.no_changes("Initial data")

    # the workflow pipeline, followed to its end (the first force also initializes the templates)
    first = f.json("pipeline", "workflow", "--scheduler", "Día", "--wait")["jobs"][-1]["detail"]["run"]
    assert first["state"] == "DONE"
    after_dia = f.refined_counts()

    # Force Día while this test holds the warehouse for reading, so the run is still in progress
    # (waiting to write) for as long as the checks below take.
    with file_lock(f.home / "warehouse.duckdb.lock", exclusive=False):
        forced = f.json("job", "force-scheduler", "--scheduler", "Día")
        run_id = forced["run"]["id"]
        assert forced["run"]["state"] == "RUNNING" and forced["run"]["trigger"] == "forced"
        # a second force while it runs is refused with exit 3, naming the run; text and JSON
        out = f("pipeline", "workflow", "--scheduler", "dia", code=3)
        assert "already running" in out.stderr and f"run {run_id}" in out.stderr
        assert "Traceback" not in out.stderr
        refusal = f.json("job", "force-scheduler", "--scheduler", "Día", code=3)
        assert refusal["error"] == "run_in_progress" and refusal["exit_code"] == 3
        assert "already running" in refusal["message"] and f"run {run_id}" in refusal["message"]
        assert refusal["details"]["holder"]["run_id"] == run_id
        assert refusal["details"]["holder"]["trigger"] == "forced"
        # status and runs answer while the run is in progress
        st = f.json("status")
        assert [r["id"] for r in st["running"]] == [run_id]
        assert next(r for r in f.json("runs") if r["id"] == run_id)["state"] == "RUNNING"
        logs = f("logs", str(run_id))
        assert "==> funnel-flows.log <==" in logs.stdout and "-m funnelops.flows" in logs.stdout
        cancelled = f.json("cancel", str(run_id))
        assert cancelled["id"] == run_id and cancelled["state"] == "CANCELLED"
    assert f.json("status")["running"] == []

    # the lease is free again: force and follow to the end; the same refined rows as the first time
    result = f.json("pipeline", "workflow", "--scheduler", "Día", "--wait")
    done = result["jobs"][-1]["detail"]["run"]
    assert done["state"] == "DONE" and done["id"] > run_id
    assert f.refined_counts() == after_dia
    f.no_changes("Workflow")
    followed = f("logs", str(done["id"]), "--follow", timeout=60)
    assert f"==> run {done['id']} ended DONE" in followed.stdout
    assert "refined  funnel" in followed.stdout

    # runs --json: a list of run objects with the documented fields
    runs = f.json("runs")
    assert isinstance(runs, list) and runs[0]["id"] == done["id"]
    for r in runs:
        assert {"id", "workflow", "state", "trigger", "started_at", "ended_at", "rows"} <= set(r)
        assert r["state"] in ("DONE", "CANCELLED") and r["trigger"] in ("initial-load", "forced")
        for key in ("started_at", "ended_at"):
            assert ISO_WITH_OFFSET.match(r[key]), (key, r[key])
            assert datetime.fromisoformat(r[key]).utcoffset() is not None
        assert datetime.fromisoformat(r["started_at"]) <= datetime.fromisoformat(r["ended_at"])
        if r["state"] == "DONE":
            assert all(isinstance(r["rows"][k], int) for k in ("read", "kept", "quarantined"))
            assert r["rows"]["read"] == r["rows"]["kept"] + r["rows"]["quarantined"]
    assert next(r for r in runs if r["id"] == run_id)["state"] == "CANCELLED"
    assert [r["id"] for r in f.json("runs", "--workflow", "funnel-mes")] and \
        {r["workflow"] for r in f.json("runs", "--workflow", "funnel-mes")} == {"funnel-mes"}
    table = f("runs").stdout
    assert "funnel-dia" in table and "CANCELLED" in table

    # status --json fields
    st = f.json("status")
    assert {"project", "backend", "spec_hash", "stages", "position", "next", "templates", "schedulers",
            "running", "waiting_for_data"} <= set(st)
    assert st["backend"] == "local" and st["position"] == "workflow" and st["waiting_for_data"] == []
    assert [s["stage"] for s in st["stages"]] == ["iac", "initial_data", "workflow"]
    assert {t["name"] for t in st["templates"]} == {"funnel-dia", "funnel-mes", "funnel-anio",
                                                      "funnel-duplicado-mes"}
    sched = {s["id"]: s for s in st["schedulers"]}
    assert set(sched) == {"dia", "mes", "anio", "duplicado-mes"}
    assert sched["dia"]["last_fire"] and ISO_WITH_OFFSET.match(sched["dia"]["next_fire"])

    # scheduler pause / resume / list
    assert f.json("scheduler", "pause", "Día") == {"scheduler": "dia", "paused": True}
    listed = {s["id"]: s for s in f.json("scheduler", "list")}
    assert listed["dia"]["paused"] and listed["dia"]["next_fire"] is None
    assert not listed["mes"]["paused"] and ISO_WITH_OFFSET.match(listed["mes"]["next_fire"])
    text = f("scheduler", "list").stdout
    assert re.search(r"Día\s+dia\s+0 6 \* \* \*\s+America/Bogota\s+-> funnel-dia\s+paused", text), text
    assert f.json("scheduler", "resume", "dia") == {"scheduler": "dia", "paused": False}
    listed = {s["id"]: s for s in f.json("scheduler", "list")}
    assert not listed["dia"]["paused"] and ISO_WITH_OFFSET.match(listed["dia"]["next_fire"])
    nxt = datetime.fromisoformat(listed["dia"]["next_fire"])
    from zoneinfo import ZoneInfo

    local = nxt.astimezone(ZoneInfo("America/Bogota"))
    assert (local.hour, local.minute) == (6, 0)
