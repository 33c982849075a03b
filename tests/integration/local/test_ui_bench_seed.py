"""bench/ui_page_load.py's ledger: seeded runs read back as real runs, and the looks the dashboard
makes on every page (active runs, a page of runs) stay cheap with many runs in the ledger."""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import asdict
from pathlib import Path

import pytest

from bench.ui_page_load import seed_runs
from funnelops.backends import open_backend
from funnelops.backends.types import RunRecord
from funnelops.spec.loader import load_project

EXAMPLE = Path(__file__).resolve().parents[3] / "projects" / "funnel"


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, Path, list[int]]:
    shutil.copytree(EXAMPLE, tmp_path / "project", ignore=shutil.ignore_patterns("__pycache__"))
    project, home = tmp_path / "project" / "funnel.yaml", tmp_path / "home"
    return project, home, seed_runs(home, project, 300, seed=1)


def test_seeded_runs_read_back_as_runs(seeded: tuple[Path, Path, list[int]]) -> None:
    project, home, ids = seeded
    assert ids == list(range(ids[0], ids[0] + 300))
    loaded = load_project(project)
    backend = open_backend("local", loaded, home)
    try:
        runs = backend.runtime.list(limit=1000)
        assert sorted(r.id for r in runs) == ids
        assert {r.workflow for r in runs} == {w.name for w in loaded.spec.workflows}
        assert {"DONE", "FAILED"} <= {r.state for r in runs} and all(r.terminal for r in runs)
        assert {"scheduled", "forced", "backfill"} <= {r.trigger for r in runs}
        assert backend.runtime.active() == []
        by_id = sorted(runs, key=lambda r: r.id)
        assert [r.created_at for r in by_id] == sorted(r.created_at for r in by_id)  # time ascends with ids
        for r in runs:
            flows = r.rows["flows"]
            assert r.rows["read"] == sum(f["read"] for f in flows) == r.rows["kept"] + r.rows["quarantined"]
            assert r.steps[0]["metrics"]["flows"] == flows and r.period and r.ended_at > r.started_at
            json.dumps(r.to_dict())
        forced = {e["data"]["run_id"] for e in backend.ledger.events("workflow-forced", limit=1000)}
        assert forced == {r.id for r in runs if r.trigger == "forced"}
    finally:
        backend.close()


def test_the_active_runs_are_found_by_index_not_by_scanning_every_run(seeded: tuple[Path, Path, list[int]]) -> None:
    _, home, _ = seeded
    con = sqlite3.connect(home / "ledger.sqlite")
    try:
        for sql in ("SELECT id, workflow, pid FROM runs WHERE state = 'RUNNING'",
                    "SELECT * FROM runs WHERE state IN ('PENDING', 'RUNNING') ORDER BY id DESC LIMIT 1000"):
            plan = " ".join(str(row[-1]) for row in con.execute("EXPLAIN QUERY PLAN " + sql))
            assert "runs_by_state" in plan, (sql, plan)
    finally:
        con.close()


def test_run_to_dict_is_the_documented_shape_without_deep_copies() -> None:
    steps = [{"step_id": "s", "metrics": {"flows": [{"flow": "leads", "rules": {"r": 1}}]}}]
    run = RunRecord(id=7, workflow="w", state="DONE", trigger="forced", actor="a", args=["--period=2026-01-01"],
                    created_at="c", steps=steps, rows={"read": 1, "flows": []}, pid=42)
    expected = asdict(run)
    expected.pop("pid")
    expected["period"] = "2026-01-01"
    out = run.to_dict()
    assert out == expected and list(out) == list(expected)
    out["args"].append("--x")  # the top-level containers are the document's own
    out["steps"].append({})
    assert run.args == ["--period=2026-01-01"] and len(run.steps) == 1
