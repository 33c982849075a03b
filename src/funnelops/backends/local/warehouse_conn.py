"""Opening the local DuckDB warehouse safely from many processes.

DuckDB lets one process open a database file for writing, and while it does no other process
can open it at all, not even read-only. Runs of different workflows, `plan`, `status` and the
flows all need the warehouse, so every opener goes through :func:`warehouse`: an `flock` on a
lock file beside the database (exclusive to write, shared to read) serializes them, sessions are
kept short, and a connect that still collides (a process not using the lock) is retried with
backoff.

Every connection that runs project SQL is confined (:func:`confine`): DuckDB's external access is
off except for the home's bucket folders and temp folder, and the configuration is locked, so a
query can neither read `/etc/passwd`, nor `COPY ... TO` anywhere else, nor attach, install or
load anything, nor switch those settings back on.
"""

from __future__ import annotations

import fcntl
import os
import random
import time
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

from funnelops.errors import BackendError
from funnelops.backends.local import ledger_integrity as integrity
from funnelops.backends.local.home import LocalHome

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

DEFAULT_TIMEOUT_S = float(os.environ.get("FUNNELOPS_WAREHOUSE_LOCK_TIMEOUT", "600"))
BUSY_NOTE = "the warehouse is busy (a run or an apply is writing it): waiting up to {timeout:g}s"


class WarehouseBusy(BackendError):
    """Waited `timeout` seconds for the warehouse and another process still holds it."""


@contextmanager
def file_lock(lock_path: Path, *, exclusive: bool, timeout: float = DEFAULT_TIMEOUT_S,
              on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an flock on `lock_path`; waits with backoff up to `timeout` seconds.

    `on_wait(message)` is called once, when the lock is found taken, so an interactive caller
    (`funnelops query`) can say why it is not answering yet."""
    fd = _open_lock_fd(lock_path, exclusive)
    if fd is None:  # a read-only home without a lock file: nobody can write it, nothing to wait for
        yield
        return
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    deadline = time.monotonic() + timeout
    delay = 0.005
    try:
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if on_wait is not None:
                    on_wait(BUSY_NOTE.format(timeout=timeout))
                    on_wait = None
                if time.monotonic() > deadline:
                    raise WarehouseBusy(f"timed out after {timeout:.0f}s waiting for {lock_path}",
                                       "another funnelops process holds the warehouse; retry when it ends") from None
                time.sleep(delay + random.random() * delay)
                delay = min(delay * 2, 0.25)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def home_dirs(home: Path) -> list[Path]:
    """The folders of a home that project SQL may read and write: its buckets and temp files."""
    paths = LocalHome(home)
    return [paths.buckets, paths.tmp]


def confine(con: DuckDBPyConnection, allowed: list[Path], time_zone: str | None = None) -> None:
    """Turn external access off but for `allowed` folders, then lock the configuration.

    The database file itself, its WAL and its spill folder stay usable (DuckDB allows its own
    files). Settings are applied in the only order DuckDB accepts: the time zone and the allowed
    folders before access is turned off, the lock last.
    """
    if scalar(con, "SELECT current_setting('lock_configuration')"):
        # another connection of this process shares the database instance and confined it
        if scalar(con, "SELECT current_setting('enable_external_access')"):
            raise BackendError("the warehouse connection is locked with external access on",
                               "close other DuckDB connections to the warehouse in this process")
        return
    if time_zone:
        con.execute(f"SET TimeZone = '{_tz_literal(time_zone)}'")
    dirs: list[str] = []
    for d in allowed:
        for variant in (Path(d).absolute(), Path(d).resolve()):
            text = str(variant).rstrip("/") + "/"  # a folder, not every name it prefixes
            if text not in dirs:
                dirs.append(text)
    con.execute("SET allowed_directories = ?", [dirs])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def confined_memory(allowed: list[Path], time_zone: str | None = None) -> DuckDBPyConnection:
    """A private in-memory DuckDB that may only touch `allowed` folders (see :func:`confine`)."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        confine(con, allowed, time_zone)
    except BaseException:
        con.close()
        raise
    return con


def scalar(con: DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """The first column of the one row `sql` returns (an aggregate or a setting: always one row)."""
    row = con.execute(sql, params).fetchone()
    assert row is not None, sql
    return row[0]


def _open_lock_fd(lock_path: Path, exclusive: bool) -> int | None:
    """The lock file's descriptor; read-only in a home this process cannot write (flock works on it)."""
    if integrity.writable(lock_path):
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    if exclusive:
        raise integrity.read_only_error(lock_path.parent, "writing the warehouse")
    try:
        return os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return None


@contextmanager
def warehouse(path: Path, *, write: bool = True, time_zone: str | None = None,
              timeout: float = DEFAULT_TIMEOUT_S, allowed: list[Path] | None = None,
              on_wait: Callable[[str], None] | None = None) -> Iterator[DuckDBPyConnection]:
    """A confined DuckDB connection to the warehouse at `path`, held under the warehouse lock.

    Read-only opens of a file that does not exist yet get an in-memory database, so observing
    an empty home never creates files. `allowed` folders default to the buckets and temp folder
    of the home the warehouse lives in.
    """
    import duckdb

    path = Path(path)
    deadline = time.monotonic() + timeout
    with file_lock(path.with_name(path.name + ".lock"), exclusive=write, timeout=timeout, on_wait=on_wait):
        if not write and not path.exists():
            con = duckdb.connect(":memory:")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            con = _connect_with_retry(duckdb, str(path), read_only=not write,
                                      timeout=max(0.0, deadline - time.monotonic()), on_wait=on_wait)
        try:
            confine(con, home_dirs(path.parent) if allowed is None else allowed, time_zone)
            yield con
        finally:
            con.close()


def _tz_literal(tz: str) -> str:
    from zoneinfo import ZoneInfo

    ZoneInfo(tz)  # raises on anything that is not a real zone name
    return tz.replace("'", "")


def _connect_with_retry(duckdb: ModuleType, path: str, *, read_only: bool, timeout: float,
                        on_wait: Callable[[str], None] | None = None) -> DuckDBPyConnection:
    """Connect, retrying lock collisions; a damaged file or a read-only home is a clear error."""
    if not read_only and not integrity.writable(Path(path)):
        raise integrity.read_only_error(Path(path).parent, "writing the warehouse")
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        try:
            con = duckdb.connect(path, read_only=read_only)
            break
        except duckdb.Error as exc:
            if integrity.is_duckdb_corruption(exc):
                raise integrity.warehouse_error(Path(path), str(exc)) from None
            if not isinstance(exc, duckdb.IOException):
                raise
            if "lock" not in str(exc).lower():
                raise BackendError(f"cannot open the warehouse {path}: {exc}") from None
            if time.monotonic() > deadline:
                raise WarehouseBusy(f"cannot open the warehouse {path}: {exc}",
                                    "another process holds the warehouse; retry when it ends") from None
            if on_wait is not None:
                on_wait(BUSY_NOTE.format(timeout=timeout))
                on_wait = None
            time.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 1.0)
    try:
        integrity.check_warehouse_intact(con, Path(path))
    except BaseException:
        con.close()
        raise
    return con
