"""The overlap guard of the flows program on Dataproc: the workflow's GCS lease, from the cluster.

Why here and not only in the CLI: Cloud Scheduler fires a template on its own clock, and nothing
of funnelops runs between its HTTP call and the cluster. So the program the template runs is the
one place that sees every run, and it must decide before it touches data (issue #11 item 6).

What the program knows (the run tail every `funnelops.flows` step ends with; see
:mod:`funnelops.backends.run_params`): ``--workflow=<template id>`` and ``--lease=<value>``. The
artifacts bucket (where the lease object lives) comes from the project file in the zip, exactly
as the CLI computes it (``backends.gcp.backend.artifacts_bucket_of``), or from
``FUNNELOPS_ARTIFACTS_BUCKET`` when set.

* ``--lease=scheduled`` (a scheduler fire): take the lease; or adopt the one the CLI took for
  ``force-scheduler`` (marked ``"adopt": "scheduled"``: it fired this very dispatch), with a
  generation precondition so only one adopter wins; or join it when an earlier step of this same
  run (same cluster) took it. A live lease held by anyone else means "a run is in progress":
  the program prints ``skipped: run <id> in progress (since <when>, by <actor>)`` and exits 0
  without touching data (:class:`funnelops.flows.engines.base.RunSkipped`). So does a fresh fire
  while an apply holds the project's apply lease (``skipped: an apply is in progress (...)``),
  checked after its lease is written and given back then (backends/gcp/apply_lease.py).
* ``--lease=<token>`` (a run the CLI instantiated): the lease's owner must be ``<token>``,
  else the program fails before touching data.

Release: a lease this program created is deleted at its end (generation precondition) when the
workflow has one flows step; otherwise (later steps of the run need it) and for CLI-owned leases
it ends when its run's operation is done (the program records its operation when it can list
them) or expires: ``dag_timeout + START_WINDOW_S`` after it was taken.

The run's identity on the cluster is the managed cluster's name (Dataproc makes one per workflow
instance, with a unique suffix): ``FUNNELOPS_CLUSTER_NAME``, else the GCE metadata attribute
``dataproc-cluster-name``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from funnelops.backends.gcp.leases import START_WINDOW_S, Lease, Leases, _iso
from funnelops.backends.types import ApplyHolder, now_iso
from funnelops.errors import RunInProgress, UsageError
from funnelops.flows.engines.base import RunSkipped

SCHEDULED = "scheduled"
ADOPT = "adopt"
FLOWS_MAIN = "funnelops.flows"
WORKFLOW_ARG = "--workflow="
_METADATA = "http://metadata.google.internal/computeMetadata/v1/instance/attributes/dataproc-cluster-name"


def cluster_name() -> str | None:
    """This run's managed cluster (unique per workflow instance), or None off Dataproc."""
    name = os.environ.get("FUNNELOPS_CLUSTER_NAME", "").strip()
    if name:
        return name
    import urllib.request

    req = urllib.request.Request(_METADATA, headers={"Metadata-Flavor": "Google"})
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return resp.read().decode().strip() or None
    except OSError:
        return None


