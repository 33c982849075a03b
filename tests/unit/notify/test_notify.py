"""The notification core without a backend: validation, payloads, the claim, the POST's retries.

POSTs go to a real HTTP receiver on 127.0.0.1 (http.server on a thread); the claim is a plain
set, as `Ledger.claim_once` behaves.
"""

from __future__ import annotations

import socket

import pytest

from funnelops.backends.types import RunRecord
from funnelops.errors import ProjectError
from funnelops.notify import notifications_of, notify_run_end
from funnelops.notify.http import post_json
from funnelops.notify.payloads import ERROR_CHARS, facts, slack, teams
from funnelops.spec.loader import load_project
from funnelops.spec.models import Notifications
from tests.helpers.webhook_receiver import Receiver

HEAD = "project: {id: acme-crm-prod}\n"


@pytest.fixture
def write_project(tmp_path):
    def write(text: str):
        path = tmp_path / "funnel.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def failed_run(**kw) -> RunRecord:
    base = dict(id=7, workflow="crm-dia", state="FAILED", trigger="scheduled", actor="cloud-scheduler",
                args=["--period=2026-11-28"], started_at="2026-11-29T06:00:00+00:00",
                ended_at="2026-11-29T06:01:30.5+00:00", rows={"read": 10, "kept": 8, "quarantined": 2},
                error="step 'flows' exited with code 1: " + "x" * 2000)
    return RunRecord(**{**base, **kw})


def claims() -> tuple[set[str], callable]:
    taken: set[str] = set()

    def claim(key: str) -> bool:
        if key in taken:
            return False
        taken.add(key)
        return True

    return taken, claim


def test_unknown_channel_type_and_event_are_located_errors(write_project):
    path = write_project(HEAD + "notifications:\n  channels:\n    - type: pagerduty\n      url_env: PD\n"
                                "    - type: slack\n      url_env: SLACK_URL\n      on: [failed, exploded]\n")
    with pytest.raises(ProjectError) as err:
        load_project(path)
    fields = {p.field: p for p in err.value.problems}
    assert fields["notifications.channels[0].type"].line == 4
    assert fields["notifications.channels[1].on[1]"].line == 8


def test_a_bare_on_key_is_the_field_on_not_yaml_true(write_project):
    path = write_project(HEAD + "notifications:\n  channels:\n    - type: teams\n      url_env: TEAMS_URL\n"
                                "      on: [done]\n")
    assert load_project(path).spec.notifications.channels[0].on == ["done"]


def test_a_url_in_the_file_instead_of_a_variable_name_is_refused(write_project):
    path = write_project(HEAD + "notifications:\n  channels:\n    - {type: webhook, url_env: 'https://hooks.example/x'}\n")
    with pytest.raises(ProjectError) as err:
        load_project(path)
    assert err.value.problems[0].field == "notifications.channels[0].url_env"


def test_defaults_are_failed_and_lost():
    n = Notifications.model_validate({"channels": [{"type": "slack", "url_env": "S"}]})
    assert n.channels[0].on == ["failed", "lost"] and n.timeout_s == 5.0


