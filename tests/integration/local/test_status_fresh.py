"""`status`, `runs`, `logs`, `cancel` and `query` on a fresh home: say which project and home they read,
never `vNone`, never a traceback, and refuse a write before opening anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PROJECT = REPO / "projects" / "funnel" / "funnel.yaml"


def cli(home: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELOPS_")}
    env.update(NO_COLOR="1", COLUMNS="200")
    proc = subprocess.run([sys.executable, "-m", "funnelops", "--project", str(PROJECT), "--home", str(home), *args],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == code, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def test_status_on_a_fresh_home_names_where_it_looked_and_shows_no_vnone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = cli(home, "status").stdout
    assert "vNone" not in out and "funnel-dia: not created" in out
    assert f"project file: {PROJECT}" in out and f"home:         {home}" in out
    assert "Día (dia) -> funnel-dia: 0 6 * * *, not created" in out
    assert f"warehouse:      {home / 'warehouse.duckdb'}" in out
    assert f"quarantine:     {home / 'buckets' / 'analitica-funnel-trusted' / '_quarantine'}/" in out
    assert 'try:            funnelops query "SELECT * FROM funnel_refined.funnel_daily LIMIT 10"' in out
    st = json.loads(cli(home, "--json", "status").stdout)
    assert st["project_file"] == str(PROJECT) and st["home"] == str(home)
    assert st["where"]["refined_tables"][0] == "funnel_refined.funnel_daily"


def test_missing_runs_name_the_project_and_the_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    out = cli(home, "runs").stdout
    assert f"no runs yet in home {home} (project analitica-funnel" in out
    for cmd in ("logs", "cancel"):
        err = json.loads(cli(home, "--json", cmd, "7", code=2).stdout)
        assert f"no run 7 in project analitica-funnel ({PROJECT}), home {home}" == err["message"], err
        assert "funnelops runs" in err["hint"]


@pytest.mark.parametrize("sql", ["CREATE TABLE funnel_refined.x AS SELECT 1 AS a",
                                 "UPDATE funnel_refined.funnel_daily SET volume = 0 WHERE true",
                                 "SELECT 1 AS a; SELECT 2 AS b",
                                 "DESCRIBE funnel_refined.funnel_daily"])
def test_query_refuses_a_write_before_opening_the_home(tmp_path: Path, capsys, sql: str) -> None:
    from funnelops.cli.main import main

    home = tmp_path / "home"
    assert main(["--project", str(PROJECT), "--home", str(home), "query", sql]) == 2
    err = capsys.readouterr().err
    assert "query line 1:" in err and "Hint:" in err and "Traceback" not in err
    assert not home.exists()  # refused before the backend (or its home) was opened


def test_next_step_never_suggests_serve_where_no_daemon_fires() -> None:
    from funnelops.lifecycle.status import next_step
    from funnelops.spec.loader import load_project

    loaded = load_project(PROJECT)
    assert "scheduler serve" in next_step(loaded, "workflow", True)
    gcp = next_step(loaded, "workflow", False)
    assert "scheduler serve" not in gcp and "Cloud Scheduler fires them" in gcp
    assert "scheduler serve" not in next_step(loaded, "initial_data", False)
