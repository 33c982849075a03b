"""Attacks on the one-run-per-workflow promise through the lease's heartbeat (issue 9, item 9).

Real supervisors, real step processes, a real SQLite ledger. Faults: heartbeats that fail as on a
full disk (FUNNELOPS_FAULT_HEARTBEAT_FILE: while that file exists, LeaseStore.heartbeat raises
sqlite3.OperationalError), SIGSTOP of a run's whole process group past its lease's expiry, and
SIGSTOP inside a ledger write (FUNNELOPS_FAULT_HEARTBEAT_STOP_FILE: the next heartbeat stops its
process while it holds the write lock), which must delay no start and no reader for long.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from funnelops.runs import coordinator
from funnelops.backends.local import LocalBackend
from funnelops.errors import RunInProgress
from funnelops.backends.local.leases import FAULT_FILE_ENV, STOP_FILE_ENV, pid_alive
from funnelops.backends.local.ledger_db import LedgerLocked
from tests.helpers.tiny_project import wait_until

pytestmark = pytest.mark.reliability

EXPIRY_S = 3.0  # renewals every 0.75 s; a holder that cannot renew gives up 2.25 s after the last one

STEP = textwrap.dedent('''
    """A step that writes a tick every 50 ms until its gate file appears: every write is visible."""
    import os, time
    out, gate = os.environ["STEP_TICKS"], os.environ["STEP_GATE"]
    deadline = time.time() + 60
    with open(out, "a") as fh:
        while time.time() < deadline and not os.path.exists(gate):
            fh.write(f"{os.getpid()} {time.time():.6f}\\n")
            fh.flush()
            time.sleep(0.05)
''')


class Rig:
    """One home with a one-step workflow 'wf', its runtime, and the files the attacks use."""

    def __init__(self, tmp: Path) -> None:
        self.home = tmp / "home"
        self.ticks, self.gate, self.fault = tmp / "ticks.log", tmp / "gate", tmp / "disk-full"
        script = tmp / "step.py"
        script.write_text(STEP)
        # steps run files inside the project folder only, so the rig is a project folder
        self.backend = LocalBackend(self.home, "p", "r", project_path=tmp / "funnel.yaml")
        self.backend.templates.create("wf", {"jobs": [{"stepId": "the-step",
                                                       "pysparkJob": {"mainPythonFileUri": "step.py"}}]})
        self.runtime = self.backend.runtime

    def start(self):
        return coordinator.start(self.backend, "wf", trigger="forced", actor="attacker")

    def lease(self) -> dict | None:
        return self.runtime.leases.row("wf")

    def wait(self, pred, timeout: float = 30, what: str = "condition"):
        return wait_until(pred, timeout, what, poll=0.02)

    def step_pid(self) -> int:
        self.wait(lambda: self.ticks.exists() and self.ticks.read_text().strip(), what="the step to tick")
        return int(self.ticks.read_text().split()[0])

    def last_tick(self) -> float:
        return float(self.ticks.read_text().strip().splitlines()[-1].split()[1])

    def supervisor_log(self, run_id: int) -> str:
        path = self.home / "runs" / str(run_id) / "supervisor.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture
def rig(tmp_path, monkeypatch):
    r = Rig(tmp_path)
    monkeypatch.setenv("FUNNELOPS_LEASE_EXPIRY_S", str(EXPIRY_S))
    monkeypatch.setenv(FAULT_FILE_ENV, str(r.fault))
    monkeypatch.setenv("STEP_TICKS", str(r.ticks))
    monkeypatch.setenv("STEP_GATE", str(r.gate))
    yield r
    r.gate.touch()
    r.fault.unlink(missing_ok=True)
    for run in r.runtime.runs.list(limit=100):  # never leave a supervisor (or a stopped one) behind
        if run.pid and pid_alive(run.pid) and run.state in ("PENDING", "RUNNING"):
            os.killpg(run.pid, signal.SIGCONT)
            os.killpg(run.pid, signal.SIGKILL)


def test_step_log_shows_the_command_shell_quoted(rig):
    """A hostile argument in the step's log line reads back as the one argument it was (item 17)."""
    import shlex

    hostile = ["--note=it's a; rm -rf / $(x)", "two words", ""]
    rig.backend.templates.create("wf-args", {"jobs": [{"stepId": "s", "pysparkJob": {
        "mainPythonFileUri": "step.py", "args": hostile}}]})
    rig.gate.touch()
    run = coordinator.start(rig.backend, "wf-args", trigger="forced", actor="attacker")
    assert coordinator.wait(rig.runtime, [run.id], timeout=30)[0].state == "DONE"
    first = (rig.home / "runs" / str(run.id) / "s.log").read_text().splitlines()[0]
    assert first.startswith("$ ")
    assert shlex.split(first[2:]) == [sys.executable, str(rig.home.parent / "step.py"), *hostile]


