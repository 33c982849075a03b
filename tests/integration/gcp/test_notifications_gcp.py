"""Run-end notifications on gcp: nothing watches a run, so whoever polls it notifies, once.

Real clients against the contract double and fake-gcs, and a real HTTP receiver: two observers
(two backends, as two CLI processes would be) look at one ended run at the same moment; the
claim object (`funnelops/notified/<run>.json`, created with ifGenerationMatch=0) lets one post.
A later `runs` and a `watch --once` poll post nothing more.
"""

from __future__ import annotations

import threading

import pytest

from funnelops.runs import coordinator
from tests.helpers.webhook_receiver import Receiver

from test_backend_iac import apply, gcp_env, make_project, open_gcp  # noqa: F401 - fixture re-used

pytestmark = pytest.mark.gcp

SECRET = "gcp-s3cr3t-0815"
BLOCK = """
notifications:
  channels:
    - {type: webhook, url_env: FO_TEST_HOOK}
    - {type: slack, url_env: FO_TEST_SLACK, on: [failed, done]}
"""


def test_two_observers_of_one_ended_run_post_once(gcp_env, gcp_double, tmp_path, monkeypatch):  # noqa: F811
    from funnelops.runs.watch import poll_once

    with Receiver() as rx:
        monkeypatch.setenv("FO_TEST_HOOK", f"{rx.base}/hook?token={SECRET}")
        monkeypatch.setenv("FO_TEST_SLACK", f"{rx.base}/slack?token={SECRET}")
        project = make_project(tmp_path, edit=lambda text: text + BLOCK)
        loaded, backend = open_gcp(project, tmp_path)
        apply(loaded, backend, "iac")
        gcp_double.dataproc.set_run_outcome("funnel-dia", duration_s=None)
        run = coordinator.start(backend, "funnel-dia", trigger="manual", actor="me")
        gcp_double.dataproc.finish(template="funnel-dia", error="step funnel-flows failed: boom")

        observers = [open_gcp(project, tmp_path)[1] for _ in range(2)]
        barrier = threading.Barrier(len(observers))
        seen: list[str] = []

        def observe(b) -> None:
            barrier.wait()
            seen.append(b.runtime.get(run.id).state)

        threads = [threading.Thread(target=observe, args=(b,)) for b in observers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert seen == ["FAILED", "FAILED"]
        backend.runtime.list()  # a third observer, later
        again = poll_once(backend, loaded.spec.notifications, loaded.spec.project.id)
        assert again["notified"] == []

        hook = rx.at("/hook")
        assert len(hook) == 1, [r["body"] for r in hook]
        body = hook[0]["body"]
        assert body["run_id"] == run.id and body["state"] == "FAILED" and body["backend"] == "gcp"
        assert body["workflow"] == "funnel-dia" and "boom" in body["error"]
        assert body["logs_command"] == f"funnelops --backend gcp logs {run.id}"
        assert len(rx.at("/slack")) == 1
        claim = backend.storage.read_object(backend.artifacts_bucket, f"funnelops/notified/{run.id}.json")
        assert claim is not None and SECRET.encode() not in claim
        ledger = backend.storage.read_object(backend.artifacts_bucket, "funnelops/ledger.json")
        assert b'"notification"' in ledger and SECRET.encode() not in ledger and rx.base.encode() not in ledger


def test_claim_once_is_true_for_exactly_one_caller(gcp_env, gcp_double, tmp_path):  # noqa: F811
    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)
    others = [open_gcp(loaded.path, tmp_path)[1] for _ in range(3)]
    barrier = threading.Barrier(4)
    got: list[bool] = []

    def claim(b) -> None:
        barrier.wait()
        got.append(b.ledger.claim_once("notified/op-123"))

    threads = [threading.Thread(target=claim, args=(b,)) for b in [backend, *others]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == [False, False, False, True]
    assert backend.ledger.claim_once("notified/op-124") is True
    with pytest.raises(ValueError):
        backend.ledger.claim_once("../escape")
