"""The local ledger's SQLite database: one file, WAL mode, short IMMEDIATE transactions.

SQLite decides races for us: `BEGIN IMMEDIATE` takes the write lock up front, so "read the
lease, then take it" is one atomic step across processes. WAL lets `status` and `runs` read
while a run writes.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stages (
  stage TEXT PRIMARY KEY, completed_at TEXT NOT NULL, spec_hash TEXT NOT NULL, actor TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stage_history (
  id INTEGER PRIMARY KEY AUTOINCREMENT, stage TEXT NOT NULL, completed_at TEXT NOT NULL,
  spec_hash TEXT NOT NULL, actor TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs_done (
  id INTEGER PRIMARY KEY AUTOINCREMENT, job TEXT NOT NULL, completed_at TEXT NOT NULL,
  spec_hash TEXT NOT NULL, actor TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS templates (
  name TEXT PRIMARY KEY, body TEXT NOT NULL, version INTEGER NOT NULL,
  create_time TEXT NOT NULL, update_time TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS schedulers (
  id TEXT PRIMARY KEY, body TEXT NOT NULL, state TEXT NOT NULL,
  create_time TEXT NOT NULL, update_time TEXT NOT NULL, last_fire TEXT);
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT, workflow TEXT NOT NULL, args TEXT NOT NULL,
  trigger TEXT NOT NULL, actor TEXT NOT NULL, state TEXT NOT NULL, pid INTEGER,
  created_at TEXT NOT NULL, started_at TEXT, ended_at TEXT, steps TEXT NOT NULL DEFAULT '[]',
  rows TEXT NOT NULL DEFAULT '{}', error TEXT, log_dir TEXT);
CREATE INDEX IF NOT EXISTS runs_by_workflow ON runs (workflow, id);
CREATE TABLE IF NOT EXISTS leases (
  workflow TEXT PRIMARY KEY, owner TEXT NOT NULL, run_id INTEGER, pid INTEGER, host TEXT,
  acquired_at TEXT NOT NULL, heartbeat_at REAL NOT NULL, expires_s REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, kind TEXT NOT NULL, subject TEXT,
  data TEXT NOT NULL DEFAULT '{}');
"""


def now_iso() -> str:
    """Now, as ISO 8601 with offset (UTC)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class LedgerDB:
    """Opens (and creates) the ledger file; hands out connections and write transactions."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._ready = False

    def connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA busy_timeout = 30000")
        if not self._ready:
            self._init(con)
        return con

    def _init(self, con: sqlite3.Connection) -> None:
        for attempt in range(50):
            try:
                con.execute("PRAGMA journal_mode = WAL")
                con.executescript(SCHEMA)
                self._ready = True
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 49:
                    raise
                time.sleep(0.05)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: commits on success, rolls back on any error."""
        con = self.connect()
        try:
            for attempt in range(200):
                try:
                    con.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or attempt == 199:
                        raise
                    time.sleep(0.01 + 0.002 * attempt)
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.close()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        con = self.connect()
        try:
            yield con
        finally:
            con.close()