def test_heartbeat_survives_a_spell_of_ledger_write_errors(rig, monkeypatch):
    """Before: the first failed heartbeat killed the heartbeat thread for good while the run went on."""
    monkeypatch.setenv("FUNNELOPS_LEASE_EXPIRY_S", "5")  # renewals every 1.25 s, budget 3.75 s
    run = rig.start()
    rig.step_pid()
    rig.fault.touch()  # the disk is full: every renewal fails...
    time.sleep(1.5)
    rig.fault.unlink()  # ...for a spell longer than a renewal interval, shorter than the budget
    beat = rig.lease()["heartbeat_at"]
    rig.wait(lambda: rig.lease()["heartbeat_at"] > beat + 1, 8, what="the heartbeat to keep going")
    log = rig.supervisor_log(run.id)
    assert "renewing the lease of run-" in log and "disk is full" in log  # the spell did hit it
    assert rig.runtime.get(run.id).state == "RUNNING"
    rig.gate.touch()
    done = coordinator.wait(rig.runtime, [run.id], timeout=30)[0]
    assert done.state == "DONE", (done.state, done.error, rig.supervisor_log(run.id))
    assert rig.lease() is None


def test_a_run_that_cannot_renew_stops_its_steps_before_its_lease_expires(rig):
    run = rig.start()
    step = rig.step_pid()
    rig.fault.touch()  # and it stays: no renewal will succeed again
    row = rig.lease()
    rig.wait(lambda: not pid_alive(step), 2 * EXPIRY_S, what="the step to be stopped")
    stopped_at = time.time()
    last_renewal = rig.lease()["heartbeat_at"] if rig.lease() else row["heartbeat_at"]
    # the step was killed, and wrote its last tick, before anyone could take the lease over
    assert stopped_at < last_renewal + EXPIRY_S, (stopped_at - last_renewal)
    assert rig.last_tick() < last_renewal + EXPIRY_S
    lost = coordinator.wait(rig.runtime, [run.id], timeout=30)[0]
    assert lost.state == "LOST"
    assert "could not renew the workflow lease" in lost.error and "disk is full" in lost.error
    assert rig.lease() is None  # the lease is released with the run's end: the next run may start
    rig.fault.unlink()
    rig.gate.touch()
    again = rig.start()
    assert coordinator.wait(rig.runtime, [again.id], timeout=30)[0].state == "DONE"


def test_a_stopped_run_is_never_taken_over_and_gives_up_when_it_resumes(rig):
    """Before: after SIGSTOP past the expiry, a force started a second run beside the stopped one."""
    run = rig.start()
    step = rig.step_pid()
    sup = rig.runtime.get(run.id).pid
    os.killpg(sup, signal.SIGSTOP)  # the supervisor and its step (one process group)
    try:
        time.sleep(EXPIRY_S + 1)
        assert time.time() - rig.lease()["heartbeat_at"] > EXPIRY_S  # the lease has expired...
        for _ in range(3):
            with pytest.raises(RunInProgress) as refused:  # ...but its holder lives: refused
                rig.start()
            assert refused.value.details["holder"]["run_id"] == run.id
        assert rig.runtime.holder("wf").run_id == run.id
        assert [r.id for r in rig.runtime.runs.list("wf")] == [run.id]
    finally:
        os.killpg(sup, signal.SIGCONT)
    # resumed past its renewal budget, it stops its step and ends LOST rather than keep writing
    rig.wait(lambda: not pid_alive(step), 10, what="the resumed run to stop its step")
    lost = coordinator.wait(rig.runtime, [run.id], timeout=30)[0]
    assert lost.state == "LOST" and "could not renew the workflow lease" in lost.error
    rig.gate.touch()
    assert coordinator.wait(rig.runtime, [rig.start().id], timeout=30)[0].state == "DONE"

