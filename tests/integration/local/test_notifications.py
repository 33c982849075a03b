"""`notifications:` on the real local backend: supervisor processes, SQLite, a real HTTP receiver.

One home, runs in order: a DONE initial load (only the `on: [done]` channel hears it), a FAILED
forced run (webhook, Slack and Teams each get one payload with the run's facts; the Teams
receiver answers 500 then 200 and is retried; a receiver that hangs costs one timeout, no retry;
an unset variable is a warning naming it), then a run whose supervisor is killed -9: two
observers reap it LOST and one notification goes out. The webhook URLs carry a secret token
that must appear in no output and no file of the home.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from funnelops.cli.main import main as cli_main
from tests.helpers.tiny_project import wait_until, write_tiny
from tests.helpers.webhook_receiver import Receiver

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-T0KEN-4711"

STEP = textwrap.dedent('''
    """A step that reports rows, then fails or succeeds (STEP_EXIT), or waits for a gate."""
    import json, os, sys, time
    gate = os.environ.get("STEP_GATE")
    while gate and not os.path.exists(gate):
        time.sleep(0.02)
    with open(os.environ["FUNNELOPS_METRICS_FILE"], "w") as fh:
        json.dump({"flows": [{"read": 120, "kept": 100, "quarantined": 20}],
                   **({"error": "boom: the extract is empty"} if os.environ.get("STEP_EXIT") == "1" else {})}, fh)
    print("step ran")
    sys.exit(int(os.environ.get("STEP_EXIT", "0")))
''')

NOTIFICATIONS = textwrap.dedent("""
    notifications:
      timeout_s: 1
      channels:
        - {type: webhook, url_env: HOOK_URL}
        - {type: slack, url_env: SLACK_URL}
        - {type: teams, url_env: TEAMS_URL, on: [failed, lost]}
        - {type: webhook, url_env: HANG_URL, on: [failed]}
        - {type: webhook, url_env: MISSING_URL, on: [failed]}
        - {type: webhook, url_env: DONE_URL, on: [done]}
