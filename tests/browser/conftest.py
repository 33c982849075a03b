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

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.ui_server import CHROMIUM_ARGS, UiServer, build_demo, find_chromium, start_ui, stop_ui


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


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo(tmp_path_factory.mktemp("ui-demo") / "demo")


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
