"""Attacks on the apply lease (issue 15): an apply and a run, or two applies, never interleave.

Real `funnelops` processes on a real home. A paused apply is a real `job create-infra` that has
taken the lease and waits before planning while the file FUNNELOPS_FAULT_APPLY_PAUSE_FILE names
exists (backends/local/apply_lease.py), so the test acts while the lease is held, deterministically.
Before issue 15 the lock was a flock that a force never looked at, and a second apply waited.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from typing import TYPE_CHECKING

import pytest

from funnelops.backends.local import LocalBackend
from tests.helpers.tiny_project import tiny_yaml, write_tiny

if TYPE_CHECKING:
    from funnelops.backends.types import ApplyHolder

pytestmark = pytest.mark.reliability

FUNNELOPS = str(Path(sys.executable).with_name("funnelops"))

PROJECT_ID = "tiny-apply"  # the apply lease's holder is read back under it


class Tiny:
    """A one-workflow project after IaC and Initial data, and the CLI on its home."""

    def __init__(self, root: Path) -> None:
        self.root, self.home, self.project = root, root / "home", root / "funnel.yaml"
        self.pause = root / "pause"

    def env(self, **extra: str) -> dict[str, str]:
        return dict(os.environ, FUNNELOPS_PROJECT=str(self.project), FUNNELOPS_HOME=str(self.home), NO_COLOR="1",
                    COLUMNS="200", **extra)

    def run(self, *args: str, code: int | None = 0, **env: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([FUNNELOPS, *args], env=self.env(**env), capture_output=True, text=True, timeout=120)
        if code is not None:
            assert proc.returncode == code, (f"funnelops {' '.join(args)}: exit {proc.returncode}, expected {code}\n"
                                             f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        return proc

    def paused_apply(self, *args: str) -> subprocess.Popen:
        """A `funnelops` apply that holds the lease and waits until `self.pause` is removed."""
        self.pause.write_text("")
        proc = subprocess.Popen([FUNNELOPS, *args], env=self.env(FUNNELOPS_FAULT_APPLY_PAUSE_FILE=str(self.pause)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            holder = self.holder()
            if holder is not None and holder.pid == proc.pid:
                return proc
            assert proc.poll() is None, f"the apply ended early: {proc.communicate()}"
            time.sleep(0.02)
        proc.kill()
        raise AssertionError("the apply never took the lease")

    def holder(self) -> ApplyHolder | None:
        return LocalBackend(self.home, PROJECT_ID, "r").apply_holder()

    def events(self, kind: str) -> list[dict]:
        import sqlite3

        con = sqlite3.connect(self.home / "ledger.sqlite")
        try:
            rows = con.execute("SELECT subject, data FROM events WHERE kind = ? ORDER BY id", (kind,)).fetchall()
        finally:
            con.close()
        return [{"subject": s, **json.loads(d)} for s, d in rows]


@pytest.fixture(scope="module")
def initial(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("apply-lease")
    write_tiny(root, PROJECT_ID, dataset_description="v1")  # the gated step: STEP_GATE, when set, holds a run
    t = Tiny(root)
    t.run("pipeline", "funnel", "--data-stage", "IaC")
    t.run("pipeline", "funnel", "--data-stage", "Initial data")
    return root


@pytest.fixture
def tiny(initial, tmp_path) -> Tiny:
    shutil.copytree(initial, tmp_path / "p")
    return Tiny(tmp_path / "p")


def _refusal(proc: subprocess.CompletedProcess) -> dict:
    err = json.loads(proc.stdout)
    assert proc.returncode == 3 and err["error"] == "run_in_progress", err
    return err


def test_a_force_and_a_second_apply_are_refused_while_an_apply_holds_the_lease(tiny):
    """Before: `pipeline workflow` forced the scheduler in the middle of a create-infra."""
    runs_before = len(json.loads(tiny.run("--json", "runs").stdout))
    apply = tiny.paused_apply("job", "create-infra", "--stage", "Initial data")
    try:
        forced = _refusal(tiny.run("--json", "pipeline", "workflow", "--scheduler", "Día", code=3))
        assert "an apply is in progress: `funnelops job create-infra --stage 'Initial data'`" in forced["message"]
        assert f"pid {apply.pid}" in forced["message"] and "since" in forced["message"]
        assert forced["details"]["apply"]["pid"] == apply.pid
        second = _refusal(tiny.run("--json", "job", "create-infra", "--stage", "Initial data", code=3))
        assert "an apply is in progress" in second["message"] and "nothing was changed" in second["hint"]
    finally:
        tiny.pause.unlink()
    out, err = apply.communicate(timeout=120)
    assert apply.returncode == 0, err
    assert tiny.holder() is None
    assert [e["subject"] for e in tiny.events("refused")][-1:] == ["tiny-dia"]  # the force, audited
    assert len(json.loads(tiny.run("--json", "runs").stdout)) == runs_before  # no run was started
    tiny.run("pipeline", "workflow", "--scheduler", "Día")  # the apply ended: the force goes on


def test_two_applies_at_once_one_applies_the_other_is_refused(tiny):
    tiny.project.write_text(tiny_yaml(PROJECT_ID, dataset_description="v2"))
    first = tiny.paused_apply("job", "create-infra", "--stage", "Initial data")
    try:
        second = _refusal(tiny.run("--json", "job", "create-infra", "--stage", "Initial data", code=3))
        assert f"pid {first.pid}" in second["message"]
    finally:
        tiny.pause.unlink()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert tiny.run("plan", "--stage", "Initial data", "--detailed-exitcode").returncode == 0  # all applied once


def test_kill_9_of_an_applying_process_blocks_nothing(tiny):
    apply = tiny.paused_apply("job", "create-infra", "--stage", "Initial data")
    os.kill(apply.pid, signal.SIGKILL)
    apply.wait(timeout=30)
    tiny.pause.unlink()
    assert tiny.holder() is None  # the holder's process is gone: the lease is dead
    tiny.run("job", "create-infra", "--stage", "Initial data")
    tiny.run("pipeline", "workflow", "--scheduler", "Día")


def test_an_apply_that_changes_what_a_run_uses_waits_for_the_run(tiny):
    """The reverse rule (docs/reliability.md): a plan that updates a dataset is refused while a run
    is in progress; a plan with nothing a run uses goes on."""
    gate = tiny.root / "gate"
    tiny.run("pipeline", "workflow", "--scheduler", "Día", STEP_GATE=str(gate))
    try:
        tiny.run("job", "create-infra", "--stage", "Initial data")  # nothing changes: goes on
        tiny.project.write_text(tiny_yaml(PROJECT_ID, dataset_description="v2"))
        refused = _refusal(tiny.run("--json", "job", "create-infra", "--stage", "Initial data", code=3))
        assert "cannot apply this plan (update dataset.tiny_ds) while a run is in progress" in refused["message"]
        assert "tiny-dia" in refused["message"]
    finally:
        gate.write_text("")
    runs = json.loads(tiny.run("--json", "runs").stdout)
    deadline = time.monotonic() + 60
    while any(r["state"] in ("PENDING", "RUNNING") for r in runs) and time.monotonic() < deadline:
        time.sleep(0.1)
        runs = json.loads(tiny.run("--json", "runs").stdout)
    tiny.run("job", "create-infra", "--stage", "Initial data")
    assert tiny.run("plan", "--stage", "Initial data", "--detailed-exitcode", code=None).returncode == 0


def test_the_local_daemon_and_flows_by_hand_do_not_start_during_an_apply(tiny):
    """A `scheduler serve` fire due during an apply is skipped (recorded), and `python -m
    funnelops.flows` by hand exits 3; both go on once the apply ends."""
    from datetime import timedelta

    from funnelops.backends import open_backend
    from funnelops.lifecycle.serve import make_daemon
    from funnelops.reporting import RecordingReporter
    from funnelops.scheduler.cron import next_fire
    from funnelops.scheduler.daemon import EventKind, InlineExecutor
    from funnelops.spec.loader import load_project

    tiny.run("pipeline", "workflow", "--scheduler", "Día", "--wait")  # the Workflow stage; dia's last fire
    loaded = load_project(tiny.project)
    backend = open_backend("local", loaded, tiny.home)
    holder = open_backend("local", loaded, tiny.home)  # another apply, as the daemon sees it
    last = datetime.fromisoformat(backend.runtime.scheduler_states()["dia"].last_fire)
    due = next_fire("0 6 * * *", "America/Bogota", last) + timedelta(seconds=30)
    recorder = RecordingReporter()
    by_hand_env = tiny.env(FUNNELOPS_WORKFLOW="tiny-dia")
    by_hand_env.pop("FUNNELOPS_LEASE_OWNER", None)
    by_hand = [sys.executable, "-m", "funnelops.flows", "--granularity=DAY"]
    with holder.apply_lock():
        make_daemon(loaded, backend, reporter=recorder, executor=InlineExecutor(), now=lambda: due).run_once(due)
        assert [e.kind for e in recorder.events if e.scheduler_id == "dia"] == [EventKind.SKIPPED_RUNNING]
        refused = subprocess.run(by_hand, env=by_hand_env, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 3 and "an apply is in progress" in refused.stderr, refused.stderr
    assert backend.ledger.events("scheduler.skipped_running")[0]["subject"] == "dia"
    ok = subprocess.run(by_hand, env=by_hand_env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
