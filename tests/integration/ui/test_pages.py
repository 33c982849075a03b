"""The dashboard's pages on a real demo home, through Starlette's test client.

What is attacked: every page renders with the DOM contract's ids and classes (the browser tests
rely on them), the runs filter and the live fragment, a run followed from RUNNING to DONE, unknown
runs (a 404 page), hostile text (an actor recorded by a real force, query strings, and documents
whose every string is markup) rendering as text, read-only mode hiding the buttons, the charts'
tables holding exactly the numbers of `funnelops runs --json`, and the speed with 10,000 runs.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from funnelops.ui.app import create_app
from funnelops.ui.dashboard import Dashboard, UiSettings
from tests.helpers.ui_home import BASE_URL

FUNNELOPS = str(Path(sys.executable).with_name("funnelops"))
XSS = '<script>alert("pwned")</script>'
NAV = ("/", "/runs", "/schedulers", "/lineage", "/plan")


# -- a small DOM over the stdlib parser ---------------------------------------------------------
VOID = {"meta", "link", "br", "hr", "img", "input", "source", "col", "area", "base", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self) -> Iterator[Node]:
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.all()

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        """Descendants matching the tag, a class and attributes (`id_`, `data_state` -> data-state)."""
        want = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        return [n for n in self.all() if (tag is None or n.tag == tag) and (cls is None or cls in n.classes)
                and all(n.attrs.get(k) == v for k, v in want.items())]

    def one(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.find(tag, cls, **attrs)
        assert len(found) == 1, (tag, cls, attrs, len(found))
        return found[0]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.cur.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.cur))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.cur = node.parent

    def handle_data(self, data: str) -> None:
        self.cur.children.append(data)


def dom(html: str) -> Node:
    b = _Builder()
    b.feed(html)
    b.close()
    return b.root


# -- the demo home ------------------------------------------------------------------------------
def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELOPS_")}
    env["NO_COLOR"] = "1"
    return env


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`funnelops demo` once: the whole lifecycle done, seven runs, quarantined rows."""
    target = tmp_path_factory.mktemp("ui-pages") / "demo"
    proc = subprocess.run([FUNNELOPS, "--json", "demo", "--dir", str(target), "--rows", "2000"],
                          env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return target


def settings_for(demo: Path, **over: Any) -> UiSettings:
    return replace(UiSettings(project_path=demo / "project" / "funnel.yaml", home=demo / ".funnelops"), **over)


@pytest.fixture(scope="module")
def client(demo: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(demo)), base_url=BASE_URL) as c:
        yield c


