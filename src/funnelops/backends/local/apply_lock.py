"""One apply session at a time per local home: a short wait, not a refusal.

The project's apply lease (apply_lease.py) refuses a second apply outright. This lock serializes
what writes resources without that lease: a force's template update (lifecycle/jobs.py
`set_templates`) against another force's, or against an apply that took the lease after the force
looked. Such sessions are short, so the second waits for the first, then plans against it.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Callable, Iterator

from funnelops.errors import BackendError
from funnelops.backends.local import ledger_integrity as integrity
from funnelops.backends.local.home import LocalHome

DEFAULT_TIMEOUT_S = float(os.environ.get("FUNNELOPS_APPLY_LOCK_TIMEOUT", "600"))


def _say(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


@contextmanager
def apply_lock(home: Path, *, timeout: float | None = None,
               notify: Callable[[str], None] = _say) -> Iterator[None]:
    """Hold `<home>/locks/apply.lock` exclusively; says once that it waits, gives up after `timeout`."""
    home = Path(home)
    path = LocalHome(home).locks / "apply.lock"
    if not integrity.writable(path):
        raise integrity.read_only_error(home, "applying changes")
    timeout = DEFAULT_TIMEOUT_S if timeout is None else timeout
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting:
                    notify(f"waiting for another apply to finish… ({path})")
                    waiting = True
                if time.monotonic() > deadline:
                    raise BackendError(f"timed out after {timeout:.0f}s waiting for another apply to finish ({path})",
                                       "another funnelops create-infra or destroy is still running on this home; "
                                       "retry when it ends (FUNNELOPS_APPLY_LOCK_TIMEOUT sets the wait)") from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # closing releases the lock
