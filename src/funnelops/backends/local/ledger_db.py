"""The local ledger's SQLite database: one file, WAL mode, short IMMEDIATE transactions.

SQLite decides races for us: `BEGIN IMMEDIATE` takes the write lock up front, so "read the
lease, then take it" is one atomic step across processes. WAL lets `status` and `runs` read
while a run writes.

Every wait for the write lock has a deadline (`LOCK_WAIT_S`, or the caller's `wait_s`) and ends
in `LedgerLocked`. A process stopped (SIGSTOP, a suspended terminal) or hung inside a write keeps
the lock for as long as it is stopped: before, a writer retried SQLite's 30 s busy wait 200 times
(100 minutes), so a `start` refused by a stopped run hung writing the refusal's audit event.
Opening the ledger writes nothing when it is already complete, so a new process can read it
(and be refused) whoever holds the write lock.

Readers in WAL mode wait for no writer, with one exception: the last connection to close
checkpoints and deletes the WAL under an EXCLUSIVE lock on the file, and a process stopped there
blocks even readers. A lease holder (a run's supervisor, flows holding their own lease, an apply)
therefore `pin`s the ledger while it holds its lease: its idle connection keeps every other close
from being the last, so stopping the holder can block nobody's reads.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import TypeVar

from funnelops.backends.local import ledger_integrity as integrity
from funnelops.backends.types import now_iso
from funnelops.errors import BackendError

T = TypeVar("T")

LOCK_WAIT_S = 30.0  # the longest a write waits for another process's transaction, then LedgerLocked
BUSY_TIMEOUT_MS = 30000  # SQLite's own wait for a lock, per statement (a read in WAL mode never needs it)

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
-- the active runs (reap, status, the dashboard) are found by state: without it every look scanned all runs
CREATE INDEX IF NOT EXISTS runs_by_state ON runs (state);
CREATE TABLE IF NOT EXISTS leases (
  workflow TEXT PRIMARY KEY, owner TEXT NOT NULL, run_id INTEGER, pid INTEGER, host TEXT,
  acquired_at TEXT NOT NULL, heartbeat_at REAL NOT NULL, expires_s REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, kind TEXT NOT NULL, subject TEXT,
  data TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS apply_lease (
  id INTEGER PRIMARY KEY CHECK (id = 1), owner TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
  actor TEXT NOT NULL, command TEXT NOT NULL, acquired_at TEXT NOT NULL, heartbeat_at REAL NOT NULL,
  expires_s REAL NOT NULL);
"""