class GcsLeaseGuard:
    """:class:`funnelops.flows.engines.base.OverlapGuard` over the workflow's GCS lease."""

    def __init__(self, leases: Leases, workflow: str, lease_arg: str, *, ttl_s: float, release_at_end: bool,
                 instance: str | None, op_done: Callable[[str], bool],
                 find_operation: Callable[[str], str | None],
                 apply_holder: Callable[[], ApplyHolder | None] = lambda: None) -> None:
        self.leases = leases
        self.workflow = workflow
        self.lease_arg = lease_arg
        self.ttl_s = ttl_s
        self.release_at_end = release_at_end
        self.instance = instance
        self.op_done = op_done
        self.find_operation = find_operation
        self.apply_holder = apply_holder  # who holds the project's apply lease (gcp/apply_lease.py)
        self.owner: str | None = None

    def hold(self) -> AbstractContextManager[None]:
        return self._hold()

    @contextmanager
    def _hold(self) -> Iterator[None]:
        if self.lease_arg != SCHEDULED:
            self._verify_token(self.lease_arg)
            self.owner = self.lease_arg
            yield
            return
        lease, created = self._take()
        if created:  # a fresh fire, looked at after its lease is written (as the CLI's starts do)
            applying = self.apply_holder()
            if applying is not None:
                self.leases.release(self.workflow, owner=lease.token)
                raise RunSkipped(f"skipped: an apply is in progress ({applying.describe()})")
        self.owner = lease.token
        try:
            yield
        finally:
            if created and self.release_at_end:
                self.leases.release(self.workflow, owner=lease.token)

    def verify(self) -> None:
        """Right before a commit point: this run's lease is still there, still ours, not expired."""
        current = self.leases.read(self.workflow)
        if self.owner is None or current is None or current.data.get("owner") != self.owner:
            raise RunInProgress(f"workflow '{self.workflow}': this run no longer holds its lease",
                                "another run took over; this run stops without writing more")
        if time.time() >= float(current.data.get("expires") or 0):
            raise RunInProgress(f"workflow '{self.workflow}': this run's lease expired",
                                "the run outlived dag_timeout; nothing more is written")

    # -- a forced run: the CLI holds the lease ---------------------------------------------------
    def _verify_token(self, token: str) -> None:
        current = self.leases.read(self.workflow)
        if current is None or current.data.get("owner") != token:
            holder = "nobody" if current is None else (current.data.get("run_id") or current.data.get("owner"))
            raise RunInProgress(
                f"workflow '{self.workflow}': this run's lease {token} is not held (held by {holder})",
                "the run that started this step lost its lease; nothing was written")

    # -- a scheduled fire: take, adopt, join, or skip --------------------------------------------
    def _live(self, lease: Lease) -> bool:
        if time.time() >= float(lease.data.get("expires") or 0):
            return False
        op = lease.data.get("operation")
        return not (op and self.op_done(op))

    def _fresh(self) -> dict[str, Any]:
        now = time.time()
        return {"workflow": self.workflow, "owner": _token(), "actor": "cloud-scheduler", "trigger": SCHEDULED,
                "run_id": None, "operation": None, "instance": self.instance, "acquired_at": now_iso(),
                "heartbeat_at": now_iso(), "expires": now + self.ttl_s, "expires_at": _iso(now + self.ttl_s)}

    def _take(self) -> tuple[Lease, bool]:
        """(the lease this run now holds, whether it created it); raises RunSkipped."""
        for _ in range(5):
            current = self.leases.read(self.workflow)
            if current is None or not self._live(current):
                data = self._fresh()
                gen = self.leases.write(self.workflow, data, current.generation if current else 0)
                if gen is not None:
                    return self._record_operation(Lease(self.workflow, gen, data)), True
                continue  # someone else wrote first: look again
            if self.instance and current.data.get("instance") == self.instance:
                return current, False  # an earlier step of this same run took it
            if current.data.get(ADOPT) == SCHEDULED:
                data = {**current.data, ADOPT: None, "adopted_by": self.instance or "scheduled",
                        "instance": self.instance, "heartbeat_at": now_iso()}
                gen = self.leases.write(self.workflow, data, current.generation)
                if gen is not None:  # the CLI may have named another fire's operation: name ours
                    return self._record_operation(Lease(self.workflow, gen, data), replace=True), False
                continue  # another fire adopted it first: it is now a run in progress
            raise RunSkipped(skip_line(current.data))
        raise RunSkipped(skip_line((self.leases.read(self.workflow) or Lease(self.workflow, 0, {})).data))

    def _record_operation(self, lease: Lease, replace: bool = False) -> Lease:
        """Best effort: name this run's operation in the lease, so its end frees it for everyone."""
        if not self.instance or (lease.data.get("operation") and not replace):
            return lease
        op = self.find_operation(self.instance)
        if not op:
            return lease
        try:
            return self.leases.update(lease, run_id=op.rsplit("/", 1)[-1], operation=op)
        except Exception:  # the lease is still ours; only the shortcut to its end is missing
            return lease


