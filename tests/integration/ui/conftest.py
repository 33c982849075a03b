"""The dashboard tests' homes: `ui_demo`, one `funnelops demo` (1,000 rows, the whole lifecycle, ~20 s)
per session, shared by the API and page tests (a test that pauses a scheduler resumes it); `tiny`,
a one-step project whose step waits for a gate file, through IaC and Initial data, for the lease
races (a run holds its lease exactly as long as the test wants). Helpers: tests/helpers/ui_home.py.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.tiny_project import write_tiny
from tests.helpers.ui_home import FUNNELOPS, STEP, Home, clean_env


@pytest.fixture(scope="session")
def ui_demo(tmp_path_factory: pytest.TempPathFactory) -> Home:
    base = tmp_path_factory.mktemp("ui-demo")
    proc = subprocess.run([FUNNELOPS, "demo", "--dir", str(base / "demo"), "--rows", "1000"], cwd=base,
                          env=clean_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Home(base / "demo" / "project" / "funnel.yaml", base / "demo" / ".funnelops")


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Home, Path]]:
    """(home, gate): IaC and Initial data done; runs started from now on wait until `gate` exists.
    The gate is opened at teardown so no run outlives the test."""
    home = Home(write_tiny(tmp_path, "tiny-ui", STEP), tmp_path / "home")
    home.cli("pipeline", "funnel", "--data-stage", "IaC")
    home.cli("pipeline", "funnel", "--data-stage", "Initial data")
    gate = tmp_path / "gate"
    monkeypatch.setenv("STEP_GATE", str(gate))  # runs the dashboard starts inherit it
    try:
        yield home, gate
    finally:
        gate.touch()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(r["state"] in ("PENDING", "RUNNING")
                                                  for r in home.cli_json("runs")):
            time.sleep(0.2)
