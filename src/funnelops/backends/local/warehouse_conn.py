"""Opening the local DuckDB warehouse safely from many processes.

DuckDB lets one process open a database file for writing, and while it does no other process
can open it at all, not even read-only. Runs of different workflows, `plan`, `status` and the
flows all need the warehouse, so every opener goes through :func:`warehouse`: an `flock` on a
lock file beside the database (exclusive to write, shared to read) serializes them, sessions are
kept short, and a connect that still collides (a process not using the lock) is retried with
backoff.
"""

from __future__ import annotations

import fcntl
import os
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from funnelops.errors import BackendError
from funnelops.state import integrity

DEFAULT_TIMEOUT_S = float(os.environ.get("FUNNELOPS_WAREHOUSE_LOCK_TIMEOUT", "600"))


@contextmanager
def file_lock(lock_path: Path, *, exclusive: bool, timeout: float = DEFAULT_TIMEOUT_S) -> Iterator[None]:
    """Hold an flock on `lock_path`; waits with backoff up to `timeout` seconds."""
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
                if time.monotonic() > deadline:
                    raise BackendError(f"timed out after {timeout:.0f}s waiting for {lock_path}",
                                       "another funnelops process holds the warehouse; retry when it ends") from None
                time.sleep(delay + random.random() * delay)
                delay = min(delay * 2, 0.25)
        yield
    finally:
        os.close(fd)  # closing releases the lock


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
              timeout: float = DEFAULT_TIMEOUT_S) -> Iterator["object"]:
    """A DuckDB connection to the warehouse at `path`, held under the warehouse lock.

    Read-only opens of a file that does not exist yet get an in-memory database, so observing
    an empty home never creates files.
    """
    import duckdb

    path = Path(path)
    with file_lock(path.with_name(path.name + ".lock"), exclusive=write, timeout=timeout):
        if not write and not path.exists():
            con = duckdb.connect(":memory:")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            con = _connect_with_retry(duckdb, str(path), read_only=not write, timeout=timeout)
        try:
            if time_zone:
                con.execute(f"SET TimeZone = '{_tz_literal(time_zone)}'")
            yield con
        finally:
            con.close()


def _tz_literal(tz: str) -> str:
    from zoneinfo import ZoneInfo

    ZoneInfo(tz)  # raises on anything that is not a real zone name
    return tz.replace("'", "")


def _connect_with_retry(duckdb, path: str, *, read_only: bool, timeout: float):
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
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise BackendError(f"cannot open the warehouse {path}: {exc}") from None
            time.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 1.0)
    try:
        integrity.check_warehouse_intact(con, Path(path))
    except BaseException:
        con.close()
        raise
    return con
