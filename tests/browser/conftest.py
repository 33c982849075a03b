"""The browser tier: the dashboard in headless Chromium, served by a real `funnelops ui` process.

Debian's `chromium` package (`.ci/run` installs it) driven by Playwright's sync API through
`executable_path`, so no browser is downloaded. The tier skips, saying why, only where Chromium or
Playwright cannot be found; under CI=true a missing Chromium is a failure (CI installs it), unless
`.ci/run` recorded in FUNNELOPS_NO_CHROMIUM that it could not install one.

Fixtures: `demo_dir` (one `funnelops demo` for the session), `ui` (a `funnelops ui` subprocess on
it: started on a free port, ready when /api/status answers 200, stopped with SIGINT as Ctrl-C
would), `ui_server` (a factory, e.g. for a `--read-only` server beside it), `browser` and `page`
(a fresh context per test: no cookie or CSRF token leaks from one test to the next).
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FUNNELOPS = str(Path(sys.executable).with_name("funnelops"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DEMO_ROWS = "2000"  # enough for every chart and table; the demo takes ~20 s


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.browser)


def _unavailable(reason: str) -> None:
    """Skip the tier saying why; under CI=true fail instead (CI installs what the tier needs)."""
    told = os.environ.get("FUNNELOPS_NO_CHROMIUM")
    if told:
        pytest.skip(f"browser tier skipped: {told}")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tier: {reason}; CI installs it (.ci/run), so this is a failure, not a skip",
                    pytrace=False)
    pytest.skip(f"browser tier skipped: {reason}")


def find_chromium() -> str | None:
    """FUNNELOPS_CHROMIUM (a path or a command name), else `chromium` on PATH."""
    given = os.environ.get("FUNNELOPS_CHROMIUM")
    if given:
        return given if Path(given).is_file() else shutil.which(given)
    return shutil.which("chromium")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        _unavailable("no Chromium found (install Debian's `chromium`, or set FUNNELOPS_CHROMIUM to its path)")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    """Chromium launched once per session. Playwright gives every launch a fresh temporary profile
    (its own --user-data-dir, removed at close): nothing from a previous run or the user's profile."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install -e '.[dev]')")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS, timeout=60_000)
    except Exception as exc:  # a Chromium that does not start is this tier's failure, said plainly
        pw.stop()
        pytest.fail(f"Chromium at {chromium_path} did not start under Playwright: {exc}", pytrace=False)
    try:
        yield b
    finally:
        b.close()
        pw.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in a context of its own, failing the test on any uncaught JavaScript error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield p
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


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


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo(tmp_path_factory.mktemp("ui-demo") / "demo")


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


@pytest.fixture(scope="session")
def ui_server() -> Iterator[Callable[..., UiServer]]:
    """start(home_dir, *args) -> UiServer; every server started is stopped at the session's end."""
    started: list[UiServer] = []

    def start(home_dir: Path, *args: str) -> UiServer:
        started.append(start_ui(home_dir, *args))
        return started[-1]

    yield start
    for server in started:
        stop_ui(server)


@pytest.fixture(scope="session")
def ui(demo_dir: Path, ui_server: Callable[..., UiServer]) -> UiServer:
    """The dashboard of the session's demo (read-write, localhost: no token)."""
    return ui_server(demo_dir)
