"""Lease take / refuse / recover on a real SQLite ledger file, and the runs store's reaper."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from funnelops.errors import EXIT_RUN_IN_PROGRESS, RunInProgress
from funnelops.backends.local.leases import LeaseStore, holder_alive, pid_alive, take_in
from funnelops.backends.local.run_store import RunStore
from funnelops.backends.local.ledger_db import LedgerDB


@pytest.fixture
def db(tmp_path):
    return LedgerDB(tmp_path / "ledger.sqlite")


@pytest.fixture
def dead_pid():
    """The pid of a process that has ended and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    return proc.pid


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _start_run(db, workflow, owner_pid, expiry_s=60.0, trigger="forced", actor="tester"):
    runs = RunStore(db)
    with db.write() as con:
        run_id = runs.insert(con, workflow, ["--a=1"], trigger, actor, [])
        take_in(con, workflow, f"run-{run_id}", run_id, owner_pid, expiry_s)
    runs.update(run_id, state="RUNNING", pid=owner_pid)
    return run_id


def _lease_row(db, workflow):
    with db.read() as con:
        row = con.execute("SELECT * FROM leases WHERE workflow = ?", (workflow,)).fetchone()
    return dict(row) if row else None


def test_acquire_free_lease_writes_owner_pid_host_and_heartbeat(db):
    before = time.time()
    lease = LeaseStore(db).acquire("wf", "me")
    assert (lease.workflow, lease.owner, lease.run_id) == ("wf", "me", None)
    row = _lease_row(db, "wf")
    assert row["owner"] == "me" and row["pid"] == os.getpid() and row["host"] == socket.gethostname()
    assert before <= row["heartbeat_at"] <= time.time()
    assert row["acquired_at"].endswith("+00:00")


def test_same_owner_reacquires(db):
    leases = LeaseStore(db)
    leases.acquire("wf", "me")
    assert leases.acquire("wf", "me").owner == "me"


def test_live_holder_is_refused_with_the_run_and_its_trigger(db, live_pid):
    run_id = _start_run(db, "wf", live_pid, trigger="scheduled", actor="scheduler:dia")
    leases = LeaseStore(db)
    with pytest.raises(RunInProgress) as ei:
        leases.acquire("wf", "someone-else")
    err = ei.value
    assert err.exit_code == EXIT_RUN_IN_PROGRESS
    assert f"workflow 'wf' is already running: run {run_id}, started " in err.message
    assert "by the scheduler" in err.message
    assert err.details["holder"]["run_id"] == run_id
    assert err.details["holder"]["trigger"] == "scheduled"
    assert f"funnelops cancel {run_id}" in err.hint
    # the holder is untouched and its run still RUNNING
    assert _lease_row(db, "wf")["owner"] == f"run-{run_id}"
    assert RunStore(db).get(run_id).state == "RUNNING"
    assert leases.holder("wf").run_id == run_id


def test_other_workflows_are_independent(db, live_pid):
    _start_run(db, "wf-a", live_pid)
    assert LeaseStore(db).acquire("wf-b", "other").workflow == "wf-b"


def test_dead_pid_holder_is_recovered_and_its_run_marked_lost(db, dead_pid):
    run_id = _start_run(db, "wf", dead_pid)
    leases = LeaseStore(db)
    assert leases.holder("wf") is None  # a dead holder does not count
    lease = leases.acquire("wf", "next")
    assert lease.owner == "next"
    run = RunStore(db).get(run_id)
    assert run.state == "LOST"
    assert run.ended_at and "lease recovered" in run.error
    assert _lease_row(db, "wf")["owner"] == "next"


def test_expired_heartbeat_of_a_live_pid_on_this_host_is_never_taken_over(db, live_pid):
    """A stopped or ledger-starved holder still runs: taking over would make two writers (issue 9)."""
    run_id = _start_run(db, "wf", live_pid, expiry_s=0.3)
    leases = LeaseStore(db)
    time.sleep(0.45)
    assert leases.holder("wf").run_id == run_id
    with pytest.raises(RunInProgress):
        leases.acquire("wf", "next")
    assert RunStore(db).get(run_id).state == "RUNNING"


