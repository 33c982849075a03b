"""The project's apply lease in the local ledger: one apply at a time, and no run starts during one.

One row (`apply_lease`, id 1) names the holder: a random owner token, the pid and host, the actor,
the command and when it started. Taking it is one IMMEDIATE SQLite transaction (read the row; a
live holder refuses, a dead one is replaced), so among any number of processes exactly one wins.
The run leases' liveness rule decides who is dead (leases.holder_alive): on this host, a holder
whose process is gone (kill -9 of an apply blocks nothing); on another host sharing the home, one
whose heartbeat is older than its expiry. A holder renews its heartbeat every expiry/4 while it holds.

A second apply is refused (exit 3) rather than made to wait: a CI system re-runs or queues it, and
an apply that waited would apply a plan its operator reviewed against an older state. Starting a
run checks the row in the same transaction that takes the run's lease (see LocalRuntime.acquire).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from datetime import datetime, UTC
from pathlib import Path

from funnelops.backends.local import ledger_integrity as integrity
from funnelops.backends.local.ledger_db import LedgerDB
from funnelops.backends.local.leases import holder_alive
from funnelops.backends.types import ApplyHolder, default_actor, invoked_command, now_iso, refuse_apply


# Fault injection for the reliability tests: while this file exists, an apply that has just taken
# the lease waits (before it plans or changes anything), so a test can act while it is held.
PAUSE_FILE_ENV = "FUNNELOPS_FAULT_APPLY_PAUSE_FILE"


def pause_for_tests() -> None:
    pause = os.environ.get(PAUSE_FILE_ENV)
    deadline = time.monotonic() + 300
    while pause and os.path.exists(pause) and time.monotonic() < deadline:
        time.sleep(0.02)


def expiry_s() -> float:
    """How long a holder on another host stays live without a heartbeat ($FUNNELOPS_APPLY_LEASE_TTL_S, 120)."""
    try:
        return max(1.0, float(os.environ.get("FUNNELOPS_APPLY_LEASE_TTL_S", "120")))
    except ValueError:
        return 120.0


def holder_in(con: sqlite3.Connection) -> ApplyHolder | None:
    """Inside a transaction: the live holder of the apply lease, or None."""
    try:
        row = con.execute("SELECT * FROM apply_lease WHERE id = 1").fetchone()
    except sqlite3.OperationalError as exc:  # a read-only home's ledger from before the table: no apply
        if "no such table" in str(exc):
            return None
        raise
    if row is None or not holder_alive(row):
        return None
    expires = datetime.fromtimestamp(row["heartbeat_at"] + row["expires_s"], UTC).isoformat(timespec="seconds")
    return ApplyHolder(owner=row["owner"], actor=row["actor"], command=row["command"], acquired_at=row["acquired_at"],
                       host=row["host"], pid=row["pid"], expires_at=expires)


def refuse_in(con: sqlite3.Connection, nothing: str) -> None:
    """Inside a transaction: raise RunInProgress naming the apply if one holds the lease."""
    holder = holder_in(con)
    if holder is not None:
        raise refuse_apply(holder, nothing)


class ApplyLease:
    """Take, renew and release the local apply lease of one home (one holder per object)."""

    def __init__(self, db: LedgerDB, home: Path) -> None:
        self.db = db
        self.home = Path(home)
        self.owner: str | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def holder(self) -> ApplyHolder | None:
        if not self.db.exists():
            return None
        with self.db.read() as con:
            return holder_in(con)

    def acquire(self, *, actor: str | None = None, command: str | None = None) -> str:
        """Take the lease or raise RunInProgress naming the apply that holds it; returns our token."""
        if not integrity.writable(self.db.path):
            raise integrity.read_only_error(self.home, "applying changes")
        owner = f"apply-{uuid.uuid4().hex[:12]}"
        ttl = expiry_s()
        with self.db.write() as con:
            refuse_in(con, "nothing was changed")
            con.execute("DELETE FROM apply_lease WHERE id = 1")  # none, or a dead holder's
            con.execute("INSERT INTO apply_lease (id, owner, pid, host, actor, command, acquired_at, heartbeat_at, "
                        "expires_s) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (owner, os.getpid(), socket.gethostname(), actor or default_actor(),
                         command or invoked_command(), now_iso(), time.time(), ttl))
        self.owner = owner
        self.db.pin()  # while we hold the lease, stopping us must block no reader (ledger_db.py)
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeats, args=(owner, ttl / 4), daemon=True,
                                      name="apply-lease-heartbeat")
        self._beat.start()
        return owner

    def _heartbeats(self, owner: str, every: float) -> None:
        """Renew until released; a failed renewal is retried at the next beat (the pid keeps a
        same-host holder live meanwhile)."""
        while not self._stop.wait(every):
            try:
                with self.db.write() as con:
                    con.execute("UPDATE apply_lease SET heartbeat_at = ? WHERE id = 1 AND owner = ?",
                                (time.time(), owner))
            except Exception:
                continue

    def release(self) -> None:
        """Give the lease back (only if it is still ours)."""
        owner, self.owner = self.owner, None
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
            self._beat = None
        if owner is None:
            return
        try:
            with self.db.write() as con:
                con.execute("DELETE FROM apply_lease WHERE id = 1 AND owner = ?", (owner,))
        finally:
            self.db.unpin()
