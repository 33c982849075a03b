"""A real `funnelops ui` for benches, screenshots and the browser tier: build a demo home, start the
server on a free port (ready when /api/status answers 200), stop it as Ctrl-C would.

Shared by bench/ui_page_load.py, bench/ui_screenshots.py and tests/browser/conftest.py, so the
three start the dashboard the same way: the console script in a subprocess, in the folder whose
funnelops.toml names the project and home, with this checkout's src first on PYTHONPATH.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FUNNELOPS = str(Path(sys.executable).with_name("funnelops"))
# Debian's chromium under Playwright: headless, no sandbox (containers), nothing that calls home
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DEMO_ROWS = "2000"  # enough for every chart and table; the demo takes ~20 s


def find_chromium() -> str | None:
    """FUNNELOPS_CHROMIUM (a path or a command name), else `chromium` on PATH."""
    given = os.environ.get("FUNNELOPS_CHROMIUM")
    if given:
        return given if Path(given).is_file() else shutil.which(given)
    return shutil.which("chromium")


def clean_env() -> dict[str, str]:
    """The environment for a funnelops subprocess: no FUNNELOPS_* of the caller (the demo's
    funnelops.toml names project and home), and this source tree first on PYTHONPATH, so the
    process runs the code under test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELOPS_")}
    env.update(NO_COLOR="1", PYTHONPATH=os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p))
    if "FUNNELOPS_WHEELHOUSE_DIR" in os.environ:
        env["FUNNELOPS_WHEELHOUSE_DIR"] = os.environ["FUNNELOPS_WHEELHOUSE_DIR"]
    return env


def build_demo(target: Path, rows: str = DEMO_ROWS) -> Path:
    """`funnelops demo --dir target`: the whole lifecycle on generated data (project, home, toml)."""
    proc = subprocess.run([FUNNELOPS, "--json", "demo", "--dir", str(target), "--rows", rows], cwd=target.parent,
                          env=clean_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"funnelops demo failed:\n{proc.stderr[-3000:]}"
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class UiServer:
    """A running `funnelops ui`: its base URL and a few plain HTTP helpers (no browser)."""

    url: str
    proc: subprocess.Popen
    log: Path

    def get(self, path: str) -> tuple[int, Any]:
        """(status, parsed JSON or text) of GET `path`."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as resp:
                return resp.status, _body(resp.read(), resp.headers.get_content_type())
        except urllib.error.HTTPError as exc:
            return exc.code, _body(exc.read(), exc.headers.get_content_type())

    def get_json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, f"GET {path}: {status} {body}"
        return body

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]


def _body(raw: bytes, content_type: str) -> Any:
    text = raw.decode("utf-8", errors="replace")
    return json.loads(text) if content_type == "application/json" else text


def start_ui(home_dir: Path, *args: str, timeout: float = 60) -> UiServer:
    """Start `funnelops ui --port P ARGS` in `home_dir` (where funnelops.toml is); wait until
    /api/status answers 200. Raises (with the server's output) if it exits or never answers."""
    port = free_port()
    log = home_dir.parent / f"ui-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([FUNNELOPS, "ui", "--port", str(port), *args], cwd=home_dir, env=clean_env(),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = UiServer(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"funnelops ui exited with {proc.returncode}:\n{server.output()}")
        try:
            if server.get("/api/status")[0] == 200:
                return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop_ui(server)
            raise AssertionError(f"funnelops ui did not answer /api/status within {timeout:.0f} s:\n{server.output()}")
        time.sleep(0.2)


def stop_ui(server: UiServer) -> int:
    """SIGINT (Ctrl-C) and wait; SIGKILL only if it has not stopped after 15 s. The exit code."""
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGINT)
        try:
            server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=15)
    return int(server.proc.returncode)
