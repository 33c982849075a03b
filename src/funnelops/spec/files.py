"""Reading the files a project is made of, refusing what is not a small regular file.

`funnel.yaml`, its schema files, its view SQL and its refined SQL are read whole into memory. A
path that names a device (`--project /dev/zero` never ends), a FIFO (opening it blocks until a
writer appears) or a multi-gigabyte file must be refused with a clear message rather than hang or
exhaust memory. The type is checked with `os.stat` before opening, then again with `fstat` on
the opened descriptor (the path may have been swapped in between); the open itself is
non-blocking, so even a FIFO swapped in at the last moment cannot hang us.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# Far above any real project (the shipped funnel.yaml is ~6 KB); far below what hurts.
MAX_PROJECT_FILE_BYTES = 5 * 1024 * 1024


class ProjectFileRefused(ValueError):
    """A project file that is not a regular file or is too large; `str()` says which and why."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _check(mode: int, size: int, shown: str, limit: int) -> None:
    if not stat.S_ISREG(mode):
        raise ProjectFileRefused(f"'{shown}' is {_kind(mode)}, not a regular file")
    if size > limit:
        raise ProjectFileRefused(f"'{shown}' is {size:,} bytes; project files are limited to {limit:,} bytes")


def read_project_bytes(path: str | os.PathLike[str], limit: int = MAX_PROJECT_FILE_BYTES) -> bytes:
    """The whole content of a regular file of at most `limit` bytes.

    Raises ProjectFileRefused (not a regular file, too large) or OSError (missing, unreadable).
    """
    shown = str(path)
    st = os.stat(path)
    _check(st.st_mode, st.st_size, shown, limit)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        _check(st.st_mode, st.st_size, shown, limit)
        chunks, total = [], 0
        while total <= limit:  # a file growing while we read still stops at the limit
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    if total > limit:
        raise ProjectFileRefused(f"'{shown}' is larger than {limit:,} bytes, the limit for project files")
    return b"".join(chunks)


def read_project_text(path: str | os.PathLike[str], limit: int = MAX_PROJECT_FILE_BYTES) -> str:
    """`read_project_bytes` decoded as UTF-8 (raises UnicodeDecodeError otherwise)."""
    return read_project_bytes(Path(path), limit).decode("utf-8")
