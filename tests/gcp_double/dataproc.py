"""Dataproc v1 workflow templates and their long-running operations, with the real semantics.

What funnelops relies on, and so what this keeps faithfully:

* ``create`` sets ``name``, ``version = 1``, ``createTime``/``updateTime``; a duplicate id is
  409 ALREADY_EXISTS; ``version`` "should be left blank" on create.
* ``update`` is a PUT of the whole template and its ``version`` must equal the server's. The
  status of a stale version is not documented for this method; google.rpc.Code's guideline
  ("use ABORTED if the client should restart a read-modify-write sequence") gives 409 ABORTED,
  which is the default here (``stale_version_status`` switches to 400 FAILED_PRECONDITION).
* ``create``/``update`` hold the template to Dataproc's prose rules (``dataproc_rules.py``:
  parameter field paths resolve, cluster limits); ``instantiate`` requires a value for every
  declared parameter, checks it, and runs a copy of the template with the values substituted
  (:meth:`DataprocService.run_args` shows what each step got).
* ``instantiate`` returns an Operation with ``WorkflowMetadata`` and stays not-done for a
  configurable time (or until :meth:`finish`). A repeated ``requestId`` returns the same
  operation; two instantiations without one run side by side, as on Google.
* operations ``list`` understands the documented filter (``status.state = ACTIVE|PENDING|DONE``,
  ``labels.KEY = VALUE|*``, joined by AND), so "is it running?" can be asked the real way.
"""

from __future__ import annotations

import copy
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import dataproc_rules as rules
from .dataproc_rules import JOB_TYPES, STEP_ID
from .common import RPC_CODES, ApiError, Request, already_exists, bad_request, not_found, now_rfc3339, page

if TYPE_CHECKING:
    from .server import GcpDouble

WORKFLOW_METADATA = "type.googleapis.com/google.cloud.dataproc.v1.WorkflowMetadata"
_EMPTY = "type.googleapis.com/google.protobuf.Empty"
_REQUEST_ID = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")
_OUTPUT_ONLY = ("name", "createTime", "updateTime")


@dataclass
class Outcome:
    """How an instantiated workflow ends: after ``duration_s`` (None: only via finish())."""

    duration_s: float | None = 0.5
    error: str | None = None
    error_code: int = RPC_CODES["UNKNOWN"]


@dataclass
class _Op:
    name: str
    template: dict[str, Any]
    parameters: dict[str, str]
    request_id: str | None
    source: str
    started: float
    start_time: str
    outcome: Outcome
    forced: Outcome | None = None
    forced_at: float | None = None
    end_time: str | None = None
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


