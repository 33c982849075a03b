"""Helpers for the dashboard's tests on a real local home (fixtures: tests/integration/ui/conftest.py).

`ui_demo`: one `funnelops demo` (1,000 rows: the whole lifecycle, ~20 s) per session, shared by the
API and page tests; tests that pause a scheduler resume it before they end. `tiny`: a one-step
project whose step waits for a gate file, taken through IaC and Initial data, for the lease races
(a run holds its lease exactly as long as the test wants).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from funnelops.ui.dashboard import UiSettings

from starlette.testclient import TestClient  # on httpx2 (the dev extra), as Starlette 1.x wants

FUNNELOPS = str(Path(sys.executable).with_name("funnelops"))
BASE_URL = "http://127.0.0.1:8400"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELOPS_")}
    env.update(NO_COLOR="1", COLUMNS="200", **extra)
    return env


@dataclass
class Home:
    """A project file and its home; `cli` runs the real console script against them."""

    project: Path
    home: Path

    def settings(self, **kw: Any) -> UiSettings:
        return UiSettings(project_path=self.project, home=self.home, **kw)

    def cli(self, *args: str, code: int | None = 0, **env: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([FUNNELOPS, *args], capture_output=True, text=True, timeout=300,
                              env=clean_env(FUNNELOPS_PROJECT=str(self.project), FUNNELOPS_HOME=str(self.home), **env))
        if code is not None:
            assert proc.returncode == code, f"funnelops {' '.join(args)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)


def client(app: Any, base_url: str = BASE_URL) -> TestClient:
    return TestClient(app, base_url=base_url, follow_redirects=False)


def csrf(c: TestClient) -> dict[str, str]:
    """The header a page sends with a POST: the CSRF token the guard handed out on a GET."""
    if not c.cookies.get("funnelops_csrf"):
        c.get("/api/no-such-route")  # any GET sets the cookie
    return {"X-CSRF-Token": c.cookies.get("funnelops_csrf") or ""}


def wait_ended(c: TestClient, run_id: int | str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = c.get(f"/api/runs/{run_id}").json()
        if run["state"] not in ("PENDING", "RUNNING"):
            return dict(run)
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not end within {timeout}s")


STEP = textwrap.dedent('''
    """A workflow step that lasts until the test opens its gate (STEP_GATE), so a run holds its lease."""
    import os, time
    gate = os.environ.get("STEP_GATE")
    print("step started", flush=True)
    while gate and not os.path.exists(gate):
        time.sleep(0.02)
    print("step done", flush=True)
''')

