"""Long work and interruptions on the real local backend (issue #13): Ctrl-C during `--wait` leaves
the run going and says how to follow or stop it (exit 130); `cancel` of an ended run says so;
`scheduler serve` says what it serves and when each fires next; `scheduler run` names the period.

A tiny project whose one step waits on a gate file stands for a slow flow, so the test decides
when the run ends (no timing).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from funnelops.cli.main import main as cli_main
from tests.helpers.tiny_project import wait_until, write_tiny

pytestmark = pytest.mark.slow

STEP = textwrap.dedent('''
    """A slow step: reports one flow, then waits for the test's gate, then reports a second."""
    import json, os, time
    metrics = os.environ.get("FUNNELOPS_METRICS_FILE")
    def report(flows):
        if metrics:
            with open(metrics + ".tmp", "w") as fh:
                json.dump({"flows": flows, "partial": True}, fh)
            os.replace(metrics + ".tmp", metrics)
    a = {"layer": "trusted", "flow": "a", "read": 10, "kept": 9, "quarantined": 1}
    report([a])
    gate = os.environ.get("STEP_GATE")
    while gate and not os.path.exists(gate):
        time.sleep(0.02)
    report([a, {"layer": "trusted", "flow": "b", "read": 5, "kept": 5, "quarantined": 0}])
