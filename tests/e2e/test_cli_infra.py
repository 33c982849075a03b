"""The real `funnelops` console script, run as a subprocess on a copy of the shipped project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FUNNELOPS = Path(sys.executable).with_name("funnelops")
FUNNEL_DIR = Path(__file__).resolve().parents[2] / "projects" / "funnel"
SIX = {"create", "update", "replace", "delete", "unchanged", "waiting"}


def run(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELOPS_")}
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    return subprocess.run([str(FUNNELOPS), "--home", str(home), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("e2e") / "funnel"
    shutil.copytree(FUNNEL_DIR, target)
    return target


def test_console_script_exists() -> None:
    assert FUNNELOPS.is_file(), FUNNELOPS


def test_help(project: Path, tmp_path: Path) -> None:
    r = run("--help", cwd=project, home=tmp_path / "h")
    assert r.returncode == 0
    for word in ("validate", "plan", "destroy", "job", "Exit codes"):
        assert word in r.stdout
    r = run("plan", "--help", cwd=project, home=tmp_path / "h")
    assert r.returncode == 0 and "--detailed-exitcode" in r.stdout
    assert not (tmp_path / "h").exists()


def test_validate(project: Path, tmp_path: Path) -> None:
    r = run("validate", cwd=project, home=tmp_path / "h")
    assert r.returncode == 0, r.stderr
    assert "is valid" in r.stdout and "4 workflows" in r.stdout and "4 schedulers" in r.stdout


def test_plan_apply_cycle(project: Path, tmp_path: Path) -> None:
    home = tmp_path / "h"
    r = run("plan", "--stage", "IaC", "--json", cwd=project, home=home)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc["summary"]) == SIX
    # shipped project at IaC: 4 buckets, 3 datasets, 5 tables, 3 views, 4 templates, 4 schedulers
    assert doc["summary"] == {"create": 23, "update": 0, "replace": 0, "delete": 0, "unchanged": 0, "waiting": 0}
    assert len(doc["changes"]) == 23
    assert {"address", "kind", "name", "action", "fields"} <= set(doc["changes"][0])

    r = run("plan", "--stage", "iac", "--detailed-exitcode", cwd=project, home=home)
    assert r.returncode == 2, r.stderr
    assert "Plan: 23 to create" in r.stdout

    r = run("job", "create-infra", "--stage", "IaC", cwd=project, home=home)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("✓ create") == 23
    assert "view.funnel_reporting.v_conversion_by_channel" in r.stdout
    assert "Applied 23 change(s)" in r.stdout

    r = run("plan", "--stage", "iac", "--detailed-exitcode", cwd=project, home=home)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "23 unchanged" in r.stdout

    r = run("plan", "--stage", "initial-data", "--json", cwd=project, home=home)
    doc = json.loads(r.stdout)
    assert doc["summary"] == {"create": 0, "update": 4, "replace": 0, "delete": 0, "unchanged": 19, "waiting": 5}
    upd = [c for c in doc["changes"] if c["action"] == "update"]
    assert {c["kind"] for c in upd} == {"workflow_template"}
    assert upd[0]["fields"][0]["field"] == "jobs[funnel-flows].args"

    r = run("destroy", "--yes", cwd=project, home=home)
    assert r.returncode == 0, r.stderr
    assert "Destroyed" in r.stdout


def test_dry_run_touches_nothing(project: Path, tmp_path: Path) -> None:
    home = tmp_path / "never"
    for args in (("--dry-run", "job", "create-infra", "--stage", "IaC"), ("--dry-run", "plan"),
                 ("--dry-run", "destroy", "--yes")):
        r = run(*args, cwd=project, home=home)
        assert r.returncode == 0, r.stderr
        assert "dry run" in r.stdout
    assert not home.exists()


def test_bad_project_exit_2_located_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "funnel.yaml"
    bad.write_text("project:\n  id: demo-project\nbuckets:\n  - name: demo-raw\n    colour: red\n", encoding="utf-8")
    for cmd in (("validate",), ("plan",), ("job", "create-infra", "--stage", "IaC")):
        r = run(*cmd, cwd=tmp_path, home=tmp_path / "h")
        assert r.returncode == 2, (cmd, r.stderr)
        assert f"{bad}:5:" in r.stderr.replace("\n", "") or "funnel.yaml:5:" in r.stderr
        assert "Traceback" not in r.stderr + r.stdout
    assert not (tmp_path / "h").exists()


def test_unknown_stage_is_usage_error(project: Path, tmp_path: Path) -> None:
    r = run("plan", "--stage", "later", cwd=project, home=tmp_path / "h")
    assert r.returncode == 2
    assert "unknown stage" in r.stderr and "Traceback" not in r.stderr


def test_stage_order_exit_4(project: Path, tmp_path: Path) -> None:
    r = run("job", "create-infra", "--stage", "Initial data", cwd=project, home=tmp_path / "h")
    assert r.returncode == 4, r.stderr
    assert "IaC" in r.stderr