def test_facts_slack_and_teams_carry_the_runs_facts():
    f = facts(failed_run(), event="failed", project="acme-crm-prod", backend="local")
    assert f["run_id"] == 7 and f["period"] == "2026-11-28" and f["rows"] == {"read": 10, "kept": 8, "quarantined": 2}
    assert f["ended_at"] == "2026-11-29T06:01:30.500000+00:00" and len(f["error"]) == ERROR_CHARS
    assert f["logs_command"] == "funnelops logs 7"
    s = slack(f)
    assert s["text"].startswith(":red_circle: Run 7 of crm-dia for 2026-11-28 FAILED (acme-crm-prod)")
    assert [b["type"] for b in s["blocks"]] == ["section", "section", "section", "context"]
    t = teams(f)
    card = t["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard" and card["body"][0]["text"].startswith("Run 7 of crm-dia")
    gcp = facts(failed_run(id="abc-123", rows={}), event="failed", project="p", backend="gcp")
    assert gcp["rows"] == {"read": None, "kept": None, "quarantined": None}
    assert gcp["logs_command"] == "funnelops --backend gcp logs abc-123"


def test_one_claim_one_post_and_done_is_not_sent_unless_asked():
    n = Notifications.model_validate({"channels": [{"type": "webhook", "url_env": "HOOK"}]})
    with Receiver() as rx:
        env = {"HOOK": f"{rx.base}/hook"}
        taken, claim = claims()
        first = notify_run_end(failed_run(), n, project="p", backend="local", claim=claim, env=env)
        second = notify_run_end(failed_run(), n, project="p", backend="local", claim=claim, env=env)
        done = notify_run_end(failed_run(id=8, state="DONE", error=None), n, project="p", backend="local",
                              claim=claim, env=env)
        assert [o.sent for o in first] == [True] and second == [] and done == []
        assert len(rx.at("/hook")) == 1 and taken == {"notified/7"}


def test_an_unset_variable_is_a_warning_naming_it_and_nothing_raises():
    n = Notifications.model_validate({"channels": [{"type": "slack", "url_env": "NOT_SET_ANYWHERE"}]})
    lines: list[str] = []
    out = notify_run_end(failed_run(), n, project="p", backend="local", claim=claims()[1], env={}, log=lines.append)
    assert not out[0].sent and "NOT_SET_ANYWHERE is not set" in lines[0]


def test_5xx_is_retried_4xx_is_not():
    with Receiver() as rx:
        rx.script("/flaky", [503, 500, 200])
        rx.script("/gone", [404])
        rx.script("/down", [500])
        ok = post_json(f"{rx.base}/flaky", {"a": 1}, timeout_s=2, backoff_s=0.01)
        gone = post_json(f"{rx.base}/gone", {"a": 1}, timeout_s=2, backoff_s=0.01)
        down = post_json(f"{rx.base}/down", {"a": 1}, timeout_s=2, backoff_s=0.01)
    assert (ok.ok, ok.attempts, ok.status) == (True, 3, 200)
    assert (gone.ok, gone.attempts, gone.status) == (False, 1, 404)
    assert (down.ok, down.attempts, down.detail) == (False, 3, "HTTP 500")


def test_a_refused_connection_is_retried_and_the_url_is_not_in_the_message():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/secret-path-42"
    res = post_json(url, {}, timeout_s=1, backoff_s=0.01)
    assert not res.ok and res.attempts == 3 and "connection failed" in res.detail
    assert "secret-path-42" not in res.detail and str(port) not in res.detail
    for bad_url in ("notaurl-secret-path-42", "file:///etc/secret-path-42"):
        bad = post_json(bad_url, {}, timeout_s=1)
        assert not bad.ok and bad.attempts == 0 and bad.detail == "not an http(s) URL"


def test_notifications_of_reads_only_its_block(tmp_path):
    p = tmp_path / "funnel.yaml"
    # the rest of the project is broken (a view without query): the block is still read
    p.write_text(HEAD + "views: [{dataset: d, name: v}]\nnotifications:\n  channels: [{type: slack, url_env: S}]\n")
    n, project = notifications_of(p)
    assert project == "acme-crm-prod" and n.channels[0].url_env == "S"
    assert notifications_of(None) == (None, "")


def test_gcp_alert_rate_limit_under_five_minutes_is_refused(write_project):
    path = write_project(HEAD + "notifications:\n  gcp_alert:\n    notification_channels: "
                                "['projects/acme-crm-prod/notificationChannels/1']\n    rate_limit: 60s\n")
    with pytest.raises(ProjectError) as err:
        load_project(path)
    assert err.value.problems[0].field == "notifications.gcp_alert.rate_limit" and "5 minutes" in \
        err.value.problems[0].message


def test_validate_notes_the_gcp_alert_is_not_applicable_locally_and_unset_variables(write_project, monkeypatch):
    import io
    import json
    from contextlib import redirect_stderr, redirect_stdout

    from funnelops.cli.main import main as cli_main

    monkeypatch.delenv("NOT_SET_FOR_VALIDATE", raising=False)
    path = write_project(HEAD + "notifications:\n  channels: [{type: slack, url_env: NOT_SET_FOR_VALIDATE}]\n"
                                "  gcp_alert:\n    notification_channels: ['projects/acme-crm-prod/notificationChannels/1']\n")
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        code = cli_main(["--project", str(path), "--home", str(path.parent / "home"), "--backend", "local",
                         "--json", "validate"])
    assert code == 0
    notes = {w["field"]: w for w in json.loads(out.getvalue())["warnings"]}
    assert "not applicable on the local backend" in notes["notifications.gcp_alert"]["message"]
    assert notes["notifications.gcp_alert"]["line"] == 4
    assert "NOT_SET_FOR_VALIDATE is not set" in notes["notifications.channels[0].url_env"]["message"]