# Every table and index SCHEMA creates: a ledger that has them all (and its marker) needs no write to open.
SCHEMA_NAMES = frozenset(re.findall(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)", SCHEMA))


class LedgerLocked(BackendError, sqlite3.OperationalError):
    """Another process held the ledger's write lock for longer than a writer waits.

    A BackendError, so the CLI prints its message and hint; an sqlite3.OperationalError too, so
    the code that retries or tolerates ledger write errors (heartbeats, progress, a run's end)
    treats it as the failed write it is.
    """


class LedgerDB:
    """Opens (and creates) the ledger file; hands out connections and write transactions.

    The first connection checks the file (see `state.integrity`): a damaged ledger, or a missing
    or empty one beside other state, is a CorruptState unless `reinit` (`--reinit`) asks for a
    new ledger. In a home this process cannot write, connections are read-only and `write()`
    raises ReadOnlyHome.
    """

    def __init__(self, path: Path, *, reinit: bool = False) -> None:
        self.path = Path(path)
        self.reinit = reinit
        self._ready = False
        self._ro = False
        self._prepare_lock = threading.Lock()
        self._pin: sqlite3.Connection | None = None

    @property
    def read_only(self) -> bool:
        return self._ro if self._ready else not integrity.writable(self.path)

    def exists(self) -> bool:
        """Is there a ledger to read? False in a brand-new home; CorruptState if it is gone
        while the home holds other state (reads must not show an empty lifecycle then)."""
        if self.path.exists():
            return True
        evidence = integrity.home_evidence(self.path.parent)
        if evidence and not self.reinit:
            raise integrity.ledger_error(self.path, "missing", "", evidence)
        return False

    def connect(self) -> sqlite3.Connection:
        if not self._ready:
            with self._prepare_lock:  # apply threads share one LedgerDB: check (and move aside) once
                if not self._ready:
                    self._prepare()
        if self._ro:
            con = integrity.connect_ro(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        else:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        con.row_factory = sqlite3.Row
        con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return con

    def pin(self) -> None:
        """Keep one idle connection open (having read the file, so it holds its shared lock) until
        `unpin`: while it is open, no connection of any process is the last to close, so none takes
        the EXCLUSIVE lock of the close-time checkpoint (see the module docstring). Idempotent."""
        if self._pin is not None or self.read_only or not self.path.exists():
            return
        with self._translated():
            con = self.connect()
            con.execute("SELECT count(*) FROM meta").fetchone()  # no transaction stays open after it
        self._pin = con

    def unpin(self) -> None:
        """Close the pinned connection (the lease it protected is given back by now)."""
        con, self._pin = self._pin, None
        if con is not None:
            con.close()

    def _prepare(self) -> None:
        """Check the file once, then create it, mark a legacy one, or refuse."""
        ro = not integrity.writable(self.path)
        state, detail = integrity.inspect_ledger(self.path)
        if state in ("ok", "legacy"):
            if not ro:
                self._init()
        elif ro:
            if state == "missing" and not integrity.home_evidence(self.path.parent):
                raise integrity.read_only_error(self.path.parent, "creating the ledger")
            raise integrity.ledger_error(self.path, state, detail, integrity.home_evidence(self.path.parent))
        else:
            evidence = integrity.home_evidence(self.path.parent)
            fresh_home = state in ("missing", "empty") and not evidence
            if not fresh_home:
                if not self.reinit:
                    raise integrity.ledger_error(self.path, state, detail, evidence)
                integrity.move_aside(self.path)
            self._create(replace=state == "empty" and fresh_home)
        self._ro = ro
        self._ready = True

    def _create(self, *, replace: bool) -> None:
        """Build a complete, marked ledger beside the final name and move it into place at once,
        so no process ever sees a half-made (empty, unmarked) ledger."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.new-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            con = sqlite3.connect(tmp, isolation_level=None)
            try:
                con.execute("PRAGMA journal_mode = WAL")
                con.executescript(SCHEMA)
                _mark(con)
                con.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('created_at', ?)", (now_iso(),))
            finally:
                con.close()
            if replace:
                os.replace(tmp, self.path)
            else:
                try:
                    os.link(tmp, self.path)  # fails if another process created the ledger first
                except FileExistsError:
                    pass
                except OSError:  # a filesystem without hard links: a (tiny) race instead
                    if not self.path.exists():
                        os.replace(tmp, self.path)
        finally:
            for leftover in (tmp, *(tmp.with_name(tmp.name + s) for s in integrity.SIDECARS)):
                leftover.unlink(missing_ok=True)
        self._init()

    def _init(self) -> None:
        """Bring the file to WAL mode, the current schema and its marker, writing only when needed:
        a complete ledger is opened with reads alone, which no stopped writer can block."""
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            if _complete(con):
                return

            def init() -> None:
                con.execute("PRAGMA journal_mode = WAL")
                con.executescript(SCHEMA)
                _mark(con)

            self._until_unlocked(con, init, LOCK_WAIT_S)
        finally:
            con.close()

    def _until_unlocked(self, con: sqlite3.Connection, op: Callable[[], T], wait_s: float) -> T:
        """Run `op` (which takes the write lock), retrying while another process holds the lock,
        for at most `wait_s` seconds in all; then raise LedgerLocked.

        SQLite's busy handler waits inside one attempt (its timeout is set to the time left);
        some "locked" answers come back without waiting, hence the retries with a short sleep.
        """
        deadline = time.monotonic() + wait_s
        attempt = 0
        while True:
            left = deadline - time.monotonic()
            con.execute(f"PRAGMA busy_timeout = {max(0, int(left * 1000))}")
            try:
                done = op()
                con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")  # the connection's own, for what follows
                return done
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LedgerLocked(
                        f"the ledger {self.path} stayed locked by another process's write for {wait_s:g}s",
                        "a funnelops process (a run's supervisor, an apply) holding it may be stopped "
                        "(SIGSTOP, a suspended terminal) or hung; resume or end it, then retry",
                        path=str(self.path)) from None
                time.sleep(min(0.01 + 0.002 * attempt, 0.1, left))
                attempt += 1

    @contextmanager
    def write(self, *, wait_s: float | None = None) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: commits on success, rolls back on any error.

        Waits at most `wait_s` (default LOCK_WAIT_S) for another process's transaction to end,
        then raises LedgerLocked: a stopped or hung writer never blocks this one for good.
        """
        if self.read_only:
            raise integrity.read_only_error(self.path.parent, f"writing {self.path.name}")
        with self._translated():
            con = self.connect()
            if self._ro:
                con.close()
                raise integrity.read_only_error(self.path.parent, f"writing {self.path.name}")
            try:
                self._until_unlocked(con, lambda: con.execute("BEGIN IMMEDIATE"),
                                     LOCK_WAIT_S if wait_s is None else wait_s)
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
        with self._translated():
            con = self.connect()
            try:
                yield con
            finally:
                con.close()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """SQLite errors that mean "damaged" or "read-only" become errors a user can act on."""
        try:
            yield
        except LedgerLocked:
            raise
        except sqlite3.OperationalError as exc:
            if "readonly database" in str(exc).lower():
                raise integrity.read_only_error(self.path.parent, f"writing {self.path.name}") from None
            if "database is locked" in str(exc).lower():  # a reader that waited out its busy timeout
                raise LedgerLocked(
                    f"the ledger {self.path} stayed locked by another process for {BUSY_TIMEOUT_MS / 1000:g}s",
                    "a funnelops process holding it may be stopped (SIGSTOP, a suspended terminal) or hung "
                    "while closing or writing it; resume or end it, then retry", path=str(self.path)) from None
            raise
        except sqlite3.DatabaseError as exc:
            if type(exc) is sqlite3.DatabaseError:  # SQLITE_CORRUPT / SQLITE_NOTADB, not IntegrityError
                raise integrity.ledger_error(self.path, "damaged", str(exc), []) from None
            raise


def _complete(con: sqlite3.Connection) -> bool:
    """Is the ledger already in WAL mode, with every table and index of SCHEMA and its marker?
    (Reads only: in WAL mode they never wait for a writer.)"""
    try:
        if str(con.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
            return False
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        if not SCHEMA_NAMES <= names:
            return False
        return con.execute("SELECT 1 FROM meta WHERE key = ? AND value = ?",
                           (integrity.MARKER_KEY, integrity.MARKER_VALUE)).fetchone() is not None
    except sqlite3.OperationalError:  # locked while WAL is being set up, say: let the writes decide
        return False


def _mark(con: sqlite3.Connection) -> None:
    """The marker row that tells a funnelops ledger from any other (or an empty) SQLite file."""
    con.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (integrity.MARKER_KEY, integrity.MARKER_VALUE))
