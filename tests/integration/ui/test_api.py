"""The dashboard's JSON API on a real local home (issue 14): every GET equals the CLI's `--json`
document for the same home, logs page by cursor, bad parameters are 400 naming the parameter,
unknown runs 404, a second Force while the workflow runs is 409 naming the holder (also when the
holder was started by another process), pause/resume round-trip, read-only refuses. Last, the real
`funnelops ui` server over real HTTP: served, stopped by Ctrl-C with exit 0; a busy port is exit 2.
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import threading
import time
from typing import Any

import httpx2 as httpx
import pytest

from funnelops.ui.app import create_app
from tests.helpers.ui_home import FUNNELOPS, Home, clean_env, client, csrf, wait_ended

pytestmark = pytest.mark.slow


@pytest.fixture
def api(ui_demo: Home, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("FUNNELOPS_ACTOR", "tester@box")  # the OS user the localhost dashboard acts as
    with client(create_app(ui_demo.settings())) as c:
        yield c


# -- reads: the CLI's documents --------------------------------------------------------------------
def test_every_get_equals_the_clis_json_for_the_same_home(ui_demo: Home, api: Any) -> None:
    assert api.get("/api/status").json() == ui_demo.cli_json("status")
    assert api.get("/api/schedulers").json() == ui_demo.cli_json("scheduler", "list")
    assert api.get("/api/plan").json() == ui_demo.cli_json("plan")  # the last completed stage's plan
    cli_runs = ui_demo.cli_json("runs", "--limit", "20")
    assert api.get("/api/runs?limit=20").json() == cli_runs and len(cli_runs) >= 5
    assert api.get(f"/api/runs/{cli_runs[-1]['id']}").json() == cli_runs[-1]
    of_one = api.get("/api/runs", params={"workflow": "funnel-mes"}).json()
    assert of_one == ui_demo.cli_json("runs", "--workflow", "funnel-mes") and of_one
    assert api.get("/api/lineage").json() == ui_demo.cli_json("lineage")


def test_runs_filter_by_state_before_the_limit(ui_demo: Home, api: Any) -> None:
    every = ui_demo.cli_json("runs", "--limit", "1000")
    done = [r for r in every if r["state"] == "DONE"]
    assert api.get("/api/runs?state=DONE&limit=1000").json() == done and done
    assert api.get("/api/runs?state=done&limit=2").json() == done[:2]  # any case; newest first
    assert api.get("/api/runs?state=FAILED").json() == [r for r in every if r["state"] == "FAILED"]
    assert api.get("/api/runs?limit=1").json() == every[:1]


@pytest.mark.parametrize("query,names", [
    ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=abc", "limit"), ("limit=-1", "limit"), ("limit=", "limit"),
    ("state=BOGUS", "state"), ("state=DONE;DROP", "state"), ("workflow=nope", "workflow"),
    ("workflow=funnel-dia%27--", "workflow"), ("stat=DONE", "stat"),
])
def test_bad_query_parameters_are_400_naming_the_parameter(api: Any, query: str, names: str) -> None:
    r = api.get(f"/api/runs?{query}")
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) >= {"error", "hint", "details"} and names in body["error"]


def test_unknown_runs_and_routes_are_404(api: Any) -> None:
    for url in ("/api/runs/999999", "/api/runs/999999/logs", "/api/runs/abc", "/api/runs/1%20OR%201=1/logs",
                "/api/nothing-here"):
        r = api.get(url)
        assert r.status_code == 404 and r.json()["error"], url


def test_logs_page_by_cursor_and_the_pieces_join_to_the_whole_log(ui_demo: Home, api: Any) -> None:
    forced = api.post("/api/force", json={"scheduler": "Mes"}, headers=csrf(api))
    assert forced.status_code == 200, forced.text
    run_id = forced.json()["jobs"][0]["detail"]["run"]["id"]
    texts: dict[str, str] = {}
    cursor, answers, deadline = None, 0, time.monotonic() + 180
    while time.monotonic() < deadline:
        doc = api.get(f"/api/runs/{run_id}/logs", params={"cursor": cursor} if cursor else {}).json()
        answers += bool(doc["chunks"])
        for chunk in doc["chunks"]:
            assert chunk["first"] == (chunk["source"] not in texts)  # `first` once per source
            texts[chunk["source"]] = texts.get(chunk["source"], "") + chunk["text"]
        cursor = doc["cursor"]
        if doc["ended"]:
            break
        time.sleep(0.05)
    assert doc["ended"] and doc["state"] == "DONE" and doc["run"] == str(run_id)
    lines = [json.loads(x) for x in ui_demo.cli("logs", str(run_id), "--json").stdout.splitlines()][:-1]
    whole: dict[str, str] = {}
    for line in lines:
        whole[line["source"]] = whole.get(line["source"], "") + line["text"]
    assert texts == whole and all(whole.values())  # no piece lost, none repeated
    assert api.get(f"/api/runs/{run_id}/logs", params={"cursor": cursor}).json()["chunks"] == []
    print(f"logs of run {run_id} came in {answers} non-empty piece(s)")


@pytest.mark.parametrize("cursor", ["%%%not-base64", base64.urlsafe_b64encode(b"[1,2]").decode(),
                                    base64.urlsafe_b64encode(b'{"offsets": {"funnel-flows.log": -5}}').decode(),
                                    base64.urlsafe_b64encode(b'{"offsets": {"funnel-flows.log": "x"}}').decode()])
def test_a_forged_cursor_is_400_not_a_crash(api: Any, cursor: str) -> None:
    r = api.get("/api/runs/1/logs", params={"cursor": cursor})
    assert r.status_code == 400 and "cursor" in r.json()["error"], r.text


# -- actions ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("body,status,word", [
    (b"not json", 400, "JSON"), (b"[1]", 400, "object"), (b"{}", 400, "scheduler"),
    (b'{"scheduler": 3}', 400, "scheduler"), (b'{"scheduler": "Dia", "period": 5}', 400, "period"),
    (b'{"scheduler": "nope"}', 400, "unknown scheduler"), (b'{"scheduler": "dia", "period": "1999-99-99"}', 400, ""),
    (b'{"scheduler": "dia", "when": "now"}', 400, "when"),
])
def test_a_bad_force_is_400_and_starts_nothing(ui_demo: Home, api: Any, body: bytes, status: int, word: str) -> None:
    before = api.get("/api/runs?limit=1").json()
    r = api.post("/api/force", content=body, headers={**csrf(api), "Content-Type": "application/json"})
    assert r.status_code == status and word in r.json()["error"], r.text
    assert api.get("/api/runs?limit=1").json() == before


def test_pause_and_resume_round_trip_through_the_schedulers_document(ui_demo: Home, api: Any) -> None:
    try:
        r = api.post("/api/schedulers/Mes/pause", headers=csrf(api))
        assert r.status_code == 200 and r.json() == {"scheduler": "mes", "paused": True}
        mes = next(s for s in api.get("/api/schedulers").json() if s["id"] == "mes")
        assert mes["paused"] is True
        assert next(s for s in ui_demo.cli_json("scheduler", "list") if s["id"] == "mes")["paused"] is True
    finally:
        r = api.post("/api/schedulers/mes/resume", headers=csrf(api))
    assert r.status_code == 200 and r.json() == {"scheduler": "mes", "paused": False}
    assert next(s for s in api.get("/api/schedulers").json() if s["id"] == "mes")["paused"] is False
    missing = api.post("/api/schedulers/nope/pause", headers=csrf(api))
    assert missing.status_code == 404 and "unknown scheduler" in missing.json()["error"]


def test_read_only_refuses_force_pause_and_resume_and_starts_nothing(ui_demo: Home) -> None:
    with client(create_app(ui_demo.settings(read_only=True))) as c:
        before = c.get("/api/runs?limit=1").json()
        for url, body in (("/api/force", {"scheduler": "dia"}), ("/api/schedulers/dia/pause", None),
                          ("/api/schedulers/dia/resume", None)):
            r = c.post(url, json=body, headers=csrf(c))
            assert r.status_code == 403 and r.json()["error"] == "read-only dashboard", url
        assert c.get("/api/runs?limit=1").json() == before
        assert c.get("/api/schedulers").status_code == 200


# -- the lease: one run, one refusal naming the holder ------------------------------------------
def test_two_forces_at_once_start_one_run_and_the_other_is_409_naming_it(tiny: tuple[Home, Any],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    home, _gate = tiny
    monkeypatch.setenv("FUNNELOPS_ACTOR", "ana@box")
    before = {r["id"] for r in home.cli_json("runs")}
    with client(create_app(home.settings())) as c:
        headers, barrier, answers = csrf(c), threading.Barrier(2), []

        def force() -> None:
            barrier.wait(10)
            answers.append(c.post("/api/force", json={"scheduler": "Día"}, headers=headers))
        threads = [threading.Thread(target=force) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        ok = [a for a in answers if a.status_code == 200]
        refused = [a for a in answers if a.status_code == 409]
        assert len(ok) == 1 and len(refused) == 1, [(a.status_code, a.text) for a in answers]
        run = ok[0].json()["jobs"][0]["detail"]["run"]
        assert run["actor"] == "ana@box (ui)" and run["trigger"] == "forced"
        holder = refused[0].json()["details"]["holder"]
        assert holder["run_id"] == run["id"] and holder["actor"] == "ana@box (ui)" and holder["acquired_at"]
        assert f"run {run['id']}" in refused[0].json()["error"] and refused[0].json()["kind"] == "run_in_progress"
        again = c.post("/api/force", json={"scheduler": "dia"}, headers=headers)  # still running: refused again
        assert again.status_code == 409 and again.json()["details"]["holder"]["run_id"] == run["id"]
    assert {r["id"] for r in home.cli_json("runs")} - before == {run["id"]}  # one run, no half-made second


def test_a_force_while_a_cli_started_run_holds_the_lease_is_409_naming_that_run(tiny: tuple[Home, Any]) -> None:
    home, gate = tiny
    started = home.cli("pipeline", "workflow", "--scheduler", "dia", "--json", FUNNELOPS_ACTOR="cli-operator",
                       STEP_GATE=str(gate))  # another process; its run waits at the gate, holding the lease
    cli_run = json.loads(started.stdout)["jobs"][0]["detail"]["run"]
    with client(create_app(home.settings())) as c:
        r = c.post("/api/force", json={"scheduler": "Día"}, headers=csrf(c))
        assert r.status_code == 409, r.text
        holder = r.json()["details"]["holder"]
        assert holder["run_id"] == cli_run["id"] and holder["actor"] == "cli-operator"
        assert holder["acquired_at"] and holder["trigger"] == "forced"
        gate.touch()
        assert wait_ended(c, cli_run["id"])["state"] == "DONE"
        after = c.post("/api/force", json={"scheduler": "dia"}, headers=csrf(c))  # the lease is free again
        assert after.status_code == 200, after.text


def test_a_force_records_the_signed_in_user(tiny: tuple[Home, Any]) -> None:
    home, gate = tiny
    gate.touch()
    token = "a-token-long-enough-for-the-test"
    app = create_app(home.settings(host="0.0.0.0", token=token))
    with client(app, base_url="http://10.9.8.7:8400") as c:
        assert c.post("/api/force", json={"scheduler": "dia"}).status_code == 401  # no token, nothing started
        assert c.get(f"/login?token={token}&user=maria").status_code == 303
        r = c.post("/api/force", json={"scheduler": "dia"}, headers=csrf(c))
        assert r.status_code == 200, r.text
        assert r.json()["jobs"][0]["detail"]["run"]["actor"] == "maria (ui)"


# -- the real server ---------------------------------------------------------------------------------
def _start(home: Home, *args: str) -> tuple[subprocess.Popen, dict[str, Any]]:
    proc = subprocess.Popen([FUNNELOPS, "ui", "--port", "0", "--json", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=clean_env(FUNNELOPS_PROJECT=str(home.project), FUNNELOPS_HOME=str(home.home)))
    line = proc.stdout.readline() if proc.stdout else ""
    assert line, proc.stderr.read() if proc.stderr else ""
    return proc, json.loads(line)


def _stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


def test_funnelops_ui_serves_over_http_and_ctrl_c_is_exit_0(ui_demo: Home) -> None:
    proc, info = _start(ui_demo)
    try:
        assert info["event"] == "serving" and info["url"] == f"http://127.0.0.1:{info['port']}/"
        assert info["home"] == str(ui_demo.home) and info["backend"] == "local" and info["token_required"] is False
        status = httpx.get(f"{info['url']}api/status", timeout=30)
        assert status.status_code == 200 and status.json()["home"] == str(ui_demo.home)
    finally:
        code, err = _stop(proc)
    assert code == 0 and "Traceback" not in err, err
    assert "Ctrl-C to stop" in err and "dashboard stopped" in err


def test_funnelops_ui_beyond_localhost_prints_a_token_url_and_requires_it(ui_demo: Home) -> None:
    proc, info = _start(ui_demo, "--host", "0.0.0.0")
    try:
        assert info["token_required"] is True and "/login?token=" in info["url"]
        token = info["url"].split("token=", 1)[1]
        base = f"http://127.0.0.1:{info['port']}"
        assert httpx.get(f"{base}/api/status", timeout=30).status_code == 401
        ok = httpx.get(f"{base}/api/status", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert ok.status_code == 200
    finally:
        code, err = _stop(proc)
    assert code == 0, err


def test_funnelops_ui_on_a_busy_port_is_exit_2_naming_the_port(ui_demo: Home) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = ui_demo.cli("ui", "--port", str(port), code=2)
    assert f"port {port} on 127.0.0.1 is already in use" in r.stderr and "--port" in r.stderr
    assert "Traceback" not in r.stderr
    short = ui_demo.cli("ui", "--token", "short", code=2)
    assert "--token is too short" in short.stderr