class DataprocService:
    def __init__(self, double: GcpDouble, op_duration_s: float = 0.5) -> None:
        self.double = double
        self._initial_duration = op_duration_s
        self.reset()

    def reset(self) -> None:
        self.stale_version_status = 409
        self.dedupe_finished = True
        self._default = Outcome(duration_s=self._initial_duration)
        self._templates: dict[str, dict[str, Any]] = {}
        self._history: dict[str, dict[int, dict[str, Any]]] = {}
        self._ops: dict[str, _Op] = {}
        self._request_ids: dict[tuple[str, str], str] = {}
        self._outcomes: dict[str, Outcome] = {}
        self.executor: Any = None  # an executor.Executor runs the steps for real (default: timed)

    def handlers(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for coll in ("regions", "locations"):
            base = f"dataproc.projects.{coll}"
            out.update({
                f"{base}.workflowTemplates.create": self._create,
                f"{base}.workflowTemplates.get": self._get,
                f"{base}.workflowTemplates.list": self._list,
                f"{base}.workflowTemplates.update": self._update,
                f"{base}.workflowTemplates.delete": self._delete,
                f"{base}.workflowTemplates.instantiate": self._instantiate,
                f"{base}.operations.get": self._op_get,
                f"{base}.operations.list": self._op_list,
                f"{base}.operations.cancel": self._op_cancel,
                f"{base}.operations.delete": self._op_delete,
            })
        return out

    # -- knobs for tests -----------------------------------------------------------------
    def set_run_outcome(self, template: str | None = None, *, duration_s: float | None = 0.5,
                        error: str | None = None, error_code: int = RPC_CODES["UNKNOWN"]) -> None:
        """How runs end. ``template``: a template id or full name; None sets the default."""
        with self.double.lock:
            outcome = Outcome(duration_s, error, error_code)
            if template is None:
                self._default = outcome
            else:
                self._outcomes[template] = outcome

    def finish(self, operation: str | None = None, *, template: str | None = None,
               error: str | None = None, error_code: int = RPC_CODES["UNKNOWN"]) -> int:
        """End running operations now (one by name, or all of a template, or all)."""
        with self.double.lock:
            n = 0
            for op in self._ops.values():
                if self._done(op) or (operation and op.name != operation):
                    continue
                if template and template not in (op.template["name"], op.template.get("id")):
                    continue
                op.forced, op.forced_at = Outcome(0, error, error_code), time.monotonic()
                n += 1
            return n

    def run_args(self, operation: str) -> dict[str, list[str]]:
        """The arguments each step of a run really got (parameter values substituted), by step id."""
        with self.double.lock:
            op = self._ops.get(operation) or next((o for n, o in self._ops.items()
                                                   if n.rsplit("/", 1)[-1] == operation), None)
            if op is None:
                raise KeyError(f"no operation {operation}")
            return {j["stepId"]: list(next((j[k] for k in JOB_TYPES if k in j), {}).get("args") or [])
                    for j in op.template.get("jobs") or []}

    def templates(self) -> list[dict[str, Any]]:
        with self.double.lock:
            return [copy.deepcopy(t) for t in self._templates.values()]

    def operations(self, template: str | None = None, active: bool | None = None
                   ) -> list[dict[str, Any]]:
        """Rendered operations, optionally of one template (id or name) and by activity."""
        with self.double.lock:
            out = []
            for op in self._ops.values():
                if template and template not in (op.template["name"], op.template.get("id")):
                    continue
                if active is not None and self._done(op) == active:
                    continue
                out.append(self._render(op))
            return out

    # -- templates -----------------------------------------------------------------------
    @staticmethod
    def _parent(req: Request) -> str:
        p = req.params
        if "regionsId" in p:
            return f"projects/{p['projectsId']}/regions/{p['regionsId']}"
        return f"projects/{p['projectsId']}/locations/{p['locationsId']}"

    def _name(self, req: Request) -> str:
        return f"{self._parent(req)}/workflowTemplates/{req.params['workflowTemplatesId']}"

    def _current(self, name: str) -> dict[str, Any]:
        tpl = self._templates.get(name)
        if tpl is None:
            raise not_found(f"Workflow template {name} not found")
        return tpl

    def _stale(self, name: str, sent: Any, current: int) -> ApiError:
        msg = (f"Template {name} version mismatch: request has version {sent}, "
               f"the current version is {current}")
        if self.stale_version_status == 409:
            return ApiError(409, msg, status="ABORTED", reason="aborted")
        return ApiError(400, msg, status="FAILED_PRECONDITION", reason="failedPrecondition")

    def _create(self, req: Request) -> tuple[int, Any]:
        body = dict(req.body or {})
        tid = body.get("id") or ""
        if not STEP_ID.match(tid):
            raise bad_request(f"Invalid template id {tid!r}: 3-50 letters, digits, '_' or '-', "
                              "not starting or ending with '_' or '-'")
        if body.get("version"):
            raise bad_request("version must be left blank when creating a workflow template")
        name = f"{self._parent(req)}/workflowTemplates/{tid}"
        if name in self._templates:
            raise already_exists(f"Workflow template {name} already exists")
        self._check_template(body)
        now = now_rfc3339()
        tpl = {**body, "name": name, "version": 1, "createTime": now, "updateTime": now}
        self._templates[name] = tpl
        self._history[name] = {1: copy.deepcopy(tpl)}
        return 200, copy.deepcopy(tpl)

    def _get(self, req: Request) -> tuple[int, Any]:
        name = self._name(req)
        tpl = self._current(name)
        if req.q("version"):
            old = self._history.get(name, {}).get(int(req.q("version") or 0))
            if old is None:
                raise not_found(f"Workflow template {name} version {req.q('version')} not found")
            return 200, copy.deepcopy(old)
        return 200, copy.deepcopy(tpl)

    def _list(self, req: Request) -> tuple[int, Any]:
        prefix = self._parent(req) + "/workflowTemplates/"
        items = [copy.deepcopy(t) for n, t in sorted(self._templates.items()) if n.startswith(prefix)]
        chunk, nxt = page(items, req.query, "pageSize", 100)
        out: dict[str, Any] = {"templates": chunk} if chunk else {}
        if nxt:
            out["nextPageToken"] = nxt
        return 200, out

    def _update(self, req: Request) -> tuple[int, Any]:
        name = self._name(req)
        cur = self._current(name)
        body = dict(req.body or {})
        if body.get("version") in (None, 0, "0"):
            raise bad_request("template.version is required to update a workflow template")
        if int(body["version"]) != cur["version"]:
            raise self._stale(name, body["version"], cur["version"])
        if body.get("id") not in (None, "", req.params["workflowTemplatesId"]):
            raise bad_request(f"template.id {body.get('id')!r} does not match {name}")
        self._check_template(body)
        for key in _OUTPUT_ONLY:
            body.pop(key, None)
        new = {**body, "id": req.params["workflowTemplatesId"], "name": name,
               "version": cur["version"] + 1, "createTime": cur["createTime"],
               "updateTime": now_rfc3339()}
        self._templates[name] = new
        self._history.setdefault(name, {})[new["version"]] = copy.deepcopy(new)
        return 200, copy.deepcopy(new)

    def _delete(self, req: Request) -> tuple[int, Any]:
        name = self._name(req)
        cur = self._current(name)
        if req.q("version") and int(req.q("version") or 0) != cur["version"]:
            raise self._stale(name, req.q("version"), cur["version"])
        del self._templates[name]
        return 200, {}

    @staticmethod
    def _check_template(body: dict[str, Any]) -> None:
        """The semantic checks the schema cannot express (the real API makes them too)."""
        rules.check_structure(body)
        rules.check_cluster(body)
        rules.check_parameters(body)

    # -- instantiate and operations -------------------------------------------------------
    def _instantiate(self, req: Request) -> tuple[int, Any]:
        op = self.instantiate(self._name(req), req.body or {}, source="api")
        return 200, op

    def instantiate(self, name: str, body: dict[str, Any], source: str) -> dict[str, Any]:
        """Start a workflow (the API call and Cloud Scheduler's HTTP target both land here)."""
        tpl = self._current(name)
        request_id = body.get("requestId")
        if request_id is not None and not _REQUEST_ID.match(request_id):
            raise bad_request(f"Invalid requestId {request_id!r}: up to 40 letters, digits, '_' or '-'")
        if body.get("version") not in (None, 0) and int(body["version"]) != tpl["version"]:
            raise self._stale(name, body["version"], tpl["version"])
        values = dict(body.get("parameters") or {})
        rules.check_values(tpl, values)
        if request_id:
            prior = self._ops.get(self._request_ids.get((name, request_id), ""))
            if prior is not None and (self.dedupe_finished or not self._done(prior)):
                return self._render(prior)
        parent = name.split("/workflowTemplates/")[0]
        op_name = f"{parent}/operations/{uuid.uuid4()}"
        outcome = self._outcomes.get(tpl["id"]) or self._outcomes.get(name) or self._default
        # The operation runs the template with the values substituted (what its steps really get).
        op = _Op(op_name, rules.substitute(tpl, values), values, request_id,
                 source, time.monotonic(), now_rfc3339(), outcome)
        self._ops[op_name] = op
        if request_id:
            self._request_ids[(name, request_id)] = op_name
        if self.executor is not None:  # the run ends when its programs do (executor.py)
            op.outcome = Outcome(duration_s=None)
            self.executor.start(self._render(op), copy.deepcopy(tpl), dict(op.parameters))
        return self._render(op)

    def _effective(self, op: _Op) -> tuple[Outcome, float | None]:
        if op.forced is not None:
            return op.forced, op.forced_at
        d = op.outcome.duration_s
        return op.outcome, (None if d is None else op.started + d)

    def _done(self, op: _Op) -> bool:
        _, ends = self._effective(op)
        return ends is not None and time.monotonic() >= ends

    def _render(self, op: _Op) -> dict[str, Any]:
        outcome, _ = self._effective(op)
        done = self._done(op)
        if done and op.end_time is None:
            op.end_time = now_rfc3339()
        tpl = op.template
        managed = (tpl.get("placement") or {}).get("managedCluster") or {}
        cluster = f"{managed.get('clusterName', 'selected')}-{op.suffix}"
        failed = done and outcome.error is not None
        nodes = []
        for i, job in enumerate(tpl.get("jobs") or []):
            pre = list(job.get("prerequisiteStepIds") or [])
            state = ("COMPLETED" if done and not failed else "FAILED" if failed and i == 0
                     else "BLOCKED" if pre or failed else "RUNNING")
            node = {"stepId": job["stepId"], "state": state}
            if state != "BLOCKED":  # "jobId: populated after the node enters RUNNING state"
                node["jobId"] = f"{job['stepId']}-{op.suffix}"
            if pre:
                node["prerequisiteStepIds"] = pre
            if state == "FAILED":
                node["error"] = outcome.error
            nodes.append(node)
        parent = op.name.split("/operations/")[0]
        meta: dict[str, Any] = {
            "@type": WORKFLOW_METADATA, "template": tpl["name"], "version": tpl["version"],
            "createCluster": {"operationId": f"{parent}/operations/{op.suffix}-create", "done": True},
            "graph": {"nodes": nodes}, "state": "DONE" if done else "RUNNING",
            "clusterName": cluster, "startTime": op.start_time, "clusterUuid": op.suffix,
            "dagStartTime": op.start_time,
        }
        if op.parameters:
            meta["parameters"] = dict(op.parameters)
        if tpl.get("dagTimeout"):
            meta["dagTimeout"] = tpl["dagTimeout"]
        out: dict[str, Any] = {"name": op.name, "metadata": meta, "done": done}
        if done:
            meta["endTime"] = meta["dagEndTime"] = op.end_time
            meta["deleteCluster"] = {"operationId": f"{parent}/operations/{op.suffix}-delete",
                                     "done": True}
            if failed:
                out["error"] = {"code": outcome.error_code, "message": outcome.error}
            else:
                out["response"] = {"@type": _EMPTY}
        return out

    def _op(self, req: Request) -> _Op:
        name = f"{self._parent(req)}/operations/{req.params['operationsId']}"
        op = self._ops.get(name)
        if op is None:
            raise not_found(f"Operation {name} not found")
        return op

    def _op_get(self, req: Request) -> tuple[int, Any]:
        return 200, self._render(self._op(req))

    def _op_list(self, req: Request) -> tuple[int, Any]:
        prefix = self._parent(req) + "/operations/"
        match = _parse_filter(req.q("filter") or "")
        items = [self._render(op) for n, op in self._ops.items()
                 if n.startswith(prefix) and match(op, self._done(op))]
        chunk, nxt = page(items, req.query, "pageSize", 100)
        out: dict[str, Any] = {"operations": chunk} if chunk else {}
        if nxt:
            out["nextPageToken"] = nxt
        return 200, out

    def _op_cancel(self, req: Request) -> tuple[int, Any]:
        op = self._op(req)
        if not self._done(op):
            op.forced = Outcome(0, "Operation was cancelled", RPC_CODES["CANCELLED"])
            op.forced_at = time.monotonic()
        return 200, {}

    def _op_delete(self, req: Request) -> tuple[int, Any]:
        del self._ops[self._op(req).name]
        return 200, {}


def _parse_filter(text: str):
    """The documented operations filter: ``field = value [AND field = value]...``."""
    clauses = re.findall(r'([\w.\-]+)\s*=\s*("[^"]*"|\S+)', text)
    leftover = re.sub(r'([\w.\-]+)\s*=\s*("[^"]*"|\S+)|\bAND\b|\s+', "", text)
    if leftover:
        raise bad_request(f"Invalid filter {text!r}: use 'field = value [AND field = value]'")
    checks = []
    for fld, raw in clauses:
        value = raw.strip('"')
        if fld == "status.state":
            if value not in ("PENDING", "ACTIVE", "RUNNING", "DONE", "*"):
                raise bad_request(f"Invalid status.state {value!r}: PENDING, ACTIVE or DONE")
            checks.append(lambda op, done, v=value: v == "*" or (done == (v == "DONE")
                                                                   and v != "PENDING"))
        elif fld.startswith("labels."):
            key = fld[len("labels."):]
            checks.append(lambda op, done, k=key, v=value: k in (op.template.get("labels") or {})
                          and (v == "*" or op.template["labels"][k] == v))
        else:
            raise bad_request(f"Invalid filter field {fld!r}: status.state or labels.KEY")
    return lambda op, done: all(c(op, done) for c in checks)
