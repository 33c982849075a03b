"""Run records in the local ledger (the `runs` table)."""

from __future__ import annotations

import builtins
import json
import socket
import sqlite3
from collections.abc import Callable
from typing import Any

from funnelops.backends.local.leases import pid_alive
from funnelops.backends.local.ledger_db import LedgerDB
from funnelops.backends.types import RunRecord, now_iso

ACTIVE = ("PENDING", "RUNNING")


def row_to_run(row: sqlite3.Row) -> RunRecord:
    return RunRecord(id=row["id"], workflow=row["workflow"], state=row["state"], trigger=row["trigger"],
                     actor=row["actor"], args=json.loads(row["args"]), created_at=row["created_at"],
                     started_at=row["started_at"], ended_at=row["ended_at"], steps=json.loads(row["steps"]),
                     rows=json.loads(row["rows"]), error=row["error"], log_dir=row["log_dir"], pid=row["pid"])


class RunStore:
    def __init__(self, db: LedgerDB, on_lost: Callable[[int], None] | None = None) -> None:
        self.db = db
        self.on_lost = on_lost  # called with a run's id once this store marked it LOST (notifications)

    def insert(self, con: sqlite3.Connection, workflow: str, args: list[str], trigger: str, actor: str,
               steps: list[dict[str, Any]]) -> int:
        cur = con.execute("INSERT INTO runs (workflow, args, trigger, actor, state, created_at, steps) "
                          "VALUES (?, ?, ?, ?, 'PENDING', ?, ?)",
                          (workflow, json.dumps(args), trigger, actor, now_iso(), json.dumps(steps)))
        run_id = cur.lastrowid
        assert run_id is not None  # every INSERT sets it
        return run_id

    def update(self, run_id: int, **fields: Any) -> None:
        if not fields:
            return
        for key in ("steps", "rows", "args"):
            if key in fields and not isinstance(fields[key], str):
                fields[key] = json.dumps(fields[key], ensure_ascii=False)
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self.db.write() as con:
            con.execute(f"UPDATE runs SET {cols} WHERE id = ?", (*fields.values(), run_id))

    def finish_if_active(self, run_id: int, state: str, error: str | None = None) -> bool:
        """Move an active run to a terminal state; False if it had already ended."""
        with self.db.write() as con:
            cur = con.execute("UPDATE runs SET state = ?, ended_at = ?, error = COALESCE(?, error) "
                              "WHERE id = ? AND state IN ('PENDING', 'RUNNING')", (state, now_iso(), error, run_id))
            return cur.rowcount == 1

    def get(self, run_id: int) -> RunRecord | None:
        if not self.db.exists():
            return None
        with self.db.read() as con:
            row = con.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row_to_run(row) if row else None

    def list(self, workflow: str | None = None, limit: int = 50, active_only: bool = False,
             state: str | None = None) -> list[RunRecord]:
        if not self.db.exists():
            return []
        q = "SELECT * FROM runs"
        args: builtins.list[str | int] = []
        where = []
        if workflow:
            where.append("workflow = ?")
            args.append(workflow)
        if active_only:
            where.append("state IN ('PENDING', 'RUNNING')")
        if state:
            where.append("state = ?")
            args.append(state)
        if where:
            q += " WHERE " + " AND ".join(where)
        q += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with self.db.read() as con:
            return [row_to_run(r) for r in con.execute(q, args).fetchall()]

    def reap(self) -> builtins.list[int]:  # `list` is the method above
        """Mark RUNNING runs whose supervisor process is gone as LOST, and free their leases."""
        if not self.db.exists() or self.db.read_only:  # a read-only home shows runs as recorded
            return []
        with self.db.read() as con:
            rows = con.execute("SELECT id, workflow, pid FROM runs WHERE state = 'RUNNING'").fetchall()
            # A PENDING run whose starter died before spawning its supervisor: its lease names
            # the starter's pid (or is gone), and nothing will ever move it on.
            pending = con.execute(
                "SELECT r.id, r.workflow, l.pid AS lease_pid, l.owner AS owner FROM runs r "
                "LEFT JOIN leases l ON l.workflow = r.workflow AND l.run_id = r.id "
                "WHERE r.state = 'PENDING' AND r.pid IS NULL").fetchall()
        dead = [r for r in rows if r["pid"] and not pid_alive(r["pid"])]
        for r in pending:
            if r["owner"] is None or not pid_alive(r["lease_pid"]):
                self._mark_lost(r["id"], r["workflow"], "PENDING",
                                "the command that started the run died before it began")
        return [r["id"] for r in dead if self._mark_lost(r["id"], r["workflow"], "RUNNING", "the run's process died")]

    def _mark_lost(self, run_id: int, workflow: str, from_state: str, error: str) -> bool:
        """One transaction: the run becomes LOST (if still `from_state`) and its lease is freed."""
        with self.db.write() as con:
            cur = con.execute("UPDATE runs SET state = 'LOST', ended_at = ?, error = COALESCE(error, ?) "
                              "WHERE id = ? AND state = ?", (now_iso(), error, run_id, from_state))
            if cur.rowcount:
                con.execute("DELETE FROM leases WHERE workflow = ? AND run_id = ? AND host = ?",
                            (workflow, run_id, socket.gethostname()))
            lost = bool(cur.rowcount)
        if lost and self.on_lost is not None:
            self.on_lost(run_id)
        return lost