""").lstrip("\n")


class Home:
    def __init__(self, tmp: Path, receiver: Receiver) -> None:
        self.project = write_tiny(tmp, "tiny-alerts", STEP, time_zone="UTC", scheduler="Dia", extra=NOTIFICATIONS)
        self.home = tmp / "home"
        self.outputs: list[str] = []
        self.receiver = receiver

    def __call__(self, *args: str, code: int = 0) -> str:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            got = cli_main(["--project", str(self.project), "--home", str(self.home), *args])
        self.outputs += [out.getvalue(), err.getvalue()]
        assert got == code, f"{args}: exit {got}\n{out.getvalue()}\n{err.getvalue()}"
        return out.getvalue()

    def run(self, run_id: int) -> dict:
        return next(r for r in json.loads(self("--json", "runs")) if r["id"] == run_id)


def pid_alive(pid: int) -> bool:
    from funnelops.backends.local.leases import pid_alive as alive

    return alive(pid)


@pytest.fixture(scope="module")
def alerts(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    with Receiver() as rx:
        rx.script("/teams", [500, 200])
        rx.hang("/hang", 4.0)
        for var, path in (("HOOK_URL", "/hook"), ("SLACK_URL", "/slack"), ("TEAMS_URL", "/teams"),
                          ("HANG_URL", "/hang"), ("DONE_URL", "/done")):
            mp.setenv(var, f"{rx.base}{path}?token={SECRET}")
        mp.delenv("MISSING_URL", raising=False)
        mp.setenv("NO_COLOR", "1")
        h = Home(tmp_path_factory.mktemp("alerts"), rx)
        h("pipeline", "funnel", "--data-stage", "IaC")
        h("pipeline", "funnel", "--data-stage", "Initial data")
        done_runs = [r for r in json.loads(h("--json", "runs")) if r["state"] == "DONE"]
        wait_until(lambda: len(rx.at("/done")) >= len(done_runs), 30, what="a done notification per DONE run")
        mp.setenv("STEP_EXIT", "1")
        h("--json", "pipeline", "workflow", "--scheduler", "Dia", "--wait", code=1)
        runs = json.loads(h("--json", "runs"))
        failed = next(r for r in runs if r["state"] == "FAILED")
        import sqlite3

        con = sqlite3.connect(h.home / "ledger.sqlite")
        sup_pid = con.execute("SELECT pid FROM runs WHERE id = ?", (failed["id"],)).fetchone()[0]
        con.close()
        wait_until(lambda: not pid_alive(sup_pid), 30, what="the failed run's supervisor to exit")
        yield h, rx, failed
    mp.undo()


def test_a_done_run_notifies_only_channels_that_ask_for_done(alerts):
    h, rx, failed = alerts
    done = rx.at("/done")
    done_runs = [r["id"] for r in json.loads(h("--json", "runs")) if r["state"] == "DONE"]
    assert done_runs and sorted(r["body"]["run_id"] for r in done) == sorted(done_runs)  # one post per DONE run
    assert all(r["body"]["event"] == "done" for r in done)
    # the failed run is not posted to the done-only channel; the done run was not posted elsewhere
    assert [r["body"]["state"] for r in rx.at("/hook")] == ["FAILED"]


def test_a_failed_run_posts_one_payload_to_each_channel_with_the_runs_facts(alerts):
    h, rx, failed = alerts
    hook, slack = rx.at("/hook"), rx.at("/slack")
    assert len(hook) == 1 and len(slack) == 1
    body = hook[0]["body"]
    assert hook[0]["headers"]["Content-Type"] == "application/json"
    assert body["run_id"] == failed["id"] and body["workflow"] == "tiny-dia" and body["state"] == "FAILED"
    assert body["event"] == "failed" and body["project"] == "tiny-alerts" and body["backend"] == "local"
    assert body["trigger"] == "forced" and "period" in body
    assert body["rows"] == {"read": 120, "kept": 100, "quarantined": 20}
    assert "boom: the extract is empty" in body["error"]
    assert body["logs_command"] == f"funnelops logs {failed['id']}"
    for stamp in (body["started_at"], body["ended_at"]):
        assert stamp and (stamp.endswith("+00:00") or "+" in stamp[10:] or "-" in stamp[19:]), stamp
    s = slack[0]["body"]
    assert f"Run {failed['id']} of tiny-dia" in s["text"] and "FAILED" in s["text"]
    blob = json.dumps(s["blocks"])
    assert "boom: the extract is empty" in blob and f"funnelops logs {failed['id']}" in blob


def test_teams_gets_an_adaptive_card_after_a_retry_on_500(alerts):
    h, rx, failed = alerts
    teams = rx.at("/teams")
    assert len(teams) == 2  # 500, retried, 200
    msg = teams[-1]["body"]
    assert msg["type"] == "message"
    att = msg["attachments"][0]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = att["content"]
    assert card["type"] == "AdaptiveCard" and card["version"]
    facts = {f["title"]: f["value"] for b in card["body"] if b["type"] == "FactSet" for f in b["facts"]}
    assert facts["State"] == "FAILED" and facts["Workflow"] == "tiny-dia"
    event = next(e for e in json.loads(h("--json", "runs")) if e["id"] == failed["id"])
    assert event["state"] == "FAILED"


def test_a_hanging_receiver_costs_one_timeout_and_an_unset_variable_is_a_warning(alerts):
    h, rx, failed = alerts
    assert len(rx.at("/hang")) == 1  # a timeout is not retried
    log = (h.home / "runs" / str(failed["id"]) / "supervisor.log").read_text()
    assert "HANG_URL not notified: no answer within 1s" in log
    assert "MISSING_URL is not set" in log
    assert "teams notified" in log
    # the run ended FAILED (the step's failure), not because of a notification
    assert h.run(failed["id"])["state"] == "FAILED"


def test_a_killed_supervisor_is_reaped_lost_and_notified_once_by_two_observers(alerts, monkeypatch):
    h, rx, failed = alerts
    gate = h.home.parent / "gate"
    monkeypatch.setenv("STEP_GATE", str(gate))
    monkeypatch.setenv("STEP_EXIT", "0")
    before = len(rx.at("/hook"))
    out = json.loads(h("--json", "job", "force-scheduler", "--scheduler", "dia"))
    run_id = out["run"]["id"]
    import sqlite3

    def pid() -> int | None:
        con = sqlite3.connect(h.home / "ledger.sqlite")
        try:
            return con.execute("SELECT pid FROM runs WHERE id = ? AND state = 'RUNNING'", (run_id,)).fetchone()
        finally:
            con.close()

    sup = wait_until(pid, 30, what="the run to be RUNNING")[0]
    os.kill(sup, signal.SIGKILL)
    wait_until(lambda: not pid_alive(sup), 10, what="the supervisor to die")
    with ThreadPoolExecutor(2) as pool:  # two observers at once: `funnelops runs` in two processes
        procs = list(pool.map(lambda _: subprocess.run(
            [sys.executable, "-m", "funnelops", "--project", str(h.project), "--home", str(h.home), "--json", "runs"],
            capture_output=True, text=True, timeout=120), range(2)))
    h.outputs += [p.stdout + p.stderr for p in procs]
    assert [next(r for r in json.loads(p.stdout) if r["id"] == run_id)["state"] for p in procs] == ["LOST", "LOST"]
    h("--json", "runs")  # a third look sends nothing more
    lost = rx.at("/hook")[before:]
    assert len(lost) == 1 and lost[0]["body"]["state"] == "LOST" and lost[0]["body"]["run_id"] == run_id
    assert [("FAILED" in r["body"]["text"], "LOST" in r["body"]["text"]) for r in rx.at("/slack")] == \
        [(True, False), (False, True)]
    gate.touch()


def test_watch_once_sends_nothing_already_told_and_needs_channels(alerts):
    h, rx, failed = alerts
    before = len(rx.requests)
    out = json.loads(h("--json", "watch", "--once"))
    assert out["runs_seen"] >= 3 and out["notified"] == [] and len(rx.requests) == before
    bare = h.project.parent / "bare.yaml"  # beside step.py
    bare.write_text(h.project.read_text().split("notifications:")[0])
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        code = cli_main(["--project", str(bare), "--home", str(h.home), "watch", "--once"])
    assert code == 2 and "no `notifications:` channels" in err.getvalue()


def test_the_webhook_urls_appear_in_no_output_and_no_file_of_the_home(alerts):
    """Last: after every run above (failed, LOST) and every command's output."""
    h, rx, failed = alerts
    h("--json", "runs")
    h("logs", str(failed["id"]), code=0)
    h("--json", "status")
    for text in h.outputs:
        assert SECRET not in text and rx.base not in text
    for path in h.home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET.encode() not in data and rx.base.encode() not in data, path
