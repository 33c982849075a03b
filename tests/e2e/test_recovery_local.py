"""Lifecycle dead ends, on the real local backend through the console script (issue #12):

* a failed "Initial data" re-runs cleanly: its first job runs the trusted flows again, even though
  the failed attempt had already switched the templates to `--trusted_flows=false`;
* the Workflow stage is recorded when a forced run SUCCEEDS: a forced run that fails leaves it not
  done, naming the run and the `logs` command;
* `--period` on a force, and `funnelops backfill` over past days, each period a `backfill` run.

The data is historical (2023-11 .. 2024-01-10), as a team's extracts are: "today" has no file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FUNNEL = REPO / "projects" / "funnel"
FUNNELOPS = str(Path(sys.executable).with_name("funnelops"))


class Funnelops:
    def __init__(self, base: Path) -> None:
        shutil.copytree(FUNNEL, base / "project", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        self.home = base / "home"
        self.env = dict(os.environ, FUNNELOPS_PROJECT=str(base / "project" / "funnel.yaml"),
                        FUNNELOPS_HOME=str(self.home), NO_COLOR="1", COLUMNS="200")

    def __call__(self, *args: str, code: int = 0, timeout: float = 240) -> subprocess.CompletedProcess:
        proc = subprocess.run([FUNNELOPS, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == code, (f"funnelops {' '.join(args)}: exit {proc.returncode}, expected {code}\n"
                                         f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        assert "Traceback" not in proc.stderr
        return proc

    def json(self, *args: str, code: int = 0) -> object:
        return json.loads(self("--json", *args, code=code).stdout)

    def workflow_stage(self) -> dict:
        return next(s for s in self.json("status")["stages"] if s["stage"] == "workflow")


@pytest.fixture(scope="module")
def recovered(tmp_path_factory):
    """Initial data fails (ten days of data: no deal is won yet, the refined re-run finds no trusted
    won deals); the data is fixed (two more months); Initial data is run again."""
    f = Funnelops(tmp_path_factory.mktemp("recovery"))
    f("data", "generate", "--rows", "2000", "--start", "2024-01-01", "--end", "2024-01-10")
    f("pipeline", "funnel", "--data-stage", "IaC")
    # before Initial data, a backfill is refused (stage order, exit 4), nothing started
    err = f.json("backfill", "--workflow", "funnel-dia", "--from", "2024-01-01", "--to", "2024-01-03", code=4)
    assert err["error"] == "stage_order" and "Initial data" in err["hint"]
    failed = f.json("pipeline", "funnel", "--data-stage", "Initial data", code=1)
    f("data", "generate", "--rows", "3000", "--start", "2023-11-01", "--end", "2024-01-10", "--replace")
    again = f.json("pipeline", "funnel", "--data-stage", "Initial data")
    return f, failed, again


def test_a_failed_initial_data_reruns_cleanly_with_trusted_flows(recovered):
    f, failed, again = recovered
    assert failed["error"] == "run_failed"
    assert 'funnelops pipeline funnel --data-stage "Initial data"' in failed["hint"]  # not "run the job again"
    jobs = failed["details"]["pipeline"]["jobs"]
    assert [j["ok"] for j in jobs] == [True, True, False]  # the templates were switched before the failure
    assert again["ok"]
    first = again["jobs"][0]["detail"]["runs"]
    # the stage's first job ran the trusted flows again (before: --trusted_flows=false, refined only)
    for run in first:
        assert "--trusted_flows=false" not in run["args"] and "--refined_flows=false" in run["args"], run["args"]
        assert run["state"] == "DONE" and run["rows"]["read"] > 0
    st = f.json("status")
    assert [s["done"] for s in st["stages"]] == [True, True, False]
    # the templates are where the stage leaves them: refined flows only
    assert all(t["dynamic_args"] == ["--trusted_flows=false"] for t in st["templates"])


def test_the_workflow_stage_waits_for_a_forced_run_to_succeed_and_period_picks_the_day(recovered):
    f, _, _ = recovered
    # a forced daily run on historical data processes today: it fails, and the stage stays not done
    err = f.json("pipeline", "workflow", "--scheduler", "Día", "--wait", code=1)
    run_id = err["details"]["pipeline"]["jobs"][0]["detail"]["run"]["id"]
    stage = f.workflow_stage()
    assert not stage["done"]
    assert stage["forced_run"]["run_id"] == run_id and stage["forced_run"]["state"] == "FAILED"
    assert f"funnelops logs {run_id}" in stage["forced_run"]["hint"]
    assert f"funnelops logs {run_id}" in f("status").stdout
    # a period that is not a day is bad usage, nothing started
    bad = f.json("job", "force-scheduler", "--scheduler", "Día", "--period", "2024-01", code=2)
    assert "not a day period" in bad["message"]
    # the same force for a day with data succeeds; without --wait the stage waits for the run
    forced = f.json("job", "force-scheduler", "--scheduler", "Día", "--period", "2024-01-05")["run"]
    assert forced["period"] == "2024-01-05" and forced["args"][-1] == "--period=2024-01-05"
    deadline = time.monotonic() + 180
    while not (stage := f.workflow_stage())["done"]:
        assert stage["forced_run"]["run_id"] == forced["id"]
        assert stage["forced_run"]["state"] in ("PENDING", "RUNNING"), stage
        assert "in progress" in stage["forced_run"]["hint"]
        assert time.monotonic() < deadline
        time.sleep(0.5)
    runs = {r["id"]: r for r in f.json("runs")}
    assert runs[forced["id"]]["state"] == "DONE" and runs[forced["id"]]["rows"]["read"] > 0


def test_backfill_runs_each_day_in_order_as_backfill_runs(recovered):
    from funnelops.backends.local.warehouse_conn import file_lock

    f, _, _ = recovered
    out = f.json("backfill", "--workflow", "funnel-dia", "--from", "2024-01-01", "--to", "2024-01-03")
    assert out["ok"] and [p["period"] for p in out["periods"]] == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert [p["state"] for p in out["periods"]] == ["DONE"] * 3
    ids = [p["run_id"] for p in out["periods"]]
    assert ids == sorted(ids)
    runs = {r["id"]: r for r in f.json("runs")}
    assert [(runs[i]["trigger"], runs[i]["period"], runs[i]["state"]) for i in ids] == [
        ("backfill", "2024-01-01", "DONE"), ("backfill", "2024-01-02", "DONE"), ("backfill", "2024-01-03", "DONE")]
    table = f("runs").stdout
    assert "backfill" in table and "2024-01-02" in table

    # a day without data fails; the backfill stops there (exit 1), the next day is not run
    err = f.json("backfill", "--workflow", "funnel-dia", "--from", "2022-12-31", "--to", "2023-01-01", code=1)
    result = err["details"]["backfill"]
    assert [p["state"] for p in result["periods"]] == ["FAILED", "SKIPPED"] and result["failed"] == ["2022-12-31"]
    assert "funnelops logs" in err["hint"]

    # while a run of the workflow is in progress: refused (exit 3), nothing started
    with file_lock(f.home / "warehouse.duckdb.lock", exclusive=False):
        forced = f.json("job", "force-scheduler", "--scheduler", "Día", "--period", "2024-01-04")["run"]
        before = len(f.json("runs", "-n", "100"))
        err = f.json("backfill", "--workflow", "funnel-dia", "--from", "2024-01-01", "--to", "2024-01-02", code=3)
        assert err["error"] == "run_in_progress" and f"run {forced['id']}" in err["message"]
        assert len(f.json("runs", "-n", "100")) == before
        f.json("cancel", str(forced["id"]))
