"""Help, hints and `status` speak of the project at hand, never of the shipped example.

A project whose schedulers are `Daily`/`Monthly` and which has no sample-data generator was told
to run `--scheduler Día` (refused there as an unknown scheduler) and `data generate`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "projects" / "funnel"
EXAMPLE_WORDS = re.compile(r"Día|\bMes\b|Año|Duplicado|Analítica")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The example with its own schedulers renamed and no `data:` generator."""
    dest = tmp_path / "p"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", "generate.py"))
    path = dest / "funnel.yaml"
    text = path.read_text(encoding="utf-8")
    for old, new in (("name: Día, id: dia", "name: Daily, id: daily"), ("name: Mes, id: mes", "name: Monthly, id: monthly"),
                     ("name: Año, id: anio", "name: Yearly, id: yearly"),
                     ("name: Duplicado mes, id: duplicado-mes", "name: Reprocess, id: reprocess")):
        assert old in text
        text = text.replace(old, new)
    text = re.sub(r"^data:\n  generator: generate.py\n", "", text, flags=re.M)
    text = re.sub(r"^#.*\n", "", text, flags=re.M)  # the example's comments name it
    path.write_text(text, encoding="utf-8")
    return path


def _cli(*args: str, project: Path | None = None, home: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    pre = (["--project", str(project)] if project else []) + (["--home", str(home)] if home else [])
    return subprocess.run([sys.executable, "-m", "funnelops", *pre, *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.parametrize("command", [(), ("pipeline", "workflow"), ("job", "force-scheduler"),
                                     ("scheduler", "pause"), ("scheduler", "resume"), ("scheduler", "run")])
def test_help_names_no_example_scheduler_or_platform(command):
    r = _cli(*command, "--help")
    assert r.returncode == 0, r.stderr
    assert not EXAMPLE_WORDS.search(r.stdout), r.stdout
    if command:
        assert "funnelops scheduler list" in " ".join(r.stdout.split())


def test_status_suggests_the_projects_own_scheduler(project, tmp_path):
    from funnelops.backends import open_backend
    from funnelops.spec.loader import load_project

    home = tmp_path / "home"
    loaded = load_project(project)
    backend = open_backend("local", loaded, home)
    try:
        backend.ledger.record_stage("iac", loaded.spec_hash, "test")
        backend.ledger.record_stage("initial_data", loaded.spec_hash, "test")
    finally:
        backend.close()
    r = _cli("--json", "status", project=project, home=home)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["position"] == "initial_data"
    assert st["next"].startswith("funnelops pipeline workflow --scheduler Daily")
    text = _cli("status", project=project, home=home).stdout
    assert "--scheduler Daily" in text and not EXAMPLE_WORDS.search(text)
    # the suggested command is one the project accepts
    dry = _cli("--dry-run", "pipeline", "workflow", "--scheduler", "Daily", project=project, home=home)
    assert dry.returncode == 0, dry.stderr


def test_data_generate_without_a_generator_points_to_data_load(project, tmp_path):
    home = tmp_path / "home"
    r = _cli("--json", "data", "generate", "--rows", "1000", project=project, home=home)
    assert r.returncode == 2
    err = json.loads(r.stdout) if r.stdout.strip() else {}
    text = (err.get("message", "") + " " + err.get("hint", "")) if err else r.stderr
    assert "declares no sample-data generator" in text and "funnelops data load" in text
    assert not (home / "buckets").exists() or not any((home / "buckets").rglob("*.csv"))


def test_the_missing_file_hint_offers_data_generate_only_with_a_generator():
    from funnelops.flows.engines.duckdb_trusted import missing_file_hint

    assert "data generate" not in missing_file_hint(has_generator=False)
    assert "funnelops data load" in missing_file_hint(has_generator=False)
    assert "data generate" in missing_file_hint(has_generator=True)
