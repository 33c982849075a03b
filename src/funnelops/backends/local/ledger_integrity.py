"""Telling a home's state files apart: new, ours and intact, damaged, or read-only.

A home that lost its ledger still has buckets, a warehouse and run logs; silently starting a new
ledger there forgets the lifecycle (IaC looks undone, templates look missing) while everything
else says otherwise. So a ledger is created only in a home with nothing in it, or when the user
asks with `--reinit`; anything else is a :class:`CorruptState` that names the file and the way
back. The warehouse gets the same treatment for what DuckDB itself does not notice on open: a
file shorter than its own block count.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime, UTC
from pathlib import Path
from urllib.parse import quote

from funnelops.backends.local.home import LocalHome
from funnelops.errors import CorruptState, ReadOnlyHome

MARKER_KEY = "ledger"
MARKER_VALUE = "funnelops"
SIDECARS = ("-wal", "-shm", "-journal")
# The tables a marked ledger must have; an unmarked file from before the marker is accepted
# (and marked) when it has at least the first two.
LEDGER_TABLES = ("meta", "stages", "stage_history", "templates", "schedulers", "runs", "leases", "events")
DUCKDB_HEADER_BYTES = 3 * 4096


# -- the home --------------------------------------------------------------------------------
def home_evidence(home: Path) -> list[str]:
    """What shows that `home` was used before (so a ledger must already exist there)."""
    home = Path(home)
    found: list[str] = []
    paths = LocalHome(home)
    wh = paths.warehouse
    if wh.is_file() and wh.stat().st_size > 0:
        found.append(str(wh))
    buckets = paths.buckets
    if buckets.is_dir():
        made = sorted(e.name for e in os.scandir(buckets) if (Path(e.path) / ".bucket.json").is_file())
        if made:
            found.append(f"{buckets} ({', '.join(made)})")
    runs = paths.runs
    if runs.is_dir() and any(os.scandir(runs)):
        found.append(str(runs))
    return found


def writable(path: Path) -> bool:
    """Can this process change the file at `path` (or create it)? Its folder must be writable too:
    SQLite keeps its WAL and shared-memory files beside the database."""
    path = Path(path)
    if path.exists():
        return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return os.access(folder, os.W_OK | os.X_OK)


def read_only_error(home: Path, doing: str | None = None) -> ReadOnlyHome:
    what = f" ({doing})" if doing else ""
    return ReadOnlyHome(
        f"home {home} is read-only: this command changes state{what}",
        "read commands (status, runs, logs, plan, validate, scheduler list) work on a read-only home; "
        "to change anything, run as a user who can write it, or point --home at a writable copy")


# -- the ledger ------------------------------------------------------------------------------
def inspect_ledger(path: Path) -> tuple[str, str]:
    """(state, detail) of the ledger file, read without changing it.

    state: "missing", "empty" (0 bytes, or a valid SQLite file with no tables), "ok" (marked,
    every table there), "legacy" (an unmarked ledger from before the marker), "damaged".
    """
    path = Path(path)
    if not path.exists():
        return "missing", "the file does not exist"
    if path.stat().st_size == 0:
        return "empty", "the file is empty (0 bytes)"
    try:
        con = connect_ro(path)
    except sqlite3.Error as exc:
        return "damaged", f"cannot be opened: {exc}"
    try:
        check = [r[0] for r in con.execute("PRAGMA quick_check").fetchall()]
        if check != ["ok"]:
            return "damaged", "integrity check failed: " + "; ".join(map(str, check[:3]))
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return "empty", "the file holds no tables"
        marked = "meta" in tables and con.execute(
            "SELECT 1 FROM meta WHERE key = ? AND value = ?", (MARKER_KEY, MARKER_VALUE)).fetchone()
        if marked:
            missing = [t for t in LEDGER_TABLES if t not in tables]
            if missing:
                return "damaged", "tables are missing: " + ", ".join(missing)
            return "ok", ""
        if {"meta", "stages"} <= tables:
            return "legacy", ""
        return "damaged", "it is not a funnelops ledger (no marker, unknown tables)"
    except sqlite3.DatabaseError as exc:
        return "damaged", f"cannot be read: {exc}"
    finally:
        con.close()


def connect_ro(path: Path, **kwargs) -> sqlite3.Connection:
    """A read-only connection that never creates or changes anything.

    A WAL database in a folder the reader cannot write opens only if its `-shm` exists; without
    one there is no writer either, so the file is opened as immutable.
    """
    uri = "file:" + quote(str(Path(path).absolute()))
    try:
        con = sqlite3.connect(uri + "?mode=ro", uri=True, **kwargs)
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return con
    except sqlite3.OperationalError:
        con = sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True, **kwargs)
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return con


def ledger_error(path: Path, state: str, detail: str, evidence: list[str]) -> CorruptState:
    """The error for a ledger that cannot be used as it is, with the ways back."""
    path = Path(path)
    if state in ("missing", "empty"):
        why = (f"the ledger {path} is {'missing' if state == 'missing' else 'empty'} but the home holds "
               f"state: {'; '.join(evidence)}. Starting a new ledger here would forget the lifecycle")
    else:
        why = f"the ledger {path} is damaged: {detail}"
    hint = (f"recover: (1) restore {path.name} from a backup (stop every funnelops process first); or "
            f"(2) run the command again with `funnelops --reinit ...` (e.g. `funnelops --reinit job create-infra "
            f"--stage IaC`): the damaged file is moved aside to {path.name}.damaged-<time> and a new ledger is "
            "started. A new ledger loses the lifecycle stages, workflow templates, scheduler state (paused/last "
            "fire), run history and leases; buckets and the warehouse are kept. Then re-run "
            "`funnelops pipeline funnel --data-stage IaC` and `... --data-stage \"Initial data\"` to record them again")
    return CorruptState(why, hint, file=str(path), state=state)


def move_aside(path: Path) -> Path | None:
    """Rename the ledger (and its sidecars) to `<name>.damaged-<time>`; never deletes anything."""
    path = Path(path)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    moved = None
    if path.exists():
        os.replace(path, target)
        moved = target
    for suffix in SIDECARS:
        side = path.with_name(path.name + suffix)
        if side.exists():  # a stale WAL replayed into a new ledger would damage it again
            os.replace(side, target.with_name(target.name + suffix))
    return moved


# -- the warehouse ---------------------------------------------------------------------------
CORRUPTION_MARKERS = ("could not read enough bytes", "corrupt", "checksum", "not a valid duckdb database",
                      "invalid database file", "failed to read database header")


def is_duckdb_corruption(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(m in text for m in CORRUPTION_MARKERS)


def warehouse_error(path: Path, detail: str) -> CorruptState:
    path = Path(path)
    hint = (f"recover: (1) restore {path.name} from a backup (stop every funnelops process first); or "
            f"(2) move it aside (`mv {path} {path}.damaged`) and rebuild: `funnelops job create-infra --stage IaC` "
            "recreates the datasets, tables and views empty, `funnelops pipeline funnel --data-stage "
            "\"Initial data\"` reloads the trusted data from the buckets, and the workflows rebuild the refined "
            "tables. Rows that exist only in the warehouse (refined tables not yet rebuilt) are lost until then")
    return CorruptState(f"the warehouse {path} is damaged: {detail}", hint, file=str(path))


def check_warehouse_intact(con, path: Path) -> None:
    """Raise if the DuckDB file is too short to hold the blocks in use.

    DuckDB opens a truncated file happily and reads its catalog from the first blocks; only a
    query that touches a missing block fails, much later, or never (a plan then says
    "unchanged"). Every used block lies inside the file, so the file must be at least
    header + used blocks long (exact when no block is free; trailing free blocks are cut off by
    DuckDB itself, so they are not counted). A cut that this misses fails on the first read
    of a lost block, which the warehouse also reports as damage.
    """
    row = con.execute("SELECT used_blocks, block_size FROM pragma_database_size() "
                      "WHERE database_name = current_database()").fetchone()
    if not row or row[0] is None or row[1] is None:
        return
    need = DUCKDB_HEADER_BYTES + int(row[0]) * int(row[1])
    have = Path(path).stat().st_size
    if have < need:
        raise warehouse_error(path, f"the file is {have} bytes but holds {row[0]} blocks in use ({need} bytes); "
                                    "it was truncated")