def cli_json(demo: Path, *args: str) -> Any:
    proc = subprocess.run([FUNNELOPS, "--json", *args], cwd=demo, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def page(client: TestClient, url: str, status: int = 200) -> Node:
    resp = client.get(url)
    assert resp.status_code == status, (url, resp.status_code, resp.text[:2000])
    assert resp.headers["content-type"].startswith("text/html")
    return dom(resp.text)


def assert_frame(doc: Node) -> None:
    """What every page has: the nav's five links and the CSRF meta tag."""
    nav = doc.one("nav")
    assert [a.attrs["href"] for a in nav.find("a")] == list(NAV)
    assert len(doc.find("meta", name="csrf-token")) == 1


# -- every page, the contract's selectors ----------------------------------------------------------
def test_every_page_renders_with_the_contract_selectors(client):
    for url in (*NAV, "/runs/1"):
        assert_frame(page(client, url))
    ov = page(client, "/")
    assert [li.attrs["data-stage"] for li in ov.one(id="lifecycle").find("li", "stage")] == \
        ["iac", "initial_data", "workflow"]
    for sel in ("next-step", "templates", "active-runs", "chart-duration", "chart-rows", "chart-quarantine"):
        assert ov.find(id=sel), sel
    for chart in ("chart-duration", "chart-rows", "chart-quarantine"):
        box = ov.one(id=chart)
        assert box.find(cls="chart-canvas") and box.find("table"), chart
    runs = page(client, "/runs")
    form = runs.one("form", id="runs-filter")
    assert form.find("select", name="workflow") and form.find("select", name="state")
    assert runs.one("table", id="runs").find("tr", "run")
    run = page(client, "/runs/1")
    assert run.one(id="run-state").attrs["data-state"] == "DONE"
    assert run.find("table", id="steps") and run.find("table", id="flows") and run.find("pre", id="logs")
    sch = page(client, "/schedulers")
    assert sch.find("table", id="schedulers") and sch.find(id="force-result")
    assert {tr.attrs["data-scheduler-id"] for tr in sch.find("tr", "scheduler")} == {"dia", "mes", "anio",
                                                                                      "duplicado-mes"}
    assert page(client, "/lineage").find(id="lineage")
    assert page(client, "/plan").find(id="plan")


def test_static_files_are_served_without_a_cdn(client):
    for path in ("/static/app.css", "/static/app.js", "/static/charts.js", "/static/vendor/htmx.min.js",
                 "/static/vendor/uPlot.iife.min.js", "/static/vendor/uPlot.min.css"):
        assert client.get(path).status_code == 200, path
    for url in NAV:
        html = client.get(url).text
        for src in [n.attrs.get("src") or n.attrs.get("href") or "" for n in dom(html).find("script")
                    + dom(html).find("link")]:
            assert src.startswith(("/static/", "data:")) or not src, (url, src)  # nothing from another host
        assert "//cdn" not in html and "unpkg" not in html


def test_overview_shows_the_lifecycle_the_next_command_and_the_templates(client, demo):
    status = cli_json(demo, "status")
    ov = page(client, "/")
    for st, li in zip(status["stages"], ov.one(id="lifecycle").find("li", "stage"), strict=True):
        assert ("done" in li.classes) is st["done"] is True
        assert st["actor"] in li.text()
        assert li.one("time").attrs["datetime"].startswith(st["completed_at"][:19])
    assert ov.one(id="next-step").text() == status["next"]
    rows = {tr.attrs["data-template"]: tr for tr in ov.one(id="templates").find("tr", "template")}
    assert set(rows) == {t["name"] for t in status["templates"]}
    for t in status["templates"]:
        assert rows[t["name"]].one(cls="version").text() == str(t["version"])
        assert [c.text() for c in rows[t["name"]].find("code", "arg")] == t["args"]
    assert "No run in progress" in ov.one(id="active-runs").text()


# -- runs ---------------------------------------------------------------------------------------
def test_runs_table_holds_what_runs_json_says(client, demo):
    expected = cli_json(demo, "runs", "-n", "50")
    table = page(client, "/runs").one("table", id="runs")
    rows = table.find("tr", "run")
    assert [tr.attrs["data-run-id"] for tr in rows] == [str(r["id"]) for r in expected]
    for tr, r in zip(rows, expected, strict=True):
        assert tr.attrs["data-state"] == r["state"]
        assert tr.one(cls="workflow").text() == r["workflow"]
        for key in ("read", "kept", "quarantined"):
            assert tr.one(cls=key).text() == f"{r['rows'][key]:,}"
        assert tr.one("a").attrs["href"] == f"/runs/{r['id']}"
        assert tr.one(cls="started").one("time").attrs["datetime"][:19] == r["started_at"][:19]


def test_runs_filters_by_workflow_state_and_limit(client, demo):
    dia = cli_json(demo, "runs", "-w", "funnel-dia")
    doc = page(client, "/runs?workflow=funnel-dia")
    assert [tr.attrs["data-run-id"] for tr in doc.find("tr", "run")] == [str(r["id"]) for r in dia]
    assert doc.one("select", name="workflow").one("option", selected="").attrs["value"] == "funnel-dia"
    assert len(page(client, "/runs?limit=2").find("tr", "run")) == 2
    failed = page(client, "/runs?state=FAILED")
    assert not failed.find("tr", "run") and "matches this filter" in failed.one("table", id="runs").text()
    done = page(client, "/runs?state=done&workflow=funnel-mes")
    assert done.find("tr", "run") and {tr.attrs["data-state"] for tr in done.find("tr", "run")} == {"DONE"}
    # values no select can produce: ignored with a note, never a 500
    odd = page(client, "/runs?state=NOPE&limit=lots")
    assert "unknown state" in odd.text() and "not a number" in odd.text()
    assert len(odd.find("tr", "run")) == len(cli_json(demo, "runs", "-n", "50"))


def test_the_runs_fragment_is_the_live_table_alone(client):
    resp = client.get("/runs?fragment=1&workflow=funnel-mes&limit=25")
    assert resp.status_code == 200 and "<nav" not in resp.text and "<html" not in resp.text
    live = dom(resp.text).one(id="runs-live")
    assert live.attrs["hx-get"].startswith("/runs?") and "fragment=1" in live.attrs["hx-get"]
    assert "workflow=funnel-mes" in live.attrs["hx-get"] and "limit=25" in live.attrs["hx-get"]
    assert live.attrs["hx-swap"] == "outerHTML"
    assert live.attrs["data-live"] == "0" and live.attrs["hx-trigger"] != "every 2s"  # nothing running
    assert live.find("table", id="runs")


# -- one run ------------------------------------------------------------------------------------
def test_run_page_shows_steps_flows_rules_and_logs(client, demo):
    runs = cli_json(demo, "runs", "-n", "50")
    run = next(r for r in runs if r["rows"] and r["rows"]["quarantined"])
    doc = page(client, f"/runs/{run['id']}")
    assert doc.one(id="run-state").text() == run["state"]
    assert [tr.attrs["data-step-id"] for tr in doc.one("table", id="steps").find("tr", "step")] == \
        [s["step_id"] for s in run["steps"]]
    flows = [f for s in run["steps"] for f in (s.get("metrics") or {}).get("flows", [])]
    rows = doc.one("table", id="flows").find("tr", "flow")
    assert [tr.attrs["data-flow"] for tr in rows] == [f["flow"] for f in flows]
    for tr, f in zip(rows, flows, strict=True):
        assert (tr.attrs["data-read"], tr.attrs["data-kept"], tr.attrs["data-quarantined"]) == \
            (str(f["read"]), str(f["kept"]), str(f["quarantined"]))
        assert {s.attrs["data-rule"]: s.text() for s in tr.find("span", "rule")} == \
            {rule: f"{rule}: {n:,}" for rule, n in f["rules"].items()}
    logs = doc.one("pre", id="logs")
    assert logs.attrs["data-ended"] == "1"
    text = logs.text()
    assert text.startswith("==> ") and len(text) > 100
    follow = client.get(logs.attrs["data-url"]).json()  # the same document the page follows
    assert follow["ended"] is True and follow["state"] == run["state"]
    assert "".join(c["text"] for c in follow["chunks"]) in text


def test_unknown_run_is_a_404_page(client):
    hostile = "<img src=x onerror=alert(1)>"  # no slash: it reaches the run route
    for rid in ("999999", "no-such-run", hostile):
        resp = client.get(f"/runs/{rid}")
        assert resp.status_code == 404, rid
        doc = dom(resp.text)
        assert_frame(doc)
        assert rid in doc.one(id="not-found").text()
        assert hostile not in resp.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in client.get(f"/runs/{hostile}").text
    missing = client.get("/runs/999999/logs-fragment")
    assert missing.status_code == 404 and "no run 999999" in missing.json()["error"]


def test_a_forced_run_is_live_in_the_table_and_followed_to_done(demo):
    """A real force (the actor hostile markup): the fragment polls every 2 s while it runs, its page
    follows the logs until DONE, and the actor shows as text everywhere."""
    board = Dashboard(settings_for(demo))
    with TestClient(create_app(board.settings, board), base_url=BASE_URL) as c:
        result = board.force("mes", actor=XSS)
        run_id = str(next(j["detail"]["run"]["id"] for j in result["jobs"] if "run" in j.get("detail", {})))
        live = dom(c.get("/runs?fragment=1").text).one(id="runs-live")
        assert live.attrs["data-live"] == "1" and live.attrs["hx-trigger"] == "every 2s"
        assert dom(c.get("/").text).one(id="active-runs").find("li", "run", data_run_id=run_id)
        pre = dom(c.get(f"/runs/{run_id}").text).one("pre", id="logs")
        assert pre.attrs["data-ended"] == "0"
        cursor, text, states, deadline = pre.attrs["data-cursor"], pre.text(), [], time.monotonic() + 120
        while True:
            doc = c.get(pre.attrs["data-url"], params={"cursor": cursor}).json()
            text += "".join(c_["text"] for c_ in doc["chunks"])
            cursor = doc["cursor"]
            states.append(doc["state"])
            if doc["ended"] or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert states[-1] == "DONE", states
        assert "RUNNING" in states or "PENDING" in states  # it was followed while it ran
        full = c.get(pre.attrs["data-url"]).json()  # from the start: the followed text is all of it
        assert text == "".join(x["text"] for x in full["chunks"])
        final = c.get(f"/runs/{run_id}")
        assert dom(final.text).one(id="run-state").text() == "DONE"
        listing = c.get("/runs")
        assert XSS not in final.text and XSS not in listing.text
        assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in listing.text
        assert dom(c.get("/runs?fragment=1").text).one(id="runs-live").attrs["data-live"] == "0"


# -- escaping -----------------------------------------------------------------------------------
class HostileDashboard(Dashboard):
    """The real home's documents with markup in every string a project or a run can carry
    (workflow, flow, rule, SQL and table names, log text): what the templates must escape."""

    def _run(self) -> dict[str, Any]:
        run = dict(super().runs(limit=1)[0])
        flow = {"layer": XSS, "flow": XSS, "read": 3, "kept": 1, "quarantined": 2, "seconds": 0.5,
                "rules": {XSS: 2}, "warnings": [XSS], "skipped": XSS}
        return {**run, "id": XSS, "workflow": XSS, "trigger": XSS, "actor": XSS, "period": XSS, "error": XSS,
                "args": [XSS], "rows": {"read": 3, "kept": 1, "quarantined": 2, "flows": [flow]},
                "steps": [{"step_id": XSS, "main": XSS, "state": XSS, "prerequisites": [XSS],
                           "metrics": {"flows": [flow]}}]}

    def status(self) -> dict[str, Any]:
        st = super().status()
        st["stages"] = [{**s, "actor": XSS, "title": XSS} for s in st["stages"]]
        st["templates"] = [{"name": XSS, "exists": True, "version": XSS, "args": [XSS], "dynamic_args": [XSS]}]
        return {**st, "next": XSS, "project": XSS, "running": [self._run()]}

    def runs(self, workflow: str | None = None, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return [self._run()]

    def run(self, run_id: str) -> dict[str, Any] | None:
        return self._run()

    def logs(self, run_id: str, cursor: str | None = None) -> dict[str, Any]:
        return {"run": XSS, "workflow": XSS, "state": "DONE", "ended": True, "cursor": XSS, "console_url": None,
                "chunks": [{"source": XSS, "text": XSS, "first": True}]}

    def schedulers(self) -> list[dict[str, Any]]:
        return [{"name": XSS, "id": XSS, "workflow": XSS, "cron": XSS, "time_zone": XSS, "exists": True,
                 "paused": False, "next_fire": None, "last_fire": XSS}]

    def lineage(self) -> dict[str, Any]:
        return {"nodes": [{"id": XSS, "kind": "sql", "label": XSS, "detail": f"SELECT '{XSS}'", "rank": 0},
                          {"id": "view:" + XSS, "kind": XSS, "label": XSS, "rank": 1}],
                "edges": [{"from": XSS, "to": "view:" + XSS}]}

    def plan(self) -> dict[str, Any]:
        return {"env": XSS, "stage": XSS, "backend": XSS, "summary": {XSS: 1},
                "changes": [{"address": XSS, "kind": XSS, "name": XSS, "action": "update", "reason": XSS,
                             "fields": [{"field": XSS, "before": XSS, "after": f"SELECT '{XSS}'"}]}]}


def test_hostile_names_render_as_text_on_every_page(demo):
    board = HostileDashboard(settings_for(demo))
    with TestClient(create_app(board.settings, board), base_url=BASE_URL) as c:
        for url in (*NAV, "/runs/1", "/runs?fragment=1", f"/runs?workflow={XSS}"):
            resp = c.get(url)
            assert resp.status_code == 200, (url, resp.text[:1000])
            assert XSS not in resp.text and "<script>alert" not in resp.text, url
            assert "alert(" in resp.text, url  # the text is there, escaped
            assert not [n for n in dom(resp.text).find("script") if not n.attrs.get("src")], url  # no inline code
        rule = dom(c.get("/").text).one(id="chart-quarantine").one("tr", "rule")
        assert rule.attrs["data-rule"] == XSS and rule.find("td")[0].text() == XSS  # escaped, not mangled
        lineage = dom(c.get("/lineage").text)
        assert {n.attrs["data-id"] for n in lineage.find("g", "node")} == {XSS, "view:" + XSS}
        assert len(lineage.find("path", "edge")) == 1


# -- read-only, schedulers -----------------------------------------------------------------------
def test_read_only_hides_the_buttons(demo, client):
    doc = page(client, "/schedulers")
    for tr in doc.find("tr", "scheduler"):
        sid = tr.attrs["data-scheduler-id"]
        assert tr.find("button", "force", data_scheduler=sid)
        assert len(tr.find("button", "pause", data_scheduler=sid) + tr.find("button", "resume", data_scheduler=sid)) == 1
    with TestClient(create_app(settings_for(demo, read_only=True)), base_url=BASE_URL) as ro:
        doc = page(ro, "/schedulers")
        assert doc.find("tr", "scheduler") and not doc.find("button")
        assert "read-only" in doc.text()


def test_schedulers_show_cron_zone_fires_and_paused(client, demo):
    expected = {s["id"]: s for s in cli_json(demo, "scheduler", "list")}
    board: Dashboard = client.app.state.dashboard  # type: ignore[attr-defined]
    board.set_paused("anio", True)
    try:
        rows = {tr.attrs["data-scheduler-id"]: tr for tr in page(client, "/schedulers").find("tr", "scheduler")}
        for sid, s in expected.items():
            tr = rows[sid]
            assert tr.one(cls="cron").text() == s["cron"] and tr.one(cls="zone").text() == s["time_zone"]
            if s["last_fire"]:
                assert tr.one(cls="last-fire").one("time").attrs["datetime"][:19] == s["last_fire"][:19]
        assert rows["anio"].attrs["data-paused"] == "1" and rows["anio"].find("button", "resume")
        assert rows["anio"].one(cls="next-fire").text() == "-"  # a paused scheduler never fires
        assert rows["dia"].attrs["data-paused"] == "0" and rows["dia"].find("button", "pause")
        assert rows["dia"].one(cls="next-fire").one("time").attrs["datetime"] == expected["dia"]["next_fire"]
    finally:
        board.set_paused("anio", False)


# -- charts -------------------------------------------------------------------------------------
def _seconds(run: dict[str, Any]) -> float:
    return round((datetime.fromisoformat(run["ended_at"]) - datetime.fromisoformat(run["started_at"])).total_seconds(), 3)


def test_chart_tables_hold_the_numbers_of_runs_json(client, demo):
    runs = cli_json(demo, "runs", "-n", "200")
    ov = page(client, "/")
    duration = {tr.attrs["data-run-id"]: float(tr.attrs["data-seconds"])
                for tr in ov.one(id="chart-duration").one("table").find("tr") if "data-run-id" in tr.attrs}
    assert duration == {str(r["id"]): _seconds(r) for r in runs if r["ended_at"]}
    rows = {tr.attrs["data-run-id"]: (int(tr.attrs["data-read"]), int(tr.attrs["data-kept"]))
            for tr in ov.one(id="chart-rows").one("table").find("tr") if "data-run-id" in tr.attrs}
    assert rows == {str(r["id"]): (r["rows"]["read"], r["rows"]["kept"]) for r in runs if r["rows"]}
    by_rule: dict[str, int] = {}
    for r in runs:
        for s in r["steps"]:
            for f in (s.get("metrics") or {}).get("flows", []):
                for rule, n in f["rules"].items():
                    by_rule[rule] = by_rule.get(rule, 0) + n
    table = {tr.attrs["data-rule"]: (int(tr.attrs["data-quarantined"]), float(tr.attrs["data-share"]))
             for tr in ov.one(id="chart-quarantine").find("tr", "rule")}
    total = sum(by_rule.values())
    assert total > 0 and table == {k: (n, round(100 * n / total, 1)) for k, n in by_rule.items() if n}
    for tr in ov.one(id="chart-duration").one("table").find("tr"):  # the chart draws these rows
        if "data-run-id" in tr.attrs:
            run = next(r for r in runs if str(r["id"]) == tr.attrs["data-run-id"])
            assert abs(float(tr.attrs["data-t"]) - datetime.fromisoformat(run["started_at"]).timestamp()) < 1e-3


# -- lineage and plan -----------------------------------------------------------------------------
class SampleLineage(Dashboard):
    """A partial lineage document, as an older or newer `collect_lineage` might give."""

    def lineage(self) -> dict[str, Any]:
        return {"nodes": [{"id": "bucket:raw", "kind": "bucket", "label": "raw", "rank": 0},
                          {"id": "flow:leads", "kind": "flow", "rank": 1},  # no label: shows the id
                          {"id": "table:t.leads", "kind": "table", "label": "t.leads"},  # no rank: by kind
                          {"id": "sql:funnel.sql", "kind": "sql", "label": "x" * 80, "rank": 3},
                          {"id": "view:r.v", "kind": "view", "label": "r.v", "rank": 4},
                          {"kind": "view", "label": "no id"}, "not a node"],
                "edges": [{"from": "bucket:raw", "to": "flow:leads"}, {"from": "flow:leads", "to": "table:t.leads"},
                          {"from": "table:t.leads", "to": "sql:funnel.sql"}, {"from": "sql:funnel.sql", "to": "view:r.v"},
                          {"from": "sql:funnel.sql", "to": "nowhere"}, {"to": "view:r.v"}, "not an edge"]}


def test_lineage_page_draws_rows_nodes_and_edges(demo):
    board = SampleLineage(settings_for(demo))
    with TestClient(create_app(board.settings, board), base_url=BASE_URL) as c:
        svg = page(c, "/lineage").one(id="lineage").one("svg")
    nodes = {g.attrs["data-id"]: g for g in svg.find("g", "node")}
    assert set(nodes) == {"bucket:raw", "flow:leads", "table:t.leads", "sql:funnel.sql", "view:r.v"}
    assert {g.attrs["data-kind"] for g in nodes.values()} == {"bucket", "flow", "table", "sql", "view"}
    assert nodes["flow:leads"].one("text").text() == "flow:leads"
    assert nodes["sql:funnel.sql"].one("text").text().endswith("…")  # cut, the full label in <title>
    assert nodes["sql:funnel.sql"].one("title").text() == "x" * 80
    ys = [float(nodes[n].attrs["transform"].split(",")[1].rstrip(")"))
          for n in ("bucket:raw", "flow:leads", "table:t.leads", "sql:funnel.sql", "view:r.v")]
    assert ys == sorted(ys) and len(set(ys)) == 5  # one row each, top to bottom
    assert [(p.attrs["data-from"], p.attrs["data-to"]) for p in svg.find("path", "edge")] == [
        ("bucket:raw", "flow:leads"), ("flow:leads", "table:t.leads"), ("table:t.leads", "sql:funnel.sql"),
        ("sql:funnel.sql", "view:r.v")]


def test_lineage_page_on_the_real_project(client, demo):
    doc = page(client, "/lineage")
    expected = Dashboard(settings_for(demo)).lineage()  # `funnelops lineage --json`'s document
    assert {n["kind"] for n in expected["nodes"]} >= {"bucket", "flow", "table", "sql"}
    assert {g.attrs["data-id"] for g in doc.find("g", "node")} == {n["id"] for n in expected["nodes"]}
    assert len(doc.find("path", "edge")) == len(expected["edges"])


def test_plan_page_shows_no_changes_then_the_change_of_an_edited_project(demo):
    with TestClient(create_app(settings_for(demo)), base_url=BASE_URL) as c:
        doc = page(c, "/plan")
        assert doc.one(id="plan").attrs["data-stage"] == "workflow"
        assert doc.find(id="plan-no-changes") and not doc.find("tr", "change")
    project = demo / "project" / "funnel.yaml"
    original = project.read_text()
    project.write_text(original.replace('cron: "0 6 * * *"', 'cron: "30 5 * * *"'))
    try:
        with TestClient(create_app(settings_for(demo)), base_url=BASE_URL) as c:
            doc = page(c, "/plan")
    finally:
        project.write_text(original)
    assert not doc.find(id="plan-no-changes")
    changes = doc.one(id="plan").find("tr", "change")
    assert [(tr.attrs["data-action"], tr.attrs["data-address"]) for tr in changes] == [("update", "scheduler.dia")]
    assert "30 5 * * *" in changes[0].text()


def test_a_running_dashboard_follows_edits_of_the_project(demo, monkeypatch):
    """One server while the operator edits: the plan shows the edit without a restart, a broken
    edit is an error naming the file (not a stale project), and the repair is seen again."""
    from funnelops.ui import dashboard

    monkeypatch.setattr(dashboard, "RELOAD_CHECK_S", 0.0)
    project = demo / "project" / "funnel.yaml"
    original = project.read_text()
    with TestClient(create_app(settings_for(demo)), base_url=BASE_URL) as c:
        try:
            assert page(c, "/plan").find(id="plan-no-changes")
            project.write_text(original.replace('cron: "0 6 * * *"', 'cron: "30 5 * * *"'))
            changes = page(c, "/plan").one(id="plan").find("tr", "change")
            assert [tr.attrs["data-address"] for tr in changes] == ["scheduler.dia"]
            project.write_text(original.replace("schedulers:", "schedulers: [oops", 1))
            broken = c.get("/api/status")
            assert broken.status_code == 400 and "funnel.yaml" in broken.json()["error"]
        finally:
            project.write_text(original)
        assert c.get("/api/status").status_code == 200
        assert page(c, "/plan").find(id="plan-no-changes")


# -- speed ----------------------------------------------------------------------------------------
def test_overview_and_runs_read_a_bounded_window_of_10000_runs(demo, tmp_path):
    """A copy of the demo home with 10,000 runs in its ledger: the pages read only the newest (the
    speed itself is measured by bench/ui_page_load.py, not asserted here)."""
    from funnelops.ui.views.charts import WINDOW

    home = tmp_path / "big"
    shutil.copytree(demo, home, ignore=shutil.ignore_patterns("*.lock"))
    with sqlite3.connect(home / ".funnelops" / "ledger.sqlite") as con:
        cols = [r[1] for r in con.execute("PRAGMA table_info(runs)") if r[1] != "id"]
        src = con.execute("SELECT MAX(id) FROM runs").fetchone()[0]
        have = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        con.executemany(f"INSERT INTO runs ({', '.join(cols)}) SELECT {', '.join(cols)} FROM runs WHERE id = ?",
                        [(src,)] * (10_000 - have))
        newest = con.execute("SELECT MAX(id) FROM runs").fetchone()[0]
    with TestClient(create_app(settings_for(home)), base_url=BASE_URL) as c:
        assert len(page(c, "/runs?limit=500").find("tr", "run")) == 500
        first = page(c, "/runs").one("table", id="runs").find("tr", "run")
        assert len(first) == 50 and first[0].attrs["data-run-id"] == str(newest)
        overview = page(c, "/")
        assert len(overview.one(id="chart-duration").find("tr")) <= WINDOW + 1  # the header and the window
        for url in ("/runs?fragment=1", "/runs?state=DONE&workflow=funnel-dia"):
            page(c, url)


def test_lineage_layout_puts_a_source_just_above_what_it_feeds_and_orders_rows_by_their_feeds():
    """The trusted bucket (nothing reaches it) is drawn in the row above its tables, not in the raw
    bucket's row where its edges would cross the flows; a row follows the order of what feeds it."""
    from funnelops.ui.views.lineage_svg import layout

    doc = {"nodes": [{"id": "raw", "kind": "bucket", "rank": 0}, {"id": "trusted", "kind": "bucket", "rank": 0},
                     {"id": "f1", "kind": "flow", "rank": 1}, {"id": "f2", "kind": "flow", "rank": 1},
                     {"id": "t2", "kind": "table", "rank": 2}, {"id": "t1", "kind": "table", "rank": 2}],
           "edges": [{"from": "raw", "to": "f1"}, {"from": "raw", "to": "f2"}, {"from": "f1", "to": "t1"},
                     {"from": "f2", "to": "t2"}, {"from": "trusted", "to": "t1"}, {"from": "trusted", "to": "t2"},
                     {"from": "t1", "to": "ghost"}]}
    g = layout(doc)
    at = {n["id"]: (n["x"], n["y"]) for n in g["nodes"]}
    assert at["trusted"][1] == at["f1"][1] > at["raw"][1]
    assert at["t1"][0] < at["t2"][0]  # t1 is fed by f1, the first flow
    assert len(g["edges"]) == 6  # the edge to an unknown node is dropped
    assert all(n["x"] + n["w"] <= g["width"] and n["y"] + n["h"] <= g["height"] for n in g["nodes"])


class ChattyRun(Dashboard):
    """A run whose log has grown past what one page answer shows (3.25 MB of new text at once)."""

    def logs(self, run_id: str, cursor: str | None = None) -> dict[str, Any]:
        doc = super().logs(run_id, cursor)
        big = "".join(f"line {i:07d}\n" for i in range(250_000))  # 3,250,000 characters
        return {**doc, "chunks": [{"source": "a.log", "text": "head\n", "first": True},
                                  {"source": "b.log", "text": big, "first": True}], "cursor": "AFTER"}


def test_a_huge_log_reaches_the_run_page_as_its_end_with_a_note_and_the_cursor_moves_past_it(demo):
    """Before: the whole new text went out in one answer (a chatty run froze the browser)."""
    from funnelops.ui.pages import PAGE_LOG_CHARS

    board = ChattyRun(settings_for(demo))
    run_id = str(cli_json(demo, "runs")[0]["id"])
    with TestClient(create_app(board.settings, board), base_url=BASE_URL) as c:
        doc = c.get(f"/runs/{run_id}/logs-fragment").json()
        html = c.get(f"/runs/{run_id}").text
    text = "".join(ch["text"] for ch in doc["chunks"])
    assert doc["cursor"] == "AFTER" and doc["left_out"] == 5 + 3_250_000 - PAGE_LOG_CHARS
    assert text.startswith("[funnelops: ") and f"funnelops logs {run_id}" in text
    assert text.endswith("line 0249999\n") and "head\n" not in text  # the end is shown, the start left out
    assert len(text) < PAGE_LOG_CHARS + 200
    assert "line 0249999" in html and "line 0000000" not in html and "characters left out here" in html
