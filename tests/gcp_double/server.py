"""The double's HTTP front end and its Python control surface.

Why a real HTTP server rather than mocks: the point is to exercise the official clients end to
end (URL building, JSON encoding, retries, long-running-operation polling), so the double must
be reached the way Google is, over HTTP, with only the endpoint overridden.

Each request goes: route by the discovery path templates -> count it -> simulated latency ->
injected fault (if any) -> validate query and body against the discovery schemas -> the
service's handler (under one lock, so state changes are atomic) -> optional check of our own
response against the response schema. Violations answer 400 *and* are recorded, so a test can
``assert not double.violations`` even when the client swallowed or retried the error.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

from .common import ApiError, Request
from .discovery import Problem, Router, Validator

Handler = Callable[[Request], "tuple[int, Any]"]

SERVICE_ORDER = ["bigquery", "dataproc", "scheduler", "monitoring"]  # dataproc wins the shared operations path


@dataclass(frozen=True)
class Violation:
    """A request that broke the published contract (or a route/method the double lacks)."""

    method: str
    verb: str
    path: str
    field: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.verb} {self.path} [{self.method}] {self.field or '<body>'}: {self.kind}: {self.detail}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], double: GcpDouble, router: Router) -> None:
        super().__init__(addr, _RequestHandler)
        self.double = double
        self.router = router


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, keep-alive clients wait ~40 ms
    # for a delayed ACK on every request, which would swamp any latency we inject on purpose.
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, body = self.server.double._handle(self.server.router, self.command, self.path,
                                                  headers, raw)
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


class GcpDouble:
    """BigQuery v2, Dataproc v1 and Cloud Scheduler v1 on 127.0.0.1, held to the discovery docs.

    >>> with GcpDouble() as d:
    ...     client = dataproc_v1.WorkflowTemplateServiceClient(
    ...         transport="rest", credentials=AnonymousCredentials(),
    ...         client_options={"api_endpoint": d.url})

    ``d.url`` serves all three APIs; ``d.endpoint("scheduler")`` serves only one (their paths
    overlap on ``/v1/projects/*/locations/*/operations``, which ``d.url`` gives to Dataproc).
    """

    def __init__(self, *, latency_ms: float = 0.0, fault_rate: float = 0.0,
                 fault_statuses: tuple[int, ...] = (429, 503), seed: int = 0,
                 op_duration_s: float = 0.5, check_responses: bool = True,
                 host: str = "127.0.0.1") -> None:
        from .bigquery import BigQueryService
        from .dataproc import DataprocService
        from .dataproc_jobs import DataprocJobsService
        from .monitoring import MonitoringService
        from .scheduler import SchedulerService

        self.host = host
        self.lock = threading.RLock()
        self.check_responses = check_responses
        self._validators = {s: Validator(s) for s in SERVICE_ORDER}
        self._servers: dict[str, _Server] = {}
        self._threads: list[threading.Thread] = []
        self._latency_ms = float(latency_ms)
        self._fault_rate = float(fault_rate)
        self._fault_statuses = tuple(fault_statuses)
        self._fault_methods: tuple[str, ...] | None = None
        self._rng = random.Random(seed)
        self._fail_next: list[tuple[int, str | None]] = []
        self._drop_next: list[tuple[int, str | None]] = []
        self._gates: list[tuple[str, threading.Event]] = []
        self._calls: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._violations: list[Violation] = []
        self._response_problems: list[Violation] = []
        self.violations_expected = False
        self.log: list[tuple[str, str, str, int]] = []  # (method id, verb, path, status)
        self.dataproc = DataprocService(self, op_duration_s=op_duration_s)
        self.bigquery = BigQueryService(self)
        self.scheduler = SchedulerService(self)
        self.dataproc_jobs = DataprocJobsService(self)  # jobs.get: where a step's driver output is
        self.monitoring = MonitoringService(self)  # alertPolicies: the log-based alert on failed jobs
        self._handlers: dict[str, Handler] = {}
        for svc in (self.bigquery, self.dataproc, self.scheduler, self.dataproc_jobs, self.monitoring):
            self._handlers.update(svc.handlers())

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> GcpDouble:
        if "all" not in self._servers:
            self._listen("all", SERVICE_ORDER)
        return self

    def stop(self) -> None:
        for srv in self._servers.values():
            srv.shutdown()
            srv.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self._servers.clear()
        self._threads.clear()

    def __enter__(self) -> GcpDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _listen(self, key: str, services: list[str]) -> _Server:
        srv = _Server((self.host, 0), self, Router(services))
        thread = threading.Thread(target=srv.serve_forever, name=f"gcp-double-{key}", daemon=True)
        thread.start()
        self._servers[key] = srv
        self._threads.append(thread)
        return srv

    @property
    def url(self) -> str:
        """Base URL serving all three APIs (use as ``client_options={"api_endpoint": url}``)."""
        if "all" not in self._servers:
            raise RuntimeError("GcpDouble is not started; use it as a context manager")
        return f"http://{self.host}:{self._servers['all'].server_address[1]}"

    def netlocs(self) -> tuple[str, ...]:
        """``host:port`` of every listener (what an HTTP target pointing here names)."""
        return tuple(f"{self.host}:{srv.server_address[1]}" for srv in list(self._servers.values()))

    def endpoint(self, service: str) -> str:
        """Base URL serving one API only: "bigquery", "dataproc" or "scheduler"."""
        if service not in SERVICE_ORDER:
            raise ValueError(f"unknown service {service!r}; expected one of {SERVICE_ORDER}")
        with self.lock:
            srv = self._servers.get(service) or self._listen(service, [service])
        return f"http://{self.host}:{srv.server_address[1]}"

    # -- knobs ------------------------------------------------------------------------------
    def set_latency(self, ms: float) -> None:
        """Sleep this long before answering each API request (threads sleep in parallel)."""
        with self.lock:
            self._latency_ms = float(ms)

    def set_faults(self, rate: float, statuses: tuple[int, ...] | None = None,
                   methods: tuple[str, ...] | None = None, seed: int | None = None) -> None:
        """Answer a share ``rate`` of requests with one of ``statuses`` (seeded RNG).
        ``methods``: only requests whose discovery id contains one of these strings."""
        with self.lock:
            self._fault_rate = float(rate)
            if statuses is not None:
                self._fault_statuses = tuple(statuses)
            self._fault_methods = tuple(methods) if methods else None
            if seed is not None:
                self._rng = random.Random(seed)

    def fail_next(self, n: int = 1, status: int = 503, method: str | None = None) -> None:
        """Deterministic faults: the next ``n`` requests (matching ``method``) get ``status``."""
        with self.lock:
            self._fail_next.extend([(status, method)] * n)

    def drop_answer_next(self, n: int = 1, status: int = 503, method: str | None = None) -> None:
        """The next ``n`` matching requests ARE served, then answered ``status`` (an answer lost
        on the way back: what makes a retry of a non-idempotent call dangerous)."""
        with self.lock:
            self._drop_next.extend([(status, method)] * n)

    def gate(self, method: str) -> threading.Event:
        """Hold requests whose method id contains ``method`` until the returned event is set
        (a slow backend on demand: a run that stays inside its work while a test acts)."""
        event = threading.Event()
        with self.lock:
            self._gates.append((method, event))
        return event

    # -- what happened ---------------------------------------------------------------------
    @property
    def calls(self) -> Counter[str]:
        """Requests received per discovery method id (faulted attempts included)."""
        with self.lock:
            return Counter(self._calls)

    def count(self, fragment: str = "") -> int:
        """Requests whose method id contains ``fragment`` ("" = all)."""
        with self.lock:
            return sum(n for m, n in self._calls.items() if fragment in m)

    @property
    def faults(self) -> Counter[str]:
        with self.lock:
            return Counter(self._faults)

    @property
    def violations(self) -> list[Violation]:
        with self.lock:
            return list(self._violations)

    @property
    def response_problems(self) -> list[Violation]:
        """Places where the double's own answers strayed from the response schemas."""
        with self.lock:
            return list(self._response_problems)

    def assert_clean(self) -> None:
        """Fail loudly if any request broke the contract or the double answered off-schema."""
        problems = self.violations + self.response_problems
        if problems:
            raise AssertionError("contract problems:\n  " + "\n  ".join(map(str, problems)))

    def expect_violations(self) -> None:
        """Declare that this test sends bad requests on purpose (fixtures then skip the
        automatic ``assert_clean`` of violations; response problems are still checked)."""
        self.violations_expected = True

    def reset_counters(self) -> None:
        with self.lock:
            self._calls.clear()
            self._faults.clear()
            self._violations.clear()
            self._response_problems.clear()
            self.log.clear()

    def reset(self) -> None:
        """Forget all state, counters and knobs (latency, faults); keep the listening ports."""
        with self.lock:
            self.reset_counters()
            self.violations_expected = False
            self._latency_ms = 0.0
            self._fault_rate = 0.0
            self._fault_methods = None
            self._fail_next.clear()
            self._drop_next.clear()
            for _, event in self._gates:
                event.set()
            self._gates.clear()
            for svc in (self.bigquery, self.dataproc, self.scheduler, self.dataproc_jobs, self.monitoring):
                svc.reset()

    def record(self, method: str, verb: str, path: str, problems: list[Problem]) -> None:
        with self.lock:
            self._violations.extend(Violation(method, verb, path, p.field, p.kind, p.detail)
                                    for p in problems)

    def validator(self, service: str) -> Validator:
        return self._validators[service]

    # -- the request path ------------------------------------------------------------------
    def _handle(self, router: Router, verb: str, target: str, headers: dict[str, str],
                raw: bytes) -> tuple[int, Any]:
        parts = urlsplit(target)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if path.startswith("/_double/"):
            return self._control(verb, path, raw)
        hit = router.match(verb, path)
        if hit is None:
            self.record("?", verb, path, [Problem("", "unknown-route",
                                                  "no discovery method has this verb and path")])
            return 404, ApiError(404, f"No API method for {verb} {path}").body()
        method, params = hit
        with self.lock:
            self._calls[method.id] += 1
            latency = self._latency_ms
            fault = self._pick_fault(method.id)
            gates = [e for m, e in self._gates if m in method.id]
            drop = next((i for i, (_, only) in enumerate(self._drop_next) if only is None or only in method.id),
                        None)
            dropped = self._drop_next.pop(drop)[0] if drop is not None and not fault else None
        if latency > 0:
            time.sleep(latency / 1000.0)
        for event in gates:
            event.wait(60)
        status, body = self._answer(method, verb, path, params, query, headers, raw, fault)
        if dropped is not None:
            status, body = dropped, ApiError(dropped, "Injected fault: the answer was lost after the "
                                             "request was served").body()
            with self.lock:
                self._faults[method.id] += 1
        with self.lock:
            self.log.append((method.id, verb, path, status))
            if fault:
                self._faults[method.id] += 1
        if self.check_responses and status < 300 and body is not None:
            problems = self._validators[method.service].check_response(method, body)
            if problems:
                with self.lock:
                    self._response_problems.extend(
                        Violation(method.id, verb, path, p.field, p.kind, p.detail) for p in problems)
        return status, body

    def _pick_fault(self, method_id: str) -> int | None:
        for i, (status, only) in enumerate(self._fail_next):
            if only is None or only in method_id:
                del self._fail_next[i]
                return status
        if self._fault_rate <= 0:
            return None
        if self._fault_methods and not any(f in method_id for f in self._fault_methods):
            return None
        if self._rng.random() < self._fault_rate:
            return self._rng.choice(self._fault_statuses)
        return None

    def _answer(self, method, verb, path, params, query, headers, raw, fault) -> tuple[int, Any]:
        try:
            if fault:
                raise ApiError(fault, "Injected fault: "
                               + ("rate limit exceeded" if fault == 429 else "backend unavailable"))
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    self.record(method.id, verb, path, [Problem("", "bad-json", str(exc))])
                    raise ApiError(400, f"Invalid JSON payload received. {exc}") from exc
            validator = self._validators[method.service]
            problems = validator.check_query(method, query)
            resource = path.split("/", 2)[-1].split(":")[0] if method.service != "bigquery" else ""
            body, body_problems = validator.check_request(
                method, body, partial=(verb == "PATCH"), echo={"name": resource})
            problems += body_problems
            if problems:
                self.record(method.id, verb, path, problems)
                raise ApiError(400, "Invalid request for " + method.id + ": "
                               + "; ".join(map(str, problems)))
            handler = self._handlers.get(method.id)
            if handler is None:
                self.record(method.id, verb, path, [Problem("", "not-implemented",
                                                            "the double does not implement it")])
                raise ApiError(501, f"{method.id} is not implemented by the double",
                               status="UNIMPLEMENTED", reason="notImplemented")
            req = Request(method.id, verb, path, params, query, body, headers)
            with self.lock:
                return handler(req)
        except ApiError as err:
            return err.code, err.body()

    def _control(self, verb: str, path: str, raw: bytes) -> tuple[int, Any]:
        """A tiny HTTP control surface for processes that cannot reach the Python object."""
        if path == "/_double/state" and verb == "GET":
            return 200, {"calls": dict(self.calls), "faults": dict(self.faults),
                         "violations": [str(v) for v in self.violations],
                         "responseProblems": [str(v) for v in self.response_problems]}
        if path == "/_double/config" and verb == "POST":
            cfg = json.loads(raw or b"{}")
            if "latencyMs" in cfg:
                self.set_latency(cfg["latencyMs"])
            if "faultRate" in cfg:
                self.set_faults(cfg["faultRate"], tuple(cfg.get("faultStatuses") or ()) or None,
                                seed=cfg.get("seed"))
            if "opDurationS" in cfg:
                self.dataproc.set_run_outcome(duration_s=cfg["opDurationS"])
            return 200, {}
        if path == "/_double/reset" and verb == "POST":
            self.reset()
            return 200, {}
        return 404, ApiError(404, f"unknown control path {path}").body()
