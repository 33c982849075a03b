"""Atomic directory swaps on Linux: `renameat2(RENAME_EXCHANGE)` through ctypes.

A partition (or a generated tree) is replaced by exchanging two paths in one system call: at
every instant the final path holds either the old complete folder or the new one, so a kill -9
can never leave it missing. Where the kernel, the C library or the filesystem does not support
the exchange, :func:`exchange` returns False and the caller falls back to a journaled two-step
rename (see :mod:`funnelops.backends.local.partitions`).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Literal

AT_FDCWD = -100
RENAME_EXCHANGE = 2
# renameat2's number where glibc lacks the wrapper (glibc < 2.28), per architecture
SYS_RENAMEAT2 = {"x86_64": 316, "i386": 353, "i686": 353, "aarch64": 276, "riscv64": 276,
                 "armv7l": 382, "armv6l": 382, "ppc64le": 357, "ppc64": 357, "s390x": 347}
# errors that mean "no exchange here" rather than "this exchange failed"
UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM}

# (old, new) -> (result, errno)
_Exchange = Callable[[bytes, bytes], tuple[int, int]]

_call: _Exchange | Literal[False] | None = None  # resolved once; False if unavailable


def _resolve() -> _Exchange | Literal[False]:
    global _call
    if _call is not None:
        return _call
    _call = False
    if platform.system() != "Linux":
        return _call
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return _call
    fn = getattr(libc, "renameat2", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        fn.restype = ctypes.c_int
        _call = lambda a, b: (fn(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE), ctypes.get_errno())
        return _call
    nr = SYS_RENAMEAT2.get(platform.machine())
    if nr is not None and hasattr(libc, "syscall"):
        sc = libc.syscall
        sc.restype = ctypes.c_long
        _call = lambda a, b: (sc(ctypes.c_long(nr), ctypes.c_int(AT_FDCWD), ctypes.c_char_p(a),
                                 ctypes.c_int(AT_FDCWD), ctypes.c_char_p(b), ctypes.c_uint(RENAME_EXCHANGE)),
                              ctypes.get_errno())
    return _call


def exchange_supported() -> bool:
    return bool(_resolve()) and "no-exchange" not in faults()


def exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two existing paths; False if the exchange is not supported here.

    Raises OSError for real failures (a path missing, a permission, different filesystems).
    """
    call = _resolve()
    if not call or "no-exchange" in faults():
        return False
    ctypes.set_errno(0)
    rc, err = call(os.fsencode(str(a)), os.fsencode(str(b)))
    if rc == 0:
        return True
    if err in UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def replace_dir(src: Path, dest: Path, trash: Path) -> None:
    """Put folder `src` at `dest`; whatever `dest` held ends up at `trash` (for the caller to delete).

    With the exchange, `dest` is never missing; without it, `dest` is missing between two renames.
    """
    if not dest.exists():
        src.rename(dest)
        return
    if exchange(src, dest):
        src.rename(trash)
        return
    dest.rename(trash)
    fault_point("replace-mid")
    src.rename(dest)


def faults() -> set[str]:
    """Fault-injection points armed for this process (tests only): FUNNELOPS_FAULT=a,b."""
    return {f.strip() for f in os.environ.get("FUNNELOPS_FAULT", "").split(",") if f.strip()}


def fault_point(name: str) -> None:
    """Die here as kill -9 would, if the test armed this point: no cleanup, no finally blocks."""
    if name in faults():
        os.kill(os.getpid(), signal.SIGKILL)
