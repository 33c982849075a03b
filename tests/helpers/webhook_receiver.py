"""A real HTTP receiver for notification tests: http.server on a thread, on 127.0.0.1:0.

Each path can be told what to answer, in order (`script("/teams", [500, 200])`: first 500, then
200), or to hang for a while before answering. Every request is kept (path, headers, JSON body).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: dict[str, list[int]] = {}
        self.hang_s: dict[str, float] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                with receiver.lock:
                    receiver.requests.append({"path": path, "query": self.path.partition("?")[2], "headers": dict(self.headers),
                                              "body": json.loads(raw or b"null")})
                    queue = receiver.answers.get(path) or []
                    status = queue.pop(0) if len(queue) > 1 else (queue[0] if queue else 200)
                    hang = receiver.hang_s.get(path, 0.0)
                if hang:
                    time.sleep(hang)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the client gave up (a timeout): nothing to answer
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, path: str, statuses: list[int]) -> None:
        self.answers[path] = list(statuses)

    def hang(self, path: str, seconds: float) -> None:
        self.hang_s[path] = seconds

    def at(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