def _within(seconds: float, what: str, fn: Callable[[], Any]) -> Any:
    """Call `fn` in a daemon thread and return what it returns (or raise what it raises), failing
    the test after `seconds` instead of hanging with it: the defect under attack is a hang."""
    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the test below
            box["error"] = exc

    thread = threading.Thread(target=call, name=f"bounded: {what}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"{what} was still blocked after {seconds:g}s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")


def test_a_run_stopped_inside_a_ledger_write_never_hangs_a_start(rig, monkeypatch, tmp_path):
    """Before: a SIGSTOP landing while the supervisor held the ledger's write lock (a heartbeat's
    transaction) hung every later start: the refusal's audit retried SQLite's 30 s busy wait 200
    times, and a new process's first connection (an INSERT OR IGNORE of the ledger's marker) 50 times.
    In CI the SIGSTOP of the test above landed there one run in several and the test hung for good."""
    stop_file = tmp_path / "stop-in-heartbeat"
    monkeypatch.setenv(STOP_FILE_ENV, str(stop_file))  # inherited by the run's supervisor
    run = rig.start()
    rig.step_pid()
    sup = rig.runtime.get(run.id).pid
    stop_file.touch()  # the next heartbeat stops itself inside its write transaction
    try:
        rig.wait(lambda: not stop_file.exists() and _stopped(sup), 10, what="the supervisor to stop mid-write")
        os.killpg(sup, signal.SIGSTOP)  # and its step, as a SIGSTOP of the process group would
        with pytest.raises(LedgerLocked, match="stayed locked"):  # it holds the write lock, for good
            _within(10, "a write with a deadline", lambda: _write_probe(rig.home, wait_s=0.3))
        began = time.monotonic()
        with pytest.raises(RunInProgress) as refused:
            _within(15, "a start with the backend that launched the run", rig.start)
        assert refused.value.details["holder"]["run_id"] == run.id
        # a new process (a CLI) opens the ledger afresh: opening it must not need the write lock
        fresh = LocalBackend(rig.home, "p", "r", project_path=tmp_path / "funnel.yaml")
        with pytest.raises(RunInProgress) as refused:
            _within(15, "a start with a newly opened ledger",
                    lambda: coordinator.start(fresh, "wf", trigger="forced", actor="attacker"))
        assert refused.value.details["holder"]["run_id"] == run.id
        assert time.monotonic() - began < 15  # each refusal waits at most the audit's short deadline
        assert [r.id for r in rig.runtime.runs.list("wf")] == [run.id]
    finally:
        os.killpg(sup, signal.SIGCONT)
    rig.gate.touch()
    ended = coordinator.wait(rig.runtime, [run.id], timeout=30)[0]
    assert ended.terminal and rig.lease() is None
    assert coordinator.wait(rig.runtime, [rig.start().id], timeout=30)[0].state == "DONE"


def _write_probe(home: Path, wait_s: float) -> None:
    from funnelops.backends.local.ledger_db import LedgerDB

    with LedgerDB(home / "ledger.sqlite").write(wait_s=wait_s) as con:
        con.execute("SELECT 1")


def test_while_a_run_holds_its_lease_no_ledger_close_locks_out_readers(rig):
    """Before: a connection closing while no other was open checkpointed and deleted the WAL under an
    EXCLUSIVE lock on the ledger file; a run stopped there (the supervisor's heartbeat connections,
    one SIGSTOP in a few hundred) blocked even a start's reads, which failed after 30 s with
    'database is locked'. The supervisor pins the ledger: no close is the last while it runs."""
    run = rig.start()
    rig.step_pid()
    wal = rig.home / "ledger.sqlite-wal"
    for _ in range(3):
        _write_probe(rig.home, wait_s=5)  # our connection closes: the WAL stays, so it was not the last
        assert wal.exists()
        time.sleep(EXPIRY_S / 4)  # a heartbeat: the supervisor's own connection opens and closes
        assert wal.exists()
    rig.gate.touch()
    assert coordinator.wait(rig.runtime, [run.id], timeout=30)[0].state == "DONE"


HOLD_A_WRITE = textwrap.dedent('''
    """Take the ledger's write lock, say so, and stop inside the transaction."""
    import os, signal, sys
    from funnelops.backends.local.ledger_db import LedgerDB
    with LedgerDB(sys.argv[1]).write() as con:
        con.execute("INSERT INTO events (at, kind, data) VALUES ('now', 'held', '{}')")
        print("held", flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)
''')


def test_a_writer_stopped_inside_a_transaction_blocks_no_reader_and_no_writer_for_good(tmp_path):
    """Before: a writer waited up to 200 x 30 s for the lock, and merely opening the ledger in a new
    process (its marker's INSERT OR IGNORE) up to 50 x 30 s; now reads never wait and writes end in
    LedgerLocked at their deadline."""
    import subprocess

    from funnelops.backends.local.leases import LeaseStore
    from funnelops.backends.local.ledger_db import LedgerDB

    path = tmp_path / "ledger.sqlite"
    LeaseStore(LedgerDB(path)).acquire("wf", "run-1")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_A_WRITE, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert _within(10, "opening the ledger afresh and reading it",
                       lambda: [h.owner for h in LeaseStore(LedgerDB(path)).live_holders()]) == ["run-1"]
        began = time.monotonic()
        with pytest.raises(LedgerLocked, match="stayed locked") as locked:
            _within(10, "a write with a 0.5 s deadline", lambda: _write_probe(tmp_path, wait_s=0.5))
        assert 0.4 < time.monotonic() - began < 5
        assert isinstance(locked.value, sqlite3.OperationalError) and "resume or end it" in (locked.value.hint or "")
    finally:
        holder.kill()
        holder.wait()
    _within(10, "a write once the holder is gone", lambda: _write_probe(tmp_path, wait_s=5))


def test_flows_started_by_hand_keep_renewing_through_errors_and_refuse_to_commit_once_given_up(
        tmp_path, monkeypatch):
    from funnelops.backends.local import guard
    from funnelops.backends.local.leases import LeaseStore
    from funnelops.backends.local.ledger_db import LedgerDB

    fault = tmp_path / "disk-full"
    monkeypatch.setenv("FUNNELOPS_LEASE_EXPIRY_S", "4")  # renewals every 1 s, budget 3 s
    monkeypatch.setenv(FAULT_FILE_ENV, str(fault))
    monkeypatch.setenv("FUNNELOPS_WORKFLOW", "wf")
    monkeypatch.delenv("FUNNELOPS_LEASE_OWNER", raising=False)
    leases = LeaseStore(LedgerDB(tmp_path / "ledger.sqlite"))
    with guard.workflow_lease(tmp_path):
        guard.verify_lease_held(tmp_path)
        fault.touch()
        time.sleep(1.3)  # a short spell: renewals fail, and are retried
        fault.unlink()
        keeper = guard._OWN[2]
        assert keeper.last_error and "disk is full" in keeper.last_error
        beat = leases.row("wf")["heartbeat_at"]
        deadline = time.monotonic() + 5
        while leases.row("wf")["heartbeat_at"] == beat and time.monotonic() < deadline:
            time.sleep(0.05)
        assert leases.row("wf")["heartbeat_at"] > beat, "the heartbeat died with the first error"
        guard.verify_lease_held(tmp_path)
        fault.touch()  # a long spell: the holder gives up, and no commit point passes any more
        time.sleep(3.5)
        with pytest.raises(RunInProgress, match="gave up its lease"):
            guard.verify_lease_held(tmp_path)
        fault.unlink()
    assert leases.row("wf") is None


def _ledger_write(home: Path, sql: str, args: tuple = ()) -> None:
    con = sqlite3.connect(home / "ledger.sqlite", timeout=30)
    try:
        con.execute(sql, args)
        con.commit()
    finally:
        con.close()


def test_flows_commit_only_while_their_run_holds_a_fresh_lease(tmp_path, monkeypatch):
    """The partition swap and the warehouse commit re-check the lease right before publishing."""
    import duckdb
    from datetime import date

    from funnelops.flows.cli import main
    from funnelops.lifecycle.sample_data import generate_raw
    from funnelops.plan.apply import apply_plan
    from funnelops.plan.diff import build_plan
    from funnelops.backends.local.leases import LeaseStore
    from funnelops.spec.loader import load_project
    from funnelops.backends.local.ledger_db import LedgerDB

    project = Path(__file__).resolve().parents[2] / "projects" / "funnel" / "funnel.yaml"
    loaded = load_project(project)
    generate_raw(loaded, tmp_path, 300, date(2024, 1, 1), date(2024, 1, 10), seed=3)
    backend = LocalBackend.for_project(loaded, tmp_path)
    assert apply_plan(build_plan(loaded, backend, "iac"), backend).ok
    for key, value in {"FUNNELOPS_PROJECT": str(project), "FUNNELOPS_HOME": str(tmp_path),
                       "FUNNELOPS_WORKFLOW": "funnel-dia", "FUNNELOPS_LEASE_OWNER": "run-7",
                       "FUNNELOPS_LEASE_EXPIRY_S": "60"}.items():
        monkeypatch.setenv(key, value)
    LeaseStore(LedgerDB(tmp_path / "ledger.sqlite")).acquire("funnel-dia", "run-7")
    trusted = [p for p in (tmp_path / "buckets").glob("*trusted*/**/*.parquet")]
    assert trusted == []

    def stale() -> None:  # the run's supervisor has not renewed for most of the expiry: it is giving up
        _ledger_write(tmp_path, "UPDATE leases SET heartbeat_at = ? WHERE owner = 'run-7'", (time.time() - 50,))

    full = ["--granularity=DAY", "--execution_type=full"]
    stale()
    assert main(full + ["--refined_flows=false"]) == 3  # refused at the partition swap
    assert [p for p in (tmp_path / "buckets").glob("*trusted*/**/*.parquet")] == []

    _ledger_write(tmp_path, "UPDATE leases SET heartbeat_at = ? WHERE owner = 'run-7'", (time.time(),))
    assert main(full + ["--refined_flows=false"]) == 0
    assert [p for p in (tmp_path / "buckets").glob("*trusted*/**/*.parquet")]

    stale()
    assert main(full + ["--trusted_flows=false"]) == 3  # refused at the warehouse commit
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM funnel_refined.funnel_daily").fetchone()[0] == 0
    finally:
        con.close()