def test_expired_heartbeat_of_a_reused_pid_is_recovered(db, live_pid):
    """The pid now names a process that started after the holder's last heartbeat: not the holder."""
    run_id = _start_run(db, "wf", live_pid, expiry_s=0.3)
    with db.write() as con:  # the holder's last heartbeat was long before this pid's process started
        con.execute("UPDATE leases SET heartbeat_at = heartbeat_at - 3600")
    leases = LeaseStore(db)
    assert leases.holder("wf") is None
    assert leases.acquire("wf", "next").owner == "next"
    assert RunStore(db).get(run_id).state == "LOST"


def test_heartbeat_keeps_a_short_lease_alive(db, live_pid):
    run_id = _start_run(db, "wf", live_pid, expiry_s=0.4)
    leases = LeaseStore(db)
    for _ in range(4):
        time.sleep(0.2)
        assert leases.heartbeat("wf", f"run-{run_id}")
    with pytest.raises(RunInProgress):
        leases.acquire("wf", "next")


def test_heartbeat_and_release_of_a_lost_lease(db, dead_pid):
    run_id = _start_run(db, "wf", dead_pid)
    leases = LeaseStore(db)
    leases.acquire("wf", "next")
    # the old owner learns it lost the lease, and cannot release the new holder's lease
    assert leases.heartbeat("wf", f"run-{run_id}") is False
    leases.release("wf", f"run-{run_id}")
    assert _lease_row(db, "wf")["owner"] == "next"
    leases.release("wf", "next")
    assert _lease_row(db, "wf") is None


def test_finished_run_is_not_marked_lost_on_recovery(db, dead_pid):
    run_id = _start_run(db, "wf", dead_pid)
    RunStore(db).finish_if_active(run_id, "DONE")  # ended but its lease was never released
    LeaseStore(db).acquire("wf", "next")
    assert RunStore(db).get(run_id).state == "DONE"


def test_holder_on_another_host_trusts_the_heartbeat(db, dead_pid):
    leases = LeaseStore(db)
    leases.acquire("wf", "remote", pid=dead_pid)
    with db.write() as con:
        con.execute("UPDATE leases SET host = 'another-host.example'")
    row = _lease_row(db, "wf")
    assert holder_alive(row)  # the pid means nothing on another machine
    assert not holder_alive(row, now=row["heartbeat_at"] + row["expires_s"] + 1)
    with pytest.raises(RunInProgress):
        leases.acquire("wf", "local")


def test_reap_marks_a_dead_running_run_lost_and_frees_its_lease(db, dead_pid, live_pid):
    dead = _start_run(db, "wf-dead", dead_pid)
    live = _start_run(db, "wf-live", live_pid)
    runs = RunStore(db)
    assert runs.reap() == [dead]
    assert runs.get(dead).state == "LOST"
    assert runs.get(live).state == "RUNNING"
    assert _lease_row(db, "wf-dead") is None
    assert _lease_row(db, "wf-live") is not None
    assert runs.reap() == []


def test_pid_alive_sees_zombies_as_dead():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + 10
    while time.time() < deadline:  # not reaped yet: a zombie
        with open(f"/proc/{proc.pid}/stat") as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.02)
    assert not pid_alive(proc.pid)
    proc.wait()
    assert pid_alive(os.getpid())
    assert not pid_alive(None) and not pid_alive(0) and not pid_alive(-1)


def test_exactly_one_of_many_threads_takes_the_lease(db):
    import threading

    barrier = threading.Barrier(16)
    won, refused = [], []

    def take(i):
        leases = LeaseStore(LedgerDB(db.path))
        barrier.wait()
        try:
            leases.acquire("wf", f"owner-{i}")
            won.append(i)
        except RunInProgress:
            refused.append(i)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == 15
