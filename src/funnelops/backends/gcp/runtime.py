"""The Runtime protocol on gcp: Dataproc operations are the runs; leases stop overlaps.

"Is it running?" asks both the engine and the lease: Dataproc operations not done whose
``WorkflowMetadata.template`` is this template (a run the scheduler started on its own clock
has no lease, but it shows here), plus a live lease (a run being started right now, whose
operation is not listed yet). The coordinator (funnelops.runs.coordinator) takes the lease
first; ``launch`` instantiates with a ``requestId`` derived from the lease, so a retried
request joins the same run. Run records
live in the ledger object and are refreshed from the operations whenever they are read.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any
from collections.abc import Callable, Iterable, Sequence

from funnelops.backends.gcp import retry
from funnelops.backends.gcp.clients import Clients
from funnelops.backends.gcp.dataproc import to_dict
from funnelops.backends.gcp.leases import START_WINDOW_S, Lease, Leases, holder_of
from funnelops.backends.gcp.ledger import GcsLedger
from funnelops.backends.gcp.notify_end import ended_within
from funnelops.backends.gcp.scheduler import SchedulerHandler
from funnelops.backends.run_params import instantiate_values, substitute
from funnelops.backends.shapes import scheduler_state
from funnelops.backends.types import (TERMINAL, ApplyHolder, Holder, LogCursor, LogRead, RunLease, RunRecord, SchedulerState,
                                      now_iso, refuse_apply)
from funnelops.errors import BackendError
from datetime import UTC

CANCELLED_CODE = 1
NOTIFY_UNRECORDED_S = 3600.0  # a run funnelops never recorded is notified only if it ended this recently


def _duration_s(text: str | None, default: float = 3600.0) -> float:
    try:
        return float(str(text).rstrip("s"))
    except (TypeError, ValueError):
        return default


class GcpRuntime:
    """Implements `backends.base.Runtime` over Dataproc operations, GCS leases and the GCS ledger."""

    poll_backoff = 1.5  # polls are API calls: back off (up to 2 s) while a run goes on
    stop_grace_s: float | None = None  # a cancelled operation ends on its own; wait for it

    def __init__(self, clients: Clients, ledger: GcsLedger, leases: Leases, schedulers: SchedulerHandler,
                 loaded: Any | None = None, confirm_timeout_s: float = 60.0,
                 verify_artifacts: Callable[[str], None] | None = None,
                 apply_holder: Callable[[], ApplyHolder | None] | None = None) -> None:
        self.clients = clients
        self.ledger = ledger
        self.leases = leases
        self.schedulers = schedulers
        self.loaded = loaded
        self.confirm_timeout_s = confirm_timeout_s
        # checks the uploaded artifacts match the project before any run starts (raises if not)
        self.verify_artifacts = verify_artifacts
        self._dispatched: set[str] = set()  # lease owners whose run was started: never release on error
        # who holds the project's apply lease (a run is refused while one does)
        self.apply_holder = apply_holder or (lambda: None)

    @property
    def api(self) -> Any:
        return self.clients.dataproc

    # -- operations ------------------------------------------------------------------------------
    def _op_name(self, run_id: Any) -> str:
        rid = str(run_id)
        return rid if "/" in rid else f"{self.clients.region_path}/operations/{rid}"

    @staticmethod
    def _meta(op: Any) -> dict[str, Any]:
        from google.cloud import dataproc_v1
        from google.protobuf import json_format

        meta = dataproc_v1.WorkflowMetadata.pb(dataproc_v1.WorkflowMetadata())
        if op.metadata and op.metadata.Unpack(meta):
            return json_format.MessageToDict(meta)
        return {}

    def _list_ops(self, filter_: str = "status.state = ACTIVE") -> list[tuple[Any, dict[str, Any]]]:
        def fetch() -> list[Any]:
            out, token = [], ""
            while True:
                resp = self.api.list_operations(request={"name": f"{self.clients.region_path}/operations",
                                                         "filter": filter_, "page_token": token}, retry=None)
                out.extend(resp.operations)
                token = resp.next_page_token
                if not token:
                    return out

        ops = retry.call(fetch, f"Dataproc operations in {self.clients.region_path}",
                         permission="dataproc.operations.list")
        return [(op, self._meta(op)) for op in ops]

    def _active(self, workflow: str) -> list[tuple[Any, dict[str, Any]]]:
        name = self.clients.template_name(workflow)
        return [(op, m) for op, m in self._list_ops() if m.get("template") == name and not op.done]

    def _get_op(self, run_id: Any) -> Any:
        name = self._op_name(run_id)
        return retry.call(lambda: self.api.get_operation(request={"name": name}, retry=None),
                          f"operation {name}", permission="dataproc.operations.get")

    def _op_done(self, operation: str | None) -> bool:
        from google.api_core import exceptions

        if not operation:
            return False
        try:
            return bool(self._get_op(operation).done)
        except BackendError as exc:
            return exc.details.get("status") == 404 or isinstance(exc.__cause__, exceptions.NotFound)

    def _lease_live(self, lease: Lease) -> bool:
        if time.time() >= float(lease.data.get("expires") or 0):
            return False
        return not self._op_done(lease.data.get("operation"))

    @staticmethod
    def _state(op: Any, meta: dict[str, Any]) -> tuple[str, str | None]:
        if not op.done:
            return ("PENDING" if meta.get("state") == "PENDING" else "RUNNING"), None
        if op.HasField("error") and op.error.code:
            return ("CANCELLED" if op.error.code == CANCELLED_CODE else "FAILED"), op.error.message or "failed"
        return "DONE", None

    def _record(self, op: Any, meta: dict[str, Any], base: dict[str, Any] | None) -> RunRecord:
        state, error = self._state(op, meta)
        rec = dict(base or {})
        workflow = rec.get("workflow") or (meta.get("template") or "").rsplit("/", 1)[-1]
        steps = [{"step_id": n.get("stepId"), "state": n.get("state"), **({"error": n["error"]} if n.get("error") else {})}
                 for n in (meta.get("graph") or {}).get("nodes") or []]
        return RunRecord(id=op.name.rsplit("/", 1)[-1], workflow=workflow, state=state,
                         trigger=rec.get("trigger") or "scheduled", actor=rec.get("actor") or "cloud-scheduler",
                         args=list(rec.get("args") or []), created_at=rec.get("created_at") or meta.get("startTime"),
                         started_at=meta.get("startTime") or rec.get("started_at"),
                         ended_at=meta.get("endTime") if op.done else None, steps=steps, error=error)

    def _template(self, workflow: str) -> dict[str, Any]:
        """The template as Dataproc holds it now (REST JSON shape: what `instantiate_body` reads)."""
        tpl = retry.call(lambda: self.api.get_workflow_template(name=self.clients.template_name(workflow), retry=None),
                         f"workflow template {workflow}", permission="dataproc.workflowTemplates.get")
        return to_dict(tpl)

    def user_values(self, workflow: str) -> dict[str, str]:
        """The spec's values of the workflow's own parameters (the rest keep the template's value)."""
        wf = self.loaded.spec.workflow(workflow) if self.loaded is not None else None
        return {p.name: p.value for p in wf.parameters if p.value is not None} if wf is not None else {}

    def run_parameters(self, workflow: str, template: dict[str, Any], lease: RunLease | None,
                       extra_args: Sequence[str] = ()) -> dict[str, str]:
        """A value for every parameter the template declares (Dataproc refuses a run without)."""
        return instantiate_values(template, lease=lease.owner if lease is not None else "scheduled",
                                  extra_args=extra_args, values=self.user_values(workflow), workflow=workflow)

    def _dag_timeout(self, workflow: str) -> float:
        wf = self.loaded.spec.workflow(workflow) if self.loaded is not None else None
        return _duration_s(wf.dag_timeout if wf else None)

    # -- the coordinator's primitives --------------------------------------------------------------
    def holder(self, workflow: str) -> Holder | None:
        active = self._active(workflow)
        lease = self.leases.read(workflow)
        if active:
            op, meta = active[0]
            rid = op.name.rsplit("/", 1)[-1]
            known = self.ledger.runs().get(rid) or {}
            if lease is not None and str(lease.data.get("run_id")) == rid:
                known = {**lease.data, **known}
            return holder_of({"workflow": workflow, "run_id": rid, "owner": "dataproc", "trigger": "scheduled"},
                             owner=known.get("owner") or None, trigger=known.get("trigger") or None,
                             actor=known.get("actor"), acquired_at=meta.get("startTime") or "")
        if lease is not None and self._lease_live(lease):
            return holder_of(lease.data)
        return None

    def holders(self, workflows: Iterable[str]) -> list[Holder]:
        return [h for w in workflows if (h := self.holder(w)) is not None]

    def acquire(self, workflow: str, *, trigger: str, actor: str, extra_args: Sequence[str] = ()) -> RunLease:
        lease = self.leases.acquire(workflow, trigger=trigger, actor=actor, is_live=self._lease_live)
        # Looked at after our lease is written, as an apply looks for runs after writing its own:
        # of a start and an apply that overlap, at least one sees the other and refuses.
        applying = self.apply_holder()
        if applying is not None:
            self.leases.release(workflow, owner=lease.token)
            raise refuse_apply(applying, "no run was started")
        return RunLease(workflow, lease.token, trigger, actor, tuple(extra_args), handle=lease)

    def launch(self, lease: RunLease, *, scheduler: str | None = None) -> RunRecord:
        """Instantiate the template (or fire `scheduler` and find the operation it started)."""
        if self.verify_artifacts is not None:  # before anything starts: never run stale code
            self.verify_artifacts(lease.workflow)
        name = self.clients.template_name(lease.workflow)
        template = self._template(lease.workflow)
        if scheduler is None:
            # Derived from the lease: a retried instantiate (lost answer, 503) joins the same run.
            request_id = "fo-" + hashlib.sha256(f"{name}/{lease.owner}".encode()).hexdigest()[:32]
            body = instantiate_body(lease.workflow, template, lease.extra_args, lease=lease.owner,
                                    values=self.user_values(lease.workflow))
            params = body["parameters"]
            op = retry.call(lambda: self.api.instantiate_workflow_template(
                request={"name": name, "request_id": request_id, "parameters": params}, retry=None),
                f"workflow template {lease.workflow}", permission="dataproc.workflowTemplates.instantiate").operation
        else:  # the scheduler's body carries the scheduled values
            params = self.run_parameters(lease.workflow, template, None)
            op = self._fire(scheduler, lease, name)
        jobs = substitute(template, params).get("jobs") or []
        args = list((jobs[0].get("pysparkJob") or {}).get("args") or []) if jobs else []
        self._dispatched.add(lease.owner)  # a run exists from here on: its lease must outlive any error
        rec = self._started(lease, op, args)
        self._dispatched.discard(lease.owner)
        return rec

    def _fire(self, scheduler: str, lease: RunLease, template: str) -> Any:
        """Fire the scheduler ONCE and find the operation its dispatch started.

        `jobs.run` is not idempotent: a retry after a lost answer would start a second run. Its
        answer says nothing about this dispatch either (the Job's `status` is the previous
        attempt's; the dispatch happens after the answer), so only the operation confirms it.
        The lease is marked adoptable first: the program this fire starts (`--lease=scheduled`)
        adopts it instead of skipping itself.
        """
        # Later updates of the lease (leases.update) follow the generation the adopter writes.
        self.leases.update(lease.handle, adopt="scheduled")
        before = {op.name for op, _ in self._active(lease.workflow)}
        t0 = time.time()
        try:
            self.clients.scheduler.run_job(name=self.clients.job_name(scheduler), retry=None)
        except Exception as exc:
            if not _ambiguous(exc):  # refused (400/403/404/429): nothing was dispatched
                if retry.status_of(exc) is None:
                    raise
                raise retry.describe(exc, f"scheduler {scheduler}", "cloudscheduler.jobs.run") from None
            self._dispatched.add(lease.owner)  # it may have fired: only the operation can tell
        op = self._confirm(template, before, t0)
        if op is None:  # keep the lease (it expires on its own): a late start must not overlap
            self._dispatched.add(lease.owner)
            raise BackendError(f"scheduler '{scheduler}' was fired once, but no Dataproc operation of "
                               f"{lease.workflow} appeared within {self.confirm_timeout_s:.0f}s (not fired "
                               "again: jobs.run is not idempotent)",
                               "check `funnelops runs` and the job's last attempt in the console shortly")
        return op

    def _started(self, lease: RunLease, op: Any, args: list[str]) -> RunRecord:
        rid = op.name.rsplit("/", 1)[-1]
        base = {"workflow": lease.workflow, "trigger": lease.trigger, "actor": lease.actor, "args": args,
                "created_at": now_iso()}
        rec = self._record(op, self._meta(op), base)
        self.ledger.put_runs([{**rec.to_dict(), "operation": op.name, "owner": lease.owner}])
        self.leases.update(lease.handle, ttl_s=self._dag_timeout(lease.workflow) + START_WINDOW_S,
                           run_id=rid, operation=op.name)
        if rec.terminal:
            self.leases.release(lease.workflow, owner=lease.owner)
        return rec

    def release(self, lease: RunLease, error: BaseException) -> None:
        """Free the lease, unless the run was dispatched (then it expires on its own: no overlap)."""
        if lease.owner in self._dispatched:
            self._dispatched.discard(lease.owner)
            return
        self.leases.release(lease.workflow, owner=lease.owner)

    def _confirm(self, template: str, before: set[str], t0: float) -> Any | None:
        """The operation the scheduler's dispatch started: new, of this template."""
        deadline = time.monotonic() + self.confirm_timeout_s
        delay = 0.05
        while True:
            for op, meta in self._list_ops():
                if meta.get("template") == template and op.name not in before:
                    return op
            if time.monotonic() >= deadline:
                break
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        # It may already have ended (a very short run): look among finished ones, started since t0.
        for op, meta in self._list_ops("status.state = DONE"):
            started = meta.get("startTime", "")
            if meta.get("template") == template and op.name not in before and started >= _iso_utc(t0 - 5):
                return op
        return None

    def get(self, run_id: int | str) -> RunRecord | None:
        """The run from its operation; a run seen ending here frees its lease (nobody else will)."""
        from google.api_core import exceptions

        rid = str(run_id).rsplit("/", 1)[-1]
        known = self.ledger.runs().get(rid)
        if known is not None and known.get("state") in TERMINAL:
            return _from_dict(known)
        try:
            op = self._get_op(rid)
        except BackendError as exc:
            if isinstance(exc.__cause__, exceptions.NotFound) or exc.details.get("status") == 404:
                return _from_dict(known) if known else None
            raise
        rec = self._record(op, self._meta(op), known)
        if known is not None and rec.state != known.get("state"):
            self.ledger.put_runs([{**known, **rec.to_dict()}])
        if rec.terminal:
            self.leases.release(rec.workflow, run_id=rid)
            if known is not None or ended_within(rec, NOTIFY_UNRECORDED_S):
                self._notify_end(rec)  # seen ending here (or a recent unrecorded run): the claim makes it once
        return rec

    def _notify_end(self, rec: RunRecord) -> None:
        """Post the end to the project's channels if this observer claims it first (see .notify_end)."""
        from funnelops.backends.gcp.notify_end import notify_end

        notify_end(rec, self.loaded, self.clients.project, self.ledger)

    def stop(self, run: RunRecord) -> bool:
        name = self._op_name(run.id)
        retry.call(lambda: self.api.cancel_operation(request={"name": name}, retry=None), f"operation {name}",
                   permission="dataproc.operations.cancel")
        return True

    def kill(self, run: RunRecord) -> RunRecord:
        """Dataproc ends a cancelled operation itself (stop_grace_s is None): nothing harder to do."""
        return self.get(run.id) or run

    # -- questions --------------------------------------------------------------------------------
    def active(self) -> list[RunRecord]:
        """Runs in progress of the project's workflows (scheduler-started ones included)."""
        return [r for r in self.list(limit=1000) if not r.terminal]

    def read_logs(self, run_id: int | str, cursor: LogCursor | None = None) -> LogRead:
        """Each started step's driver output (GCS objects under its Dataproc job's
        driverOutputResourceUri) since `cursor`, and the run's Cloud Console URL."""
        from funnelops.backends.gcp.logs import DriverOutput

        return DriverOutput(self).read(run_id, cursor)

    def set_paused(self, scheduler_id: str, paused: bool) -> None:
        self.schedulers.set_paused(scheduler_id, paused)

    def scheduler_states(self) -> dict[str, SchedulerState]:
        states = (scheduler_state(job["name"].rsplit("/", 1)[-1], job) for job in self.schedulers.list_jobs())
        return {st.id: st for st in states}

    # Last in the class: a method named `list` would shadow the builtin in the annotations below it.
    def list(self, workflow: str | None = None, limit: int = 50, state: str | None = None) -> list[RunRecord]:
        known = self.ledger.runs()
        managed = {w.name for w in self.loaded.spec.workflows} if self.loaded is not None else None
        out: dict[str, RunRecord] = {}
        for op, meta in self._list_ops():  # includes runs the scheduler started on its own clock
            rec = self._record(op, meta, known.get(op.name.rsplit("/", 1)[-1]))
            if managed is None or rec.workflow in managed:
                out[str(rec.id)] = rec
        for rid, raw in known.items():
            if rid not in out:  # not active (any more): final state from its operation
                out[rid] = (self.get(rid) if raw.get("state") in ("PENDING", "RUNNING") else None) or _from_dict(raw)
        recs = [r for r in out.values()
                if (workflow is None or r.workflow == workflow) and (state is None or r.state == state)]
        recs.sort(key=lambda r: r.created_at or r.started_at or "", reverse=True)
        return recs[:limit]


def instantiate_body(workflow: str, template: dict[str, Any], extra_args: Sequence[str], *,
                     lease: str = "scheduled", values: dict[str, str] | None = None) -> dict[str, Any]:
    """The body of one `instantiate` (its per-run requestId aside): a value for every declared parameter.

    `template` is the WorkflowTemplate in its REST JSON shape (as Dataproc holds it, or as
    `TemplateHandler.body` builds it). `launch` sends the result and `plan --refresh=false` shows
    it: one function, so what a reviewer reads is what is sent.
    """
    return {"parameters": instantiate_values(template, lease=lease, extra_args=extra_args, values=values,
                                             workflow=workflow)}


def _ambiguous(exc: BaseException) -> bool:
    """A failure after which the request may have been served: timeouts, 5xx, a dropped answer."""
    status = retry.status_of(exc)
    if status is not None:
        return status in (408, 500, 502, 503, 504)
    return retry._transient(exc)  # the connection broke or timed out: we cannot know


def _from_dict(d: dict[str, Any]) -> RunRecord:
    fields: dict[str, Any] = {k: d.get(k) for k in RunRecord.__dataclass_fields__ if k in d}
    fields.setdefault("steps", [])
    return RunRecord(**{k: v for k, v in fields.items() if v is not None or k in ("error",)})


def _iso_utc(epoch: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S")
