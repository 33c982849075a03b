"""Keeping a workflow lease renewed while a run works, and giving it up safely when renewal fails.

A renewal can fail for a while (a full disk, a ledger locked or unwritable, the process stopped):
one failure must not end the renewals, so errors are retried. But a holder that has not renewed
for long must stop writing before its lease may be taken over, so a watchdog -- a second thread,
because a renewal can block inside SQLite -- gives up at `renew_budget(expiry)` after the start of
the last successful renewal, measured on the monotonic clock (wall-clock jumps do not matter),
and calls `on_lost` so the holder stops its writers. Once given up, a late renewal is ignored:
the holder never resumes.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from funnelops.backends.local.leases import LeaseStore, heartbeat_interval, renew_budget
from funnelops.backends.local.ledger_db import now_iso


def _log(text: str) -> None:
    print(f"{now_iso()} lease: {text}", file=sys.stderr, flush=True)


class LeaseKeeper:
    """Renews `owner`'s lease on `workflow` in the background; see the module docstring."""

    def __init__(self, leases: LeaseStore, workflow: str, owner: str, expiry_s: float,
                 on_lost: Callable[[str], None], pid: int | None = None,
                 log: Callable[[str], None] = _log, renewed_ago: float = 0.0) -> None:
        self.leases = leases
        self.workflow = workflow
        self.owner = owner
        self.pid = pid
        self.expiry_s = expiry_s
        self.budget = renew_budget(expiry_s)
        self.interval = heartbeat_interval(expiry_s)
        self.retry_s = max(0.05, min(1.0, self.interval / 4))
        self.on_lost = on_lost
        self.log = log
        self.stop = threading.Event()
        self.lost = threading.Event()
        self.reason: str | None = None
        self.failures = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._last_ok = time.monotonic() - renewed_ago  # when the lease was last taken or renewed

    def start(self) -> LeaseKeeper:
        for target, name in ((self._renew_loop, "lease-renew"), (self._watchdog, "lease-watchdog")):
            threading.Thread(target=target, name=name, daemon=True).start()
        return self

    def close(self) -> None:
        self.stop.set()

    def since_renewal(self) -> float:
        with self._lock:
            return time.monotonic() - self._last_ok

    def _renew_loop(self) -> None:
        delay = self.interval
        while not self.stop.wait(delay):
            if self.lost.is_set():
                return
            t0 = time.monotonic()
            try:
                ours = self.leases.heartbeat(self.workflow, self.owner, self.pid)
            except Exception as exc:
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.log(f"renewing the lease of {self.owner} failed ({self.last_error}); "
                         f"retrying, {max(0.0, self.budget - self.since_renewal()):.1f}s left before giving up")
                delay = self.retry_s
                continue
            if not ours:
                self._give_up("the lease was recovered by another process")
                return
            with self._lock:
                if not self.lost.is_set() and t0 - self._last_ok <= self.budget:
                    if self.failures:
                        self.log(f"lease of {self.owner} renewed again after {self.failures} failed attempt(s)")
                    self._last_ok = t0
                    self.failures = 0
            delay = self.interval

    def _watchdog(self) -> None:
        tick = max(0.02, min(0.1, self.interval / 4))
        while not self.stop.wait(tick):
            waited = self.since_renewal()
            if waited >= self.budget:
                cause = f" (last error: {self.last_error})" if self.last_error else \
                    " (the process was stopped, or the renewal hung)"
                self._give_up(f"could not renew the workflow lease for {waited:.1f}s{cause}; its steps were "
                              f"stopped before the lease (expiry {self.expiry_s:g}s) could be taken over")
                return

    def _give_up(self, reason: str) -> None:
        with self._lock:
            if self.lost.is_set():
                return
            self.reason = reason
            self.lost.set()
        self.log(f"giving up the lease of {self.owner}: {reason}")
        self.on_lost(reason)
