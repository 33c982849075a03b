"""The project's apply lease on gcp: one GCS object beside the run leases, taken with preconditions.

``gs://<artifacts>/funnelops/apply-lease.json`` is created with ``if_generation_match=0``, so of
any number of applies (two CI agents, an operator's laptop) exactly one wins. The body names the
holder (a random token, actor, command, host and pid) and carries an expiry that a thread renews
every TTL/4 with a precondition on the generation it wrote. A holder whose expiry has passed
(a CI agent that was killed, a laptop that went to sleep) is dead: the next apply takes the lease
over with a precondition on the generation it read, so two takers cannot both win. Release
deletes the object only if it is still the generation we hold.

Before the project's first apply has made the artifacts bucket, the lease is not taken: creating
the bucket to hold it would be a change no plan showed, and no template or run exists yet.

The TTL is $FUNNELOPS_APPLY_LEASE_TTL_S (120 s): after a crash, the next apply or run waits at
most that long; a live apply renews 4 times per TTL, so it survives three failed renewals.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from typing import Any

from funnelops.backends.gcp.leases import Lease, Leases, _iso
from funnelops.backends.types import ApplyHolder, default_actor, now_iso, refuse_apply
from funnelops.errors import BackendError

OBJECT = "funnelops/apply-lease.json"


class NoBucket(Exception):
    """The artifacts bucket does not exist yet: nothing is deployed, so there is nothing to guard."""


def _no_bucket() -> None:
    raise NoBucket


def ttl_s() -> float:
    try:
        return max(1.0, float(os.environ.get("FUNNELOPS_APPLY_LEASE_TTL_S", "120")))
    except ValueError:
        return 120.0


def holder_of(data: dict[str, Any]) -> ApplyHolder:
    return ApplyHolder(owner=str(data.get("owner", "")), actor=str(data.get("actor", "?")),
                       command=str(data.get("command", "funnelops")), acquired_at=str(data.get("acquired_at", "")),
                       host=data.get("host"), pid=data.get("pid"), expires_at=data.get("expires_at"))


def live(lease: Lease) -> bool:
    return time.time() < float(lease.data.get("expires") or 0)


class ApplyLease(Leases):
    """The apply lease object (the run leases' reading and conditional writing, on one fixed name)."""

    def __init__(self, clients: Any, bucket: str) -> None:
        # Never creates the bucket: a bucket made by taking the lease would be a change the plan did
        # not show (a saved plan would then be stale), so before the first apply has made it, the
        # lease is not taken (no template, hence no run, exists yet to guard against).
        super().__init__(clients, bucket, ensure_bucket=_no_bucket)
        self.held: Lease | None = None
        self.lost = False
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _blob(self, workflow: str = "") -> Any:
        return self.clients.storage.bucket(self.bucket).blob(OBJECT)

    def _uri(self, workflow: str = "") -> str:
        return f"gs://{self.bucket}/{OBJECT}"

    def holder(self) -> ApplyHolder | None:
        current = self.read("")
        return holder_of(current.data) if current is not None and live(current) else None

    def take(self, *, actor: str | None = None, command: str) -> Lease | None:
        """Take the lease or raise RunInProgress naming the live holder; None when the artifacts
        bucket does not exist yet (the project's first apply: nothing to hold it in, nothing to guard)."""
        try:
            return self._take(actor, command)
        except NoBucket:
            return None

    def _take(self, actor: str | None, command: str) -> Lease:
        ttl = ttl_s()
        now = time.time()
        data = {"owner": uuid.uuid4().hex, "actor": actor or default_actor(), "command": command,
                "host": socket.gethostname(), "pid": os.getpid(), "acquired_at": now_iso(),
                "heartbeat_at": now_iso(), "expires": now + ttl, "expires_at": _iso(now + ttl), "ttl_s": ttl}
        for _ in range(5):
            gen = self._write("", data, 0)
            if gen is None:
                current = self.read("")
                if current is None:
                    continue  # released meanwhile: try to create again
                if live(current):
                    raise refuse_apply(holder_of(current.data))
                gen = self._write("", data, current.generation)  # the holder died: take over
                if gen is None:
                    continue
            self.held, self.lost = Lease("", gen, data), False
            self._stop.clear()
            self._beat = threading.Thread(target=self._heartbeats, args=(ttl / 4,), daemon=True,
                                          name="apply-lease-heartbeat")
            self._beat.start()
            return self.held
        current = self.read("")
        raise refuse_apply(holder_of(current.data if current else data))

    def _heartbeats(self, every: float) -> None:
        """Push the expiry forward until released; a renewal that finds another owner stops (lost)."""
        while not self._stop.wait(every):
            with self._guard:
                held = self.held
                if held is None:
                    return
                now = time.time()
                ttl = float(held.data.get("ttl_s") or ttl_s())
                data = {**held.data, "heartbeat_at": now_iso(), "expires": now + ttl, "expires_at": _iso(now + ttl)}
                try:
                    gen = self._write("", data, held.generation)
                except (BackendError, NoBucket):
                    continue  # retried at the next beat; three misses still leave the lease live
                if gen is None:
                    self.lost = True
                    return
                self.held = Lease("", gen, data)

    def give_back(self) -> None:
        """Stop renewing and delete the object if it is still the generation we hold."""
        from google.api_core import exceptions

        from funnelops.backends.gcp import retry

        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=30)
            self._beat = None
        with self._guard:
            held, self.held = self.held, None
        if held is None or self.lost:
            return
        blob = self._blob()
        try:
            retry.call(lambda: blob.delete(if_generation_match=held.generation, retry=None), self._uri(), raw=True)
        except (exceptions.PreconditionFailed, exceptions.NotFound):
            pass
