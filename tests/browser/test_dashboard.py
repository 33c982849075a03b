"""The dashboard in a real browser, after `funnelops demo`: what people see and the Force button's promise.

Against the DOM contract (docs/ui.md): the lifecycle's three stages done, the runs table matching
the ledger, two quick clicks on Force giving exactly one run and one refusal naming the holder, a
run page followed to DONE with its logs, and a read-only server that shows no Force button and
refuses a POST even with a valid CSRF token.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from bench.ui_server import UiServer

NAV = ("/", "/runs", "/schedulers", "/lineage", "/plan")
SCHEDULER = "dia"  # the example's daily scheduler (funnel-dia)


def _run_ids(ui: UiServer) -> set[str]:
    return {str(r["id"]) for r in ui.get_json("/api/runs?limit=1000")}


def test_the_browser_reads_the_status_document(page: Any, ui: UiServer) -> None:
    """The tier's plumbing: Chromium reaches the real server, the API answers the demo's lifecycle."""
    resp = page.goto(ui.url + "/api/status")
    assert resp is not None and resp.status == 200
    doc = resp.json()
    assert [s["stage"] for s in doc["stages"]] == ["iac", "initial_data", "workflow"]
    assert all(s["done"] for s in doc["stages"])


def test_overview_shows_the_lifecycle_done_and_the_runs_render(page: Any, ui: UiServer) -> None:
    page.goto(ui.url + "/")
    for href in NAV:
        assert page.locator(f'nav a[href="{href}"]').count() == 1, f"nav link {href}"
    assert page.locator('meta[name="csrf-token"]').get_attribute("content")
    stages = page.locator("#lifecycle li.stage")
    assert [stages.nth(i).get_attribute("data-stage") for i in range(stages.count())] == \
        ["iac", "initial_data", "workflow"]
    done = page.locator("#lifecycle li.stage.done")
    assert done.count() == 3
    status = ui.get_json("/api/status")
    for st in status["stages"]:  # when and by whom, as the ledger says
        text = page.locator(f'#lifecycle li.stage[data-stage="{st["stage"]}"]').inner_text()
        assert st["actor"] and st["actor"] in text, (st, text)
    assert page.locator("#next-step").inner_text().strip()
    for w in status["templates"]:
        assert w["name"] in page.locator("#templates").inner_text()
    for chart in ("#chart-duration", "#chart-rows", "#chart-quarantine"):
        assert page.locator(f"{chart} table").count() >= 1, f"{chart}: the table fallback"

    page.goto(ui.url + "/runs")
    api = ui.get_json("/api/runs")
    rows = page.locator("table#runs tr.run")
    rows.first.wait_for()
    shown = {rows.nth(i).get_attribute("data-run-id"): rows.nth(i).get_attribute("data-state")
             for i in range(rows.count())}
    assert shown == {str(r["id"]): r["state"] for r in api}
    assert len(api) >= 3 and "DONE" in shown.values()


def _force_twice(page: Any, ui: UiServer) -> dict[str, Any]:
    """Two clicks on one scheduler's Force in the same JavaScript turn (no wait between), then the
    outcome: runs before/after, the POSTs the page sent, what #force-result shows."""
    before = _run_ids(ui)
    page.goto(ui.url + "/schedulers")
    button = page.locator(f'button.force[data-scheduler="{SCHEDULER}"]')
    assert button.count() == 1
    posts: list[Any] = []
    page.on("response", lambda r: posts.append(r) if r.request.method == "POST" and "/api/force" in r.url else None)
    button.evaluate("b => { b.click(); b.click(); }")
    deadline = time.monotonic() + 60
    while len(posts) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    result = page.locator("#force-result")
    try:  # the page renders the refusal once both answers are in
        page.wait_for_function("() => { const r = document.querySelector('#force-result');"
                               " return !!r && (r.classList.contains('refused') || !!r.querySelector('.refused')); }",
                               timeout=10_000)
    except Exception:
        pass  # the assertions say what is missing
    new = _run_ids(ui) - before
    shown = result.count() == 1
    return {"posts": [(r.status, r.json()) for r in posts], "new": new, "html": result.inner_html() if shown else "",
            "text": result.inner_text() if shown else "", "classes": (result.get_attribute("class") if shown else "") or ""}


@pytest.fixture(scope="module")
def forced(browser: Any, ui: UiServer) -> dict[str, Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        return _force_twice(context.new_page(), ui)
    finally:
        context.close()


def test_force_clicked_twice_quickly_starts_one_run_and_shows_one_refusal(forced: dict[str, Any]) -> None:
    statuses = sorted(s for s, _ in forced["posts"])
    assert len(forced["posts"]) == 2, ("the page must send both clicks (the lease refuses the second, not the page): "
                                       f"{forced['posts']}")
    assert statuses == [200, 409], forced["posts"]
    assert len(forced["new"]) == 1, forced["new"]
    run_id = next(iter(forced["new"]))
    refusal = next(body for s, body in forced["posts"] if s == 409)
    holder = refusal["details"]["holder"]
    assert str(holder["run_id"]) == run_id
    # the page shows the refusal with the holder's run id, and the started run's link
    assert "refused" in forced["classes"] + forced["html"], forced["html"]
    assert re.search(rf"\b{run_id}\b", forced["text"]), forced["text"]


def test_a_forced_run_is_followed_to_done_with_its_logs(page: Any, ui: UiServer, forced: dict[str, Any]) -> None:
    assert len(forced["new"]) == 1
    run_id = next(iter(forced["new"]))
    page.goto(f"{ui.url}/runs/{run_id}")
    state = page.locator("#run-state")
    # the page follows the run by itself (no reload): the state and the logs change in place
    page.wait_for_function("() => ['DONE', 'FAILED', 'CANCELLED', 'LOST'].includes("
                           "(document.querySelector('#run-state')?.dataset.state || '').toUpperCase())",
                           timeout=180_000)
    assert state.get_attribute("data-state") == "DONE", ui.get_json(f"/api/runs/{run_id}")
    assert "DONE" in state.inner_text().upper()
    page.wait_for_function("() => (document.querySelector('pre#logs')?.textContent || '').trim().length > 0")
    logs = page.locator("pre#logs").inner_text()
    assert "funnelops.flows" in logs or "flow" in logs.lower(), logs[:500]
    assert page.locator("table#flows tr.flow").count() >= 1
    assert page.locator("table#steps").count() == 1


def test_read_only_server_shows_no_buttons_and_refuses_a_post(page: Any, demo_dir: Path, ui_server: Any) -> None:
    ro = ui_server(demo_dir, "--read-only")
    page.goto(ro.url + "/schedulers")
    assert page.locator("tr.scheduler").count() == 4
    assert page.locator("button.force, button.pause, button.resume").count() == 0
    before = _run_ids(ro)
    # a POST as the page would send it (same origin, the CSRF token of the page): still refused
    answer = page.evaluate("""async (scheduler) => {
        const token = document.querySelector('meta[name="csrf-token"]')?.content || '';
        const r = await fetch('/api/force', {method: 'POST', credentials: 'same-origin',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': token},
            body: JSON.stringify({scheduler})});
        return {status: r.status, body: await r.json()};
    }""", SCHEDULER)
    assert answer["status"] == 403, answer
    assert "read-only" in answer["body"]["error"]
    assert _run_ids(ro) == before