def skip_line(data: dict[str, Any]) -> str:
    """``skipped: run <id> in progress (since <when>, by <actor>)``: what a skipped fire prints."""
    rid = data.get("run_id") or data.get("operation") or data.get("owner") or "?"
    since = data.get("acquired_at") or "?"
    by = data.get("actor") or data.get("trigger") or "?"
    return f"skipped: run {str(rid).rsplit('/', 1)[-1]} in progress (since {since}, by {by})"


def _token() -> str:
    import uuid

    return uuid.uuid4().hex


def workflow_ttl_s(loaded: Any, workflow: str) -> float:
    """The lease's lifetime: the workflow's dag_timeout plus the start window."""
    wf = loaded.spec.workflow(workflow)
    try:
        timeout = float(str(wf.dag_timeout).rstrip("s")) if wf is not None and wf.dag_timeout else 3600.0
    except ValueError:
        timeout = 3600.0
    return timeout + START_WINDOW_S


def flows_steps(loaded: Any, workflow: str) -> int:
    wf = loaded.spec.workflow(workflow)
    return sum(1 for j in (wf.jobs if wf is not None else []) if j.main == FLOWS_MAIN)


def guard_for(loaded: Any, lease_arg: str | None, workflow: str | None) -> Any:
    """The guard of one run of the flows program on gcp (None: no `--lease`, nothing to guard)."""
    if not lease_arg:
        return None
    if not workflow:
        raise UsageError(f"--lease={lease_arg} without --workflow: the run cannot find its lease",
                         "re-apply the project (`funnelops job create-infra`): templates carry --workflow")
    from funnelops.backends.gcp.backend import artifacts_bucket_of
    from funnelops.backends.gcp.clients import Clients

    project = loaded.spec.project
    clients = Clients(project.id, project.region)
    bucket = os.environ.get("FUNNELOPS_ARTIFACTS_BUCKET", "").strip() or artifacts_bucket_of(loaded.spec)
    leases = Leases(clients, bucket, ensure_bucket=lambda: None)
    ops = _Operations(clients, workflow)
    from funnelops.backends.gcp.apply_lease import ApplyLease

    return GcsLeaseGuard(leases, workflow, lease_arg, ttl_s=workflow_ttl_s(loaded, workflow),
                         release_at_end=flows_steps(loaded, workflow) <= 1, instance=cluster_name(),
                         op_done=ops.done, find_operation=ops.find,
                         apply_holder=ApplyLease(clients, bucket).holder)


class _Operations:
    """The two Dataproc questions the guard asks; both fail safe (unknown = still running)."""

    def __init__(self, clients: Any, workflow: str) -> None:
        self.clients = clients
        self.template = clients.template_name(workflow)

    def done(self, operation: str) -> bool:
        try:
            return bool(self.clients.dataproc.get_operation(request={"name": operation}, retry=None).done)
        except Exception as exc:
            from google.api_core import exceptions

            return isinstance(exc, exceptions.NotFound)

    def find(self, cluster: str) -> str | None:
        try:  # best effort: a failure (even a missing client) only loses the shortcut to the lease's end
            from google.cloud import dataproc_v1

            resp = self.clients.dataproc.list_operations(request={
                "name": f"{self.clients.region_path}/operations", "filter": "status.state = ACTIVE"}, retry=None)
            for op in resp.operations:
                meta = dataproc_v1.WorkflowMetadata.pb(dataproc_v1.WorkflowMetadata())
                if op.metadata.Unpack(meta) and meta.cluster_name == cluster and meta.template == self.template:
                    return str(op.name)
        except Exception:
            return None
        return None
