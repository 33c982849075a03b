"""Per-workflow leases as GCS objects: the atomic "one run at a time" on gcp.

``gs://<artifacts>/funnelops/leases/<workflow>.json`` is created with ``if_generation_match=0``:
GCS lets exactly one creator win. The object holds the owner (a random token), who and why
(actor, trigger), the run and Dataproc operation once known, a heartbeat and an expiry. A lease
is *stale* when it has expired or its operation is done (a run that ended while nobody waited);
a stale lease is taken over with a precondition on the generation that was read, so two
takers cannot both win, and a live one is never taken over. Release deletes the object only if
it is still the generation we hold.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, UTC
from typing import Any
from collections.abc import Callable

from funnelops.backends.gcp import retry
from funnelops.backends.gcp.clients import Clients
from funnelops.backends.types import Holder, now_iso, refuse
from funnelops.errors import BackendError

PREFIX = "funnelops/leases/"
START_WINDOW_S = 600  # how long a lease without an operation stays live (a crash before start)
# Fields that tell our own earlier write (its answer lost) from a competitor's.
_SAME_WRITE = ("owner", "heartbeat_at", "adopted_by", "instance")


@dataclass
class Lease:
    workflow: str
    generation: int
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def token(self) -> str:
        return self.data["owner"]


def holder_of(data: dict[str, Any], **known: Any) -> Holder:
    """The Holder a lease body names; `known` (a run's recorded fields) fills what the body lacks.

    The one way to build a Holder on gcp: from a lease, or from an operation's run record.
    """
    merged = {**data, **{k: v for k, v in known.items() if v is not None}}
    return Holder(workflow=merged.get("workflow", ""), run_id=merged.get("run_id"), owner=merged.get("owner", ""),
                  acquired_at=merged.get("acquired_at", ""), trigger=merged.get("trigger"),
                  actor=merged.get("actor"))


class Leases:
    def __init__(self, clients: Clients, bucket: str, ensure_bucket: Callable[[], None]) -> None:
        self.clients = clients
        self.bucket = bucket
        self.ensure_bucket = ensure_bucket

    def _blob(self, workflow: str) -> Any:
        return self.clients.storage.bucket(self.bucket).blob(f"{PREFIX}{workflow}.json")

    def _uri(self, workflow: str) -> str:
        return f"gs://{self.bucket}/{PREFIX}{workflow}.json"

    def read(self, workflow: str) -> Lease | None:
        from google.api_core import exceptions

        blob = self._blob(workflow)
        try:
            raw = retry.call(lambda: blob.download_as_bytes(retry=None), self._uri(workflow), raw=True)
        except exceptions.NotFound:
            return None
        except Exception as exc:
            raise retry.describe(exc, self._uri(workflow), "storage.objects.get") from None
        try:
            data = json.loads(raw)
        except ValueError:
            data = {"workflow": workflow, "owner": "(unreadable)", "expires": 0}
        return Lease(workflow, int(blob.generation or 0), data)

    def _write(self, workflow: str, data: dict[str, Any], if_generation: int) -> int | None:
        """Write with a precondition; the new generation, or None if we lost the race."""
        from google.api_core import exceptions

        blob = self._blob(workflow)
        body = json.dumps(data, sort_keys=True, ensure_ascii=False)
        for _ in range(3):
            try:
                retry.call(lambda: blob.upload_from_string(body, content_type="application/json",
                                                           if_generation_match=if_generation, retry=None),
                           self._uri(workflow), raw=True)
                return int(blob.generation or 0)
            except exceptions.PreconditionFailed:
                # Lost, unless an earlier attempt of ours succeeded and only its answer was lost.
                now = self.read(workflow)
                if now is not None and all(now.data.get(k) == data.get(k) for k in _SAME_WRITE):
                    return now.generation
                return None
            except exceptions.NotFound:
                self.ensure_bucket()
            except Exception as exc:
                raise retry.describe(exc, self._uri(workflow), "storage.objects.create") from None
        raise BackendError(f"cannot write {self._uri(workflow)}", "check the artifacts bucket exists")

    def write(self, workflow: str, data: dict[str, Any], if_generation: int) -> int | None:
        """Write `data` if the object is still at `if_generation` (0: absent); None if we lost."""
        return self._write(workflow, data, if_generation)

    def acquire(self, workflow: str, *, trigger: str, actor: str, is_live: Callable[[Lease], bool],
                ttl_s: float = START_WINDOW_S) -> Lease:
        """Take the lease or raise RunInProgress naming who holds it."""
        now = time.time()
        data = {"workflow": workflow, "owner": uuid.uuid4().hex, "actor": actor, "trigger": trigger,
                "run_id": None, "operation": None, "acquired_at": now_iso(), "heartbeat_at": now_iso(),
                "expires": now + ttl_s, "expires_at": _iso(now + ttl_s)}
        for _ in range(5):
            gen = self._write(workflow, data, 0)
            if gen is not None:
                return Lease(workflow, gen, data)
            current = self.read(workflow)
            if current is None:
                continue  # released meanwhile: try to create again
            if is_live(current):
                raise refuse(holder_of(current.data))
            gen = self._write(workflow, data, current.generation)  # take over the stale lease
            if gen is not None:
                return Lease(workflow, gen, {**data, "took_over": current.data.get("owner")})
        current = self.read(workflow)
        raise refuse(holder_of(current.data if current else data))

    def update(self, lease: Lease, ttl_s: float | None = None, **fields: Any) -> Lease:
        """Heartbeat (and record run/operation); raises if the lease was lost meanwhile.

        A lease marked adoptable (``force-scheduler``) may have been adopted meanwhile by the
        program its fire started: same owner, new generation. Then the update goes on top of
        what the adopter wrote, and the operation the adopter named (its own) is kept.
        """
        current = lease
        for _ in range(3):
            keep = {k: current.data[k] for k in ("run_id", "operation")  # only what changed under us
                    if current is not lease and current.data.get("adopted_by") and current.data.get(k)}
            data = {**current.data, **fields, **keep, "heartbeat_at": now_iso()}
            if ttl_s is not None:
                data.update(expires=time.time() + ttl_s, expires_at=_iso(time.time() + ttl_s))
            gen = self._write(lease.workflow, data, current.generation)
            if gen is not None:
                return Lease(lease.workflow, gen, data)
            now = self.read(lease.workflow)
            if now is None or now.data.get("owner") != lease.token:
                break
            current = now
        raise BackendError(f"lost the lease of workflow '{lease.workflow}' (someone took it over)",
                           "another funnelops judged it stale; check `funnelops runs`")

    def release(self, workflow: str, *, owner: str | None = None, run_id: Any = None) -> bool:
        """Delete the lease if it is (still) the one we mean: by owner token or by run id."""
        from google.api_core import exceptions

        current = self.read(workflow)
        if current is None:
            return False
        if owner is not None and current.data.get("owner") != owner:
            return False
        if run_id is not None and str(current.data.get("run_id")) != str(run_id):
            return False
        try:
            retry.call(lambda: self._blob(workflow).delete(if_generation_match=current.generation, retry=None),
                       self._uri(workflow), raw=True)
            return True
        except (exceptions.PreconditionFailed, exceptions.NotFound):
            return False


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
