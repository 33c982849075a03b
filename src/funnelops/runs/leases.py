"""Per-workflow leases in the local ledger: the guarantee that one workflow never runs twice at once.

Taking a lease is one IMMEDIATE SQLite transaction: read the current holder; if it is alive,
refuse (naming the run, when and by whom); if it died (process gone, or heartbeat older than the
expiry), mark its run LOST and take over; then write the new holder. SQLite serializes the
transactions, so among any number of processes exactly one wins.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from funnelops.errors import RunInProgress
from funnelops.runs.model import Holder
from funnelops.state.db import LedgerDB, now_iso

DEFAULT_EXPIRY_S = float(os.environ.get("FUNNELOPS_LEASE_EXPIRY_S", "60"))


def pid_alive(pid: int | None) -> bool:
    """True if the process exists and is not a zombie (a zombie has already ended)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@dataclass(frozen=True)
class Lease:
    workflow: str
    owner: str
    run_id: int | None


def holder_alive(row: sqlite3.Row, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    if now - row["heartbeat_at"] > row["expires_s"]:
        return False
    if row["host"] == socket.gethostname():
        return pid_alive(row["pid"])
    return True  # another machine: trust the heartbeat


def _holder(con: sqlite3.Connection, row: sqlite3.Row) -> Holder:
    run = None
    if row["run_id"] is not None:
        run = con.execute("SELECT trigger, actor FROM runs WHERE id = ?", (row["run_id"],)).fetchone()
    return Holder(workflow=row["workflow"], run_id=row["run_id"], owner=row["owner"],
                  acquired_at=row["acquired_at"], trigger=run["trigger"] if run else None,
                  actor=run["actor"] if run else None)


def refuse(holder: Holder) -> RunInProgress:
    return RunInProgress(
        f"workflow '{holder.workflow}' is already running: {holder.describe()}",
        f"wait for it to end (`funnelops logs {holder.run_id} --follow`) or cancel it "
        f"(`funnelops cancel {holder.run_id}`); no second run was started",
        holder=holder.to_dict())


def take_in(con: sqlite3.Connection, workflow: str, owner: str, run_id: int | None, pid: int,
            expiry_s: float = DEFAULT_EXPIRY_S) -> Lease:
    """Inside an open IMMEDIATE transaction: take the lease or raise RunInProgress."""
    row = con.execute("SELECT * FROM leases WHERE workflow = ?", (workflow,)).fetchone()
    if row is not None:
        if row["owner"] == owner:
            return Lease(workflow, owner, row["run_id"])
        if holder_alive(row):
            raise refuse(_holder(con, row))
        if row["run_id"] is not None:  # the holder died: its run is lost, never resumed
            con.execute("UPDATE runs SET state = 'LOST', ended_at = ?, error = COALESCE(error, ?) "
                        "WHERE id = ? AND state IN ('PENDING', 'RUNNING')",
                        (now_iso(), "the run's process died; lease recovered", row["run_id"]))
        con.execute("DELETE FROM leases WHERE workflow = ?", (workflow,))
    con.execute("INSERT INTO leases (workflow, owner, run_id, pid, host, acquired_at, heartbeat_at, expires_s) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (workflow, owner, run_id, pid, socket.gethostname(), now_iso(), time.time(), expiry_s))
    return Lease(workflow, owner, run_id)


class LeaseStore:
    def __init__(self, db: LedgerDB) -> None:
        self.db = db

    def acquire(self, workflow: str, owner: str, pid: int | None = None, expiry_s: float = DEFAULT_EXPIRY_S) -> Lease:
        with self.db.write() as con:
            return take_in(con, workflow, owner, None, pid or os.getpid(), expiry_s)

    def holder(self, workflow: str) -> Holder | None:
        """The live holder of `workflow`'s lease, if any (a dead one does not count)."""
        if not self.db.exists():
            return None
        with self.db.read() as con:
            row = con.execute("SELECT * FROM leases WHERE workflow = ?", (workflow,)).fetchone()
            if row is None or not holder_alive(row):
                return None
            return _holder(con, row)

    def owned_by(self, workflow: str, owner: str) -> bool:
        with self.db.read() as con:
            row = con.execute("SELECT owner FROM leases WHERE workflow = ?", (workflow,)).fetchone()
        return row is not None and row["owner"] == owner

    def heartbeat(self, workflow: str, owner: str, pid: int | None = None) -> bool:
        """Refresh the heartbeat; False if the lease is no longer ours (then stop working)."""
        with self.db.write() as con:
            if pid is not None:
                cur = con.execute("UPDATE leases SET heartbeat_at = ?, pid = ? WHERE workflow = ? AND owner = ?",
                                  (time.time(), pid, workflow, owner))
            else:
                cur = con.execute("UPDATE leases SET heartbeat_at = ? WHERE workflow = ? AND owner = ?",
                                  (time.time(), workflow, owner))
            return cur.rowcount == 1

    def release(self, workflow: str, owner: str) -> None:
        with self.db.write() as con:
            con.execute("DELETE FROM leases WHERE workflow = ? AND owner = ?", (workflow, owner))

    def all(self) -> list[dict]:
        if not self.db.exists():
            return []
        with self.db.read() as con:
            return [dict(r) | {"alive": holder_alive(r)} for r in con.execute("SELECT * FROM leases").fetchall()]
