"""The "tiny project" the local-backend tests share, and the wait loop they poll with.

A tiny project is a folder holding `funnel.yaml` (one DAY workflow `tiny-dia` with one job,
`the-step`, that runs `step.py`; one dataset `tiny_ds`; one scheduler, `Día` (id `dia`) at 06:00)
and the step script. Each test module picks the project id (lease, notification and ledger
assertions may name it) and the step (what the step does is the test's business); `GATED_STEP`
is the common one: it lasts until the file STEP_GATE names exists (60 s at most), so a run holds
its lease exactly as long as the test wants. `cli_json_runner` is the in-process CLI with `--json`
the stage-order tests use; `run_count` counts the runs a local home's ledger holds.
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from funnelops.cli.main import main as cli_main

T = TypeVar("T")

GATED_STEP = textwrap.dedent("""
    import os, time
    gate = os.environ.get("STEP_GATE")  # when set, the step lasts until the test creates that file
    deadline = time.time() + 60
    while gate and not os.path.exists(gate) and time.time() < deadline:
        time.sleep(0.02)
""")


def tiny_yaml(project_id: str, *, time_zone: str = "America/Bogota", scheduler: str = "Día",
              dataset_description: str | None = None, extra: str = "") -> str:
    """The tiny project's funnel.yaml. `extra` is appended as top-level YAML (e.g. a `notifications:` block,
    written at column 0)."""
    dataset = "{id: tiny_ds" + (f", description: {dataset_description}" if dataset_description is not None else "") + "}"
    return textwrap.dedent(f"""
        project: {{id: {project_id}, time_zone: {time_zone}, backend: local}}
        datasets: [{dataset}]
        workflows:
          - name: tiny-dia
            granularity: DAY
            initial_load: true
            args: ["--granularity=DAY"]
            jobs: [{{step_id: the-step, main: step.py}}]
        schedulers:
          - {{name: {scheduler}, id: dia, cron: "0 6 * * *", workflow: tiny-dia}}
    """) + extra


def write_tiny(folder: Path, project_id: str, step: str = GATED_STEP, **yaml_kw: Any) -> Path:
    """Write `step.py` and `funnel.yaml` (see `tiny_yaml` for `yaml_kw`) into `folder`; the project file's path."""
    (folder / "step.py").write_text(step)
    project = folder / "funnel.yaml"
    project.write_text(tiny_yaml(project_id, **yaml_kw))
    return project


def wait_until(predicate: Callable[[], T], timeout: float = 60, what: str = "condition", *,
               poll: float = 0.05) -> T:
    """Poll `predicate` every `poll` seconds until it returns something truthy, and return that;
    an AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def cli_json_runner(project: Path, home: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, Any]]:
    """`run(*args)` -> (exit code, the JSON answer, or the text when it is not JSON): the CLI in this process,
    with `--json`, on `project` and `home`; its output is captured (and dropped) by `capsys`."""
    base = ["--project", str(project), "--home", str(home)]

    def run(*args: str) -> tuple[int, Any]:
        capsys.readouterr()
        code = cli_main(base + ["--json", *args])
        out = capsys.readouterr()
        text = out.out.strip() or out.err.strip()
        try:
            return code, json.loads(text)
        except ValueError:
            return code, text

    return run


def run_count(home: Path) -> int:
    """How many runs the local ledger of `home` holds."""
    con = sqlite3.connect(home / "ledger.sqlite")
    try:
        return int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
    finally:
        con.close()