''')


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    project = write_tiny(tmp_path, "tiny-long", STEP)
    home = tmp_path / "home"
    monkeypatch.delenv("STEP_GATE", raising=False)
    base = ["--project", str(project), "--home", str(home)]
    with open(os.devnull, "w") as sink, redirect_stdout(sink), redirect_stderr(sink):
        assert cli_main(base + ["pipeline", "funnel", "--data-stage", "IaC"]) == 0
        assert cli_main(base + ["pipeline", "funnel", "--data-stage", "Initial data"]) == 0
    env = dict(os.environ, FUNNELOPS_PROJECT=str(project), FUNNELOPS_HOME=str(home), NO_COLOR="1",
               COLUMNS="200", STEP_GATE=str(tmp_path / "gate"))
    return env, home, tmp_path / "gate"


def cli(env: dict, *args: str, code: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "funnelops", *args], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == code, f"funnelops {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def run_state(home: Path, run_id: int) -> str:
    con = sqlite3.connect(home / "ledger.sqlite", timeout=30)
    try:
        return con.execute("SELECT state FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
    finally:
        con.close()


def _collect(stream, lines: list[str]) -> threading.Thread:
    t = threading.Thread(target=lambda: lines.extend(iter(stream.readline, "")), daemon=True)
    t.start()
    return t


def test_ctrl_c_during_wait_exits_130_naming_the_run_which_goes_on(tiny):
    env, home, gate = tiny
    # its own process group, as a terminal's foreground job: SIGINT goes to the whole group, as Ctrl-C does
    proc = subprocess.Popen([sys.executable, "-m", "funnelops", "pipeline", "workflow", "--scheduler", "dia",
                             "--wait"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    out: list[str] = []
    err: list[str] = []
    readers = [_collect(proc.stdout, out), _collect(proc.stderr, err)]
    try:
        # the CLI is in its wait loop once it printed the run's RUNNING state
        running = wait_until(lambda: next((x for x in list(out) if "(tiny-dia): RUNNING" in x), None), 90,
                             "the run's RUNNING line")
        run_id = int(running.split("run ")[1].split()[0])
        # the awaited run's progress as the step reports its flows: the first flow's rows, on stderr
        line = wait_until(lambda: next((x for x in list(err) if "1 flow(s)" in x), None), 30,
                          "the first flow's progress line")
        assert f"run {run_id} (tiny-dia): 1 flow(s) — the-step RUNNING · read 10, kept 9, quarantined 1" in line
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            gate.touch()
    for t in readers:
        t.join(10)
    text = "".join(out) + "".join(err)
    assert proc.returncode == 130, text
    assert (f"run {run_id} (tiny-dia) continues; follow it with `funnelops logs {run_id} --follow`, "
            f"stop it with `funnelops cancel {run_id}`") in "".join(err), text
    assert "Traceback" not in text
    assert run_state(home, run_id) == "RUNNING"  # the supervisor did not die with the CLI
    gate.touch()
    wait_until(lambda: run_state(home, run_id) == "DONE", 90, "the run to end DONE")

    # cancel of an ended run says so (exit 0), in text and JSON
    out = cli(env, "cancel", str(run_id)).stdout
    assert f"run {run_id} already ended DONE at " in out and "nothing to cancel" in out
    doc = json.loads(cli(env, "--json", "cancel", str(run_id)).stdout)
    assert doc["cancelled"] is False and doc["state"] == "DONE" and doc["id"] == run_id


def test_cancel_of_a_running_run_says_what_it_stopped(tiny):
    env, home, gate = tiny
    started = json.loads(cli(env, "--json", "job", "force-scheduler", "--scheduler", "dia").stdout)
    run_id = started["run"]["id"]
    wait_until(lambda: run_state(home, run_id) == "RUNNING", 90, "the run to start")
    out = cli(env, "cancel", str(run_id)).stdout
    assert f"cancelled run {run_id} of tiny-dia" in out and "the-step" in out, out
    assert run_state(home, run_id) == "CANCELLED"


def test_scheduler_run_names_the_period_and_serve_lists_next_fires(tiny):
    env, home, gate = tiny
    gate.touch()
    out = cli(env, "scheduler", "run", "dia", "--period", "2024-01-04", "--wait").stdout
    assert "forced scheduler Día (dia): run" in out and "of tiny-dia for period 2024-01-04" in out, out

    text = cli(env, "scheduler", "serve", "--once")
    assert "Día (dia) -> tiny-dia: 0 6 * * *, next fire " in text.stdout and "(America/Bogota)" in text.stdout
    served = cli(env, "--json", "scheduler", "serve", "--once")
    lines = [json.loads(x) for x in served.stdout.splitlines()]  # JSON lines only on stdout
    assert lines[0]["event"] == "serving"
    (s,) = lines[0]["schedulers"]
    assert s["id"] == "dia" and s["time_zone"] == "America/Bogota" and s["next_fire"].endswith("-05:00")


def test_a_serve_fire_says_what_it_started_and_the_next_fire(tiny):
    from datetime import datetime, timedelta

    from funnelops.backends import open_backend
    from funnelops.lifecycle.serve import make_daemon
    from funnelops.reporting import RecordingReporter
    from funnelops.scheduler.cron import next_fire
    from funnelops.scheduler.daemon import EventKind, InlineExecutor
    from funnelops.spec.loader import load_project

    env, home, gate = tiny
    gate.touch()
    cli(env, "scheduler", "run", "dia", "--wait")  # a last fire to resume from
    loaded = load_project(Path(env["FUNNELOPS_PROJECT"]))
    backend = open_backend("local", loaded, home)
    try:
        last = datetime.fromisoformat(backend.runtime.scheduler_states()["dia"].last_fire)
        slot = next_fire("0 6 * * *", "America/Bogota", last)
        rec = RecordingReporter()
        daemon = make_daemon(loaded, backend, reporter=rec, executor=InlineExecutor(),
                             now=lambda: slot + timedelta(seconds=30))
        daemon.run_once(slot + timedelta(seconds=30))
        (started,) = [e for e in rec.events if getattr(e, "kind", None) is EventKind.STARTED]
        assert started.detail.startswith("started run ") and " of tiny-dia; next fire " in started.detail
        assert started.detail.endswith("(America/Bogota)")
        assert backend.ledger.events("scheduler.started")[-1]["data"]["detail"] == started.detail
    finally:
        backend.close()
    wait_until(lambda: not _active(home), 90, "the fired run to end")


def _active(home: Path) -> int:
    con = sqlite3.connect(home / "ledger.sqlite", timeout=30)
    try:
        return con.execute("SELECT count(*) FROM runs WHERE state IN ('PENDING', 'RUNNING')").fetchone()[0]
    finally:
        con.close()
