"""Per-workflow leases in the local ledger: the guarantee that one workflow never runs twice at once.

Taking a lease is one IMMEDIATE SQLite transaction: read the current holder; if it is alive,
refuse (naming the run, when and by whom); if it died, mark its run LOST and take over; then write
the new holder. SQLite serializes the transactions, so among any number of processes exactly one wins.

When is a holder dead? On this host, only when its process is gone (or its pid now names a
process started after the holder's last heartbeat, i.e. the pid was reused): a live holder is
never taken over, however stale its heartbeat -- a SIGSTOPped run, or one whose ledger writes
fail for a while, blocks the next run until it resumes or dies, rather than risk two writers.
On another host the pid means nothing, so the heartbeat decides: older than the expiry, the holder
is dead. A holder that cannot renew therefore stops its own writers at `renew_budget(expiry)` after
its last successful renewal, before anyone may take over (see runs/supervisor.py and runs/guard.py).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from funnelops.procs import pid_alive  # re-exported: callers find it beside the leases
from funnelops.backends.local.ledger_db import LedgerDB
from funnelops.backends.types import Holder, now_iso, refuse
from funnelops.errors import RunInProgress

DEFAULT_EXPIRY_S = float(os.environ.get("FUNNELOPS_LEASE_EXPIRY_S", "60"))


def default_expiry_s() -> float:
    """The expiry new leases get: $FUNNELOPS_LEASE_EXPIRY_S as it is now (60 s when unset)."""
    try:
        return float(os.environ.get("FUNNELOPS_LEASE_EXPIRY_S", "60"))
    except ValueError:
        return 60.0

# Fault injection for the reliability tests: while this file exists, heartbeats fail as on a full disk.
FAULT_FILE_ENV = "FUNNELOPS_FAULT_HEARTBEAT_FILE"
# ...and when this file exists, the next heartbeat deletes it and stops its own process (SIGSTOP)
# inside its write transaction: the holder then keeps the ledger's write lock until it is resumed.
STOP_FILE_ENV = "FUNNELOPS_FAULT_HEARTBEAT_STOP_FILE"


def _stop_inside_write_for_tests() -> None:
    """The STOP_FILE_ENV fault: one heartbeat (whoever deletes the file) stops mid-transaction,
    as a SIGSTOP landing there would, deterministically rather than one time in hundreds."""
    path = os.environ.get(STOP_FILE_ENV)
    if not path:
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    os.kill(os.getpid(), signal.SIGSTOP)
PID_REUSE_SLACK_S = 5.0  # /proc's boot time is whole seconds; leave room for clock adjustments


def renew_budget(expiry_s: float) -> float:
    """Seconds after its last successful renewal at which a holder gives up and stops writing.

    A quarter of the expiry (at least half a second) is kept as margin for stopping the steps and
    for scheduling delays, so a holder has stopped before its lease can be taken over.
    """
    return expiry_s - max(0.5, expiry_s / 4)


def heartbeat_interval(expiry_s: float) -> float:
    return max(0.2, expiry_s / 4)


@dataclass(frozen=True)
class Lease:
    workflow: str
    owner: str
    run_id: int | None


def process_started_at(pid: int) -> float | None:
    """Epoch seconds at which `pid` started (from /proc), or None when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
        return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return None


def holder_alive(row: sqlite3.Row, now: float | None = None) -> bool:
    """Same host: the holder's process lives (whatever its heartbeat). Other host: a fresh heartbeat."""
    now = time.time() if now is None else now
    if row["host"] == socket.gethostname():
        if not pid_alive(row["pid"]):
            return False
        if now - row["heartbeat_at"] <= row["expires_s"]:
            return True
        # Stale and alive: stopped or cut off from the ledger -- unless the pid was reused since.
        started = process_started_at(row["pid"])
        return started is None or started <= row["heartbeat_at"] + PID_REUSE_SLACK_S
    return now - row["heartbeat_at"] <= row["expires_s"]  # another machine: trust the heartbeat


def holder_from_row(con: sqlite3.Connection, row: sqlite3.Row) -> Holder:
    """The Holder a lease row names, with its run's trigger and actor (the one way to build it here)."""
    run = None
    if row["run_id"] is not None:
        run = con.execute("SELECT trigger, actor FROM runs WHERE id = ?", (row["run_id"],)).fetchone()
    return Holder(workflow=row["workflow"], run_id=row["run_id"], owner=row["owner"],
                  acquired_at=row["acquired_at"], trigger=run["trigger"] if run else None,
                  actor=run["actor"] if run else None)


