"""Cloud Scheduler v1 jobs, including the chain ``jobs.run`` -> Dataproc ``instantiate``.

Why model the chain: funnelops forces a workflow through Cloud Scheduler and then looks for the
Dataproc operation the job started. On Google the job's HTTP target POSTs to
``https://dataproc.googleapis.com/v1/{template}:instantiate`` with an OAuth token; here
``:run`` does the same against the double's Dataproc state, after holding the decoded target
body to the ``InstantiateWorkflowTemplateRequest`` schema. What the real dispatch would get
wrong (no OAuth token, a GET, a missing template) lands in the job's ``status`` as it would.

``jobs.run`` is asynchronous, as on Google: it answers at once with the Job as it was (its
``status`` and ``lastAttemptTime`` are the PREVIOUS attempt's), and the HTTP target is called
``dispatch_delay_s`` later on a thread; that attempt's result becomes the job's ``status``
afterwards. So nobody can read "did this fire work?" from the answer: only the Dataproc operation
tells. :meth:`SchedulerService.fire` is the cron's own fire (no API call); :meth:`settle` waits
for the dispatches in flight.

Server-side defaults the real API fills in (``state``, ``userUpdateTime``, ``scheduleTime``,
``attemptDeadline`` 180s, the retry defaults) are filled here too, so a diff that compares
desired with observed meets them.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as _dt
import json
import re
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .common import RPC_CODES, ApiError, Request, already_exists, bad_request, not_found, now_rfc3339, page

if TYPE_CHECKING:
    from .server import GcpDouble

_JOB_ID = re.compile(r"^[a-zA-Z\d_-]{1,500}$")
_DATAPROC_TARGET = re.compile(
    r"^/v1/(projects/[^/]+/(?:regions|locations)/[^/]+/workflowTemplates/[^/:]+):instantiate$")
_TARGETS = ("httpTarget", "pubsubTarget", "appEngineHttpTarget")
_OUTPUT_ONLY = ("state", "status", "scheduleTime", "lastAttemptTime", "userUpdateTime",
                "satisfiesPzs")
_RETRY_DEFAULTS = {"maxRetryDuration": "0s", "minBackoffDuration": "5s",
                   "maxBackoffDuration": "3600s", "maxDoublings": 5}


class SchedulerService:
    def __init__(self, double: GcpDouble) -> None:
        self.double = double
        self.reset()

    def reset(self) -> None:
        self._epoch = getattr(self, "_epoch", 0) + 1  # a dispatch still in flight lands nowhere
        self.dispatch_delay_s = 0.05
        self._jobs: dict[str, dict[str, Any]] = {}
        self.dispatches: list[dict[str, Any]] = []
        self._pending: list[threading.Thread] = []

    def fire(self, name: str) -> None:
        """The cron's own fire of job `name` (full name or id): an attempt, as at schedule time."""
        with self.double.lock:
            full = name if "/" in name else next((n for n in self._jobs if n.rsplit("/", 1)[-1] == name), name)
            if full not in self._jobs:
                raise KeyError(f"no scheduler job {name}")
            self._start_attempt(full)

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until the dispatches started so far have landed."""
        deadline = time.monotonic() + timeout
        for t in list(getattr(self, "_pending", [])):
            t.join(max(0.0, deadline - time.monotonic()))

    def _start_attempt(self, name: str) -> None:
        thread = threading.Thread(target=self._attempt, args=(name, self._epoch), daemon=True,
                                  name=f"scheduler-attempt-{name.rsplit('/', 1)[-1]}")
        self._pending = [t for t in self._pending if t.is_alive()] + [thread]
        thread.start()

    def _attempt(self, name: str, epoch: int) -> None:
        time.sleep(self.dispatch_delay_s)
        with self.double.lock:
            job = self._jobs.get(name)
            if job is None or epoch != self._epoch:
                return
            job["lastAttemptTime"] = now_rfc3339()
            status, operation = self._dispatch(job)
            job["status"] = status
            self.dispatches.append({"job": job["name"], "target": copy.deepcopy(job.get("httpTarget")),
                                    "status": status, "operation": operation})

    def handlers(self) -> dict[str, Any]:
        base = "cloudscheduler.projects.locations.jobs"
        return {f"{base}.create": self._create, f"{base}.get": self._get,
                f"{base}.list": self._list, f"{base}.patch": self._patch,
                f"{base}.delete": self._delete, f"{base}.run": self._run,
                f"{base}.pause": self._pause, f"{base}.resume": self._resume}

    def jobs(self) -> list[dict[str, Any]]:
        with self.double.lock:
            return [copy.deepcopy(j) for j in self._jobs.values()]

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _parent(req: Request) -> str:
        return f"projects/{req.params['projectsId']}/locations/{req.params['locationsId']}"

    def _job(self, req: Request) -> dict[str, Any]:
        name = f"{self._parent(req)}/jobs/{req.params['jobsId']}"
        job = self._jobs.get(name)
        if job is None:
            raise not_found(f"Job not found: {name}")
        return job

    @staticmethod
    def _check(job: dict[str, Any]) -> None:
        """Semantic checks the schemas cannot express."""
        targets = [t for t in _TARGETS if job.get(t)]
        if len(targets) != 1:
            raise bad_request(f"A job needs exactly one target, got {targets or 'none'}")
        tz = job.get("timeZone") or "UTC"
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise bad_request(f"Invalid time zone {tz!r}") from exc
        schedule = job.get("schedule") or ""
        try:
            from croniter import croniter
        except ImportError:  # croniter is a funnelops dependency; keep the double usable without
            croniter = None
        if croniter is not None and not croniter.is_valid(schedule):
            raise bad_request(f"Schedule or time zone is invalid: {schedule!r}")
        http = job.get("httpTarget")
        if http:
            parts = urlsplit(http.get("uri", ""))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise bad_request(f"httpTarget.uri must be an http(s) URL, got {http.get('uri')!r}")
            if http.get("body") and http.get("httpMethod", "POST") not in ("POST", "PUT", "PATCH"):
                raise bad_request("HTTP request body is allowed only for POST, PUT or PATCH")
            if http.get("oauthToken") and http.get("oidcToken"):
                raise bad_request("Set at most one of oauthToken and oidcToken")
        deadline = job.get("attemptDeadline")
        if deadline and http and not 15 <= float(deadline.rstrip("s")) <= 1800:
            raise bad_request(f"attemptDeadline {deadline} must be between 15s and 1800s")
        retry = job.get("retryConfig") or {}
        if not 0 <= int(retry.get("retryCount", 0)) <= 5:
            raise bad_request("retryConfig.retryCount must be between 0 and 5")
        job["_zone"] = zone  # removed again by _finish

    @staticmethod
    def _finish(job: dict[str, Any]) -> dict[str, Any]:
        """Fill the server-side fields: defaults, the next fire time, the update time."""
        zone = job.pop("_zone")
        if job.get("httpTarget"):
            job["httpTarget"].setdefault("httpMethod", "POST")
        job.setdefault("attemptDeadline", "180s")
        job["retryConfig"] = {**_RETRY_DEFAULTS, **(job.get("retryConfig") or {})}
        job["userUpdateTime"] = now_rfc3339()
        try:
            from croniter import croniter

            nxt = croniter(job["schedule"], _dt.datetime.now(zone)).get_next(_dt.datetime)
            job["scheduleTime"] = nxt.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except ImportError:
            pass
        return job

    # -- handlers --------------------------------------------------------------------------
    def _create(self, req: Request) -> tuple[int, Any]:
        parent = self._parent(req)
        job = copy.deepcopy(req.body or {})
        name = job.get("name") or f"{parent}/jobs/job-{uuid.uuid4().hex[:16]}"
        prefix = f"{parent}/jobs/"
        if not name.startswith(prefix) or not _JOB_ID.match(name[len(prefix):]):
            raise bad_request(f"Job name {name!r} must be {prefix}JOB_ID (letters, digits, '-', '_')")
        if name in self._jobs:
            raise already_exists(f"Job {name} already exists")
        job["name"] = name
        self._check(job)
        job = self._finish(job)
        job["state"] = "ENABLED"
        self._jobs[name] = job
        return 200, copy.deepcopy(job)

    def _get(self, req: Request) -> tuple[int, Any]:
        return 200, copy.deepcopy(self._job(req))

    def _list(self, req: Request) -> tuple[int, Any]:
        prefix = self._parent(req) + "/jobs/"
        items = [copy.deepcopy(j) for n, j in sorted(self._jobs.items()) if n.startswith(prefix)]
        chunk, nxt = page(items, req.query, "pageSize", 500)
        out: dict[str, Any] = {"jobs": chunk} if chunk else {}
        if nxt:
            out["nextPageToken"] = nxt
        return 200, out

    def _patch(self, req: Request) -> tuple[int, Any]:
        job = copy.deepcopy(self._job(req))
        body = req.body or {}
        if body.get("name") not in (None, job["name"]):
            raise bad_request("A job's name cannot be changed")
        mask = req.q("updateMask")
        paths = ([_camel(p.strip()) for p in mask.split(",") if p.strip()] if mask
                 else [k for k in body if k != "name"])
        for path in paths:
            if path.split(".")[0] in _OUTPUT_ONLY or path == "name":
                raise bad_request(f"updateMask path {path!r} cannot be updated")
            if not _mask_path_known(path):
                raise bad_request(f"Invalid update mask: Job has no field {path!r} (updateMask paths name "
                                  "fields of the Job message)")
            _apply(job, body, path.split("."))
        state = job.pop("state")
        self._check(job)
        job = self._finish(job)
        job["state"] = state
        self._jobs[job["name"]] = job
        return 200, copy.deepcopy(job)

    def _delete(self, req: Request) -> tuple[int, Any]:
        del self._jobs[self._job(req)["name"]]
        return 200, {}

    def _pause(self, req: Request) -> tuple[int, Any]:
        job = self._job(req)
        if job["state"] != "ENABLED":
            raise ApiError(400, f"Job {job['name']} is {job['state']}; only an ENABLED job can be "
                           "paused", status="FAILED_PRECONDITION", reason="failedPrecondition")
        job["state"] = "PAUSED"
        return 200, copy.deepcopy(job)

    def _resume(self, req: Request) -> tuple[int, Any]:
        job = self._job(req)
        if job["state"] != "PAUSED":
            raise ApiError(400, f"Job {job['name']} is {job['state']}; only a PAUSED job can be "
                           "resumed", status="FAILED_PRECONDITION", reason="failedPrecondition")
        job["state"] = "ENABLED"
        return 200, copy.deepcopy(job)

    def _run(self, req: Request) -> tuple[int, Any]:
        """Dispatch now, "even if the job is already running" (the API's own words): answered
        before the attempt, with the previous attempt's `status` and `lastAttemptTime`."""
        job = self._job(req)
        answer = copy.deepcopy(job)
        self._start_attempt(job["name"])
        return 200, answer

    def _dispatch(self, job: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        http = job.get("httpTarget")
        if not http:
            return {}, None
        parts = urlsplit(http["uri"])
        hit = _DATAPROC_TARGET.match(parts.path)
        # Google's host, or the double's own (a client pointed at the double builds its
        # targets from the endpoint it was given, so the run can land here).
        if parts.netloc not in ("dataproc.googleapis.com", *self.double.netlocs()) or hit is None:
            return {}, None  # some other HTTP endpoint: recorded, no effect here
        if http.get("httpMethod", "POST") != "POST":
            return _status("NOT_FOUND", f"{http.get('httpMethod')} {http['uri']}: no such method"), None
        if not http.get("oauthToken"):
            return _status("UNAUTHENTICATED", "Request had no OAuth token; googleapis.com targets "
                           "need httpTarget.oauthToken"), None
        try:
            raw = base64.b64decode(http.get("body") or "")
            body = json.loads(raw) if raw else {}
        except (binascii.Error, ValueError) as exc:
            return _status("INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}"), None
        body, problems = self.double.validator("dataproc").check_schema(
            "InstantiateWorkflowTemplateRequest", body)
        if problems:
            self.double.record("cloudscheduler.jobs.run->dataproc.instantiate", "POST",
                               http["uri"], problems)
            return _status("INVALID_ARGUMENT", "; ".join(map(str, problems))), None
        try:
            op = self.double.dataproc.instantiate(hit.group(1), body, source=f"scheduler:{job['name']}")
        except ApiError as err:
            return _status(err.status, err.message), None
        return {}, op["name"]


def _status(code: str, message: str) -> dict[str, Any]:
    return {"code": RPC_CODES.get(code, RPC_CODES["UNKNOWN"]), "message": message}


def _camel(path: str) -> str:
    return ".".join(re.sub(r"_([a-z])", lambda m: m.group(1).upper(), p) for p in path.split("."))


def _apply(target: dict[str, Any], source: dict[str, Any], keys: list[str]) -> None:
    """Field-mask semantics: copy the path from the body, or clear it when the body lacks it."""
    head, rest = keys[0], keys[1:]
    if not rest:
        if head in source:
            target[head] = copy.deepcopy(source[head])
        else:
            target.pop(head, None)
        return
    _apply(target.setdefault(head, {}), source.get(head) or {}, rest)


def _mask_path_known(path: str) -> bool:
    """Whether an updateMask path names a field of Cloud Scheduler's `Job` (per the discovery
    document): a misspelled mask is refused by Google, never silently read as "clear nothing"."""
    from .discovery import load_document

    schemas = load_document("scheduler")["schemas"]
    schema: dict[str, Any] | None = schemas["Job"]
    for part in path.split("."):
        prop = ((schema or {}).get("properties") or {}).get(part)
        if prop is None:
            return False
        schema = schemas.get(prop.get("$ref", "")) if "$ref" in prop else None
    return True