def take_in(con: sqlite3.Connection, workflow: str, owner: str, run_id: int | None, pid: int,
            expiry_s: float | None = None) -> Lease:
    """Inside an open IMMEDIATE transaction: take the lease or raise RunInProgress."""
    expiry_s = default_expiry_s() if expiry_s is None else expiry_s
    row = con.execute("SELECT * FROM leases WHERE workflow = ?", (workflow,)).fetchone()
    if row is not None:
        if row["owner"] == owner:
            return Lease(workflow, owner, row["run_id"])
        if holder_alive(row):
            raise refuse(holder_from_row(con, row))
        if row["run_id"] is not None:  # the holder died: its run is lost, never resumed
            con.execute("UPDATE runs SET state = 'LOST', ended_at = ?, error = COALESCE(error, ?) "
                        "WHERE id = ? AND state IN ('PENDING', 'RUNNING')",
                        (now_iso(), "the run's process died; lease recovered", row["run_id"]))
        con.execute("DELETE FROM leases WHERE workflow = ?", (workflow,))
    con.execute("INSERT INTO leases (workflow, owner, run_id, pid, host, acquired_at, heartbeat_at, expires_s) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (workflow, owner, run_id, pid, socket.gethostname(), now_iso(), time.time(), expiry_s))
    return Lease(workflow, owner, run_id)


def local_holders(home: Path) -> list[Holder]:
    """Live holders of a local home's leases (none when the home has no ledger yet)."""
    from funnelops.backends.local.home import LocalHome

    return LeaseStore(LedgerDB(LocalHome(home).ledger)).live_holders()


class LeaseStore:
    def __init__(self, db: LedgerDB) -> None:
        self.db = db

    def acquire(self, workflow: str, owner: str, pid: int | None = None, expiry_s: float | None = None) -> Lease:
        """Take `workflow`'s lease for flows started by hand; refused while an apply holds the home."""
        from funnelops.backends.local.apply_lease import refuse_in

        with self.db.write() as con:
            lease = take_in(con, workflow, owner, None, pid or os.getpid(), expiry_s)
            if lease.run_id is None and lease.owner == owner:
                refuse_in(con, "nothing was written")  # rolls the lease back with the transaction
            return lease

    def holder(self, workflow: str) -> Holder | None:
        """The live holder of `workflow`'s lease, if any (a dead one does not count)."""
        if not self.db.exists():
            return None
        with self.db.read() as con:
            row = con.execute("SELECT * FROM leases WHERE workflow = ?", (workflow,)).fetchone()
            if row is None or not holder_alive(row):
                return None
            return holder_from_row(con, row)

    def owned_by(self, workflow: str, owner: str) -> bool:
        with self.db.read() as con:
            row = con.execute("SELECT owner FROM leases WHERE workflow = ?", (workflow,)).fetchone()
        return row is not None and row["owner"] == owner

    def heartbeat(self, workflow: str, owner: str, pid: int | None = None) -> bool:
        """Refresh the heartbeat; False if the lease is no longer ours (then stop working).

        Raises sqlite3.Error when the ledger cannot be written: callers retry until their budget.
        """
        fault = os.environ.get(FAULT_FILE_ENV)
        if fault and os.path.exists(fault):
            raise sqlite3.OperationalError("database or disk is full (injected by the test)")
        with self.db.write() as con:
            if pid is not None:
                cur = con.execute("UPDATE leases SET heartbeat_at = ?, pid = ? WHERE workflow = ? AND owner = ?",
                                  (time.time(), pid, workflow, owner))
            else:
                cur = con.execute("UPDATE leases SET heartbeat_at = ? WHERE workflow = ? AND owner = ?",
                                  (time.time(), workflow, owner))
            _stop_inside_write_for_tests()
            return cur.rowcount == 1

    def row(self, workflow: str) -> dict | None:
        if not self.db.path.exists():
            return None
        with self.db.read() as con:
            row = con.execute("SELECT * FROM leases WHERE workflow = ?", (workflow,)).fetchone()
        return dict(row) if row else None

    def verify_held(self, workflow: str, owner: str) -> None:
        """Raise RunInProgress unless `owner` holds `workflow`'s lease with a heartbeat within budget.

        Called right before a commit point: a holder whose renewals have failed for its whole budget
        is stopping (or has been taken over), and must not publish anything more.
        """
        row = self.row(workflow)
        hint = "this step stops without writing; the next run of the workflow redoes the period"
        if row is None or row["owner"] != owner:
            taken = f" (now held by {row['owner']})" if row else ""
            raise RunInProgress(f"workflow '{workflow}': this run ({owner}) no longer holds its lease{taken}", hint)
        age = time.time() - row["heartbeat_at"]
        if age > renew_budget(row["expires_s"]):
            raise RunInProgress(f"workflow '{workflow}': the lease of {owner} was last renewed {age:.1f}s ago "
                                f"(expiry {row['expires_s']:g}s); the run is giving it up", hint)

    def release(self, workflow: str, owner: str) -> None:
        with self.db.write() as con:
            con.execute("DELETE FROM leases WHERE workflow = ? AND owner = ?", (workflow, owner))

    def live_holders(self) -> list[Holder]:
        """Every live holder, across workflows (dead holders do not count)."""
        if not self.db.exists():
            return []
        with self.db.read() as con:
            rows = con.execute("SELECT * FROM leases ORDER BY workflow").fetchall()
            return [holder_from_row(con, r) for r in rows if holder_alive(r)]

    def all(self) -> list[dict]:
        if not self.db.exists():
            return []
        with self.db.read() as con:
            return [dict(r) | {"alive": holder_alive(r)} for r in con.execute("SELECT * FROM leases").fetchall()]
