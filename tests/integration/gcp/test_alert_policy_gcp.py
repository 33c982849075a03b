"""The gcp log-based alert policy (`notifications.gcp_alert`), planned and applied by IaC against the
contract double's Cloud Monitoring (held to monitoring.v3.json and Google's log-match rules).

Created with a conditionMatchedLog condition over Dataproc error logs, a notification rate limit
and the project's channels; a re-plan is a no-op; a changed channel is an update; removing the
block deletes the policy; a project without the block makes no Monitoring call at all.
"""

from __future__ import annotations

import pytest

from test_backend_iac import apply, gcp_env, make_project, open_gcp  # noqa: F401 - fixture re-used

pytestmark = pytest.mark.gcp

CHANNEL = "projects/acme-crm-prod/notificationChannels/1234567890"
OTHER = "projects/acme-crm-prod/notificationChannels/42"


def alert_block(channel: str = CHANNEL) -> str:
    return f"""
notifications:
  gcp_alert:
    notification_channels: ["{channel}"]
    rate_limit: 600s
"""


def changes(plan) -> list[tuple[str, str]]:
    """What the plan changes, besides the artifacts (the project file is one: editing it moves its hash)."""
    return [(c.action, c.address) for c in plan.changes
            if c.action not in ("unchanged", "waiting") and c.kind != "artifacts"]


def test_iac_creates_updates_and_deletes_the_alert_policy(gcp_env, gcp_double, tmp_path):  # noqa: F811
    from funnelops.plan.diff import build_plan

    path = make_project(tmp_path, edit=lambda text: text + alert_block())
    loaded, backend = open_gcp(path, tmp_path)
    plan, _ = apply(loaded, backend, "iac")
    assert ("create", "alert_policy.dataproc-failures") in changes(plan)
    [policy] = gcp_double.monitoring.policies()
    [cond] = policy["conditions"]
    flt = cond["conditionMatchedLog"]["filter"]
    assert 'resource.type=("cloud_dataproc_cluster" OR "cloud_dataproc_job")' in flt and "severity>=ERROR" in flt
    assert f'resource.labels.region="{loaded.spec.project.region}"' in flt
    assert policy["alertStrategy"]["notificationRateLimit"] == {"period": "600s"}
    assert policy["notificationChannels"] == [CHANNEL] and policy["userLabels"] == {"funnelops-managed": "true"}

    again = build_plan(loaded, backend, "iac")
    assert changes(again) == []
    from funnelops.lifecycle.infra import destroy_plan

    assert ("delete", "alert_policy.dataproc-failures") in [(c.action, c.address) for c in
                                                             destroy_plan(loaded, backend).changes]

    path.write_text(path.read_text().replace(CHANNEL, OTHER))
    loaded, backend = open_gcp(path, tmp_path)
    plan, _ = apply(loaded, backend, "iac")
    assert changes(plan) == [("update", "alert_policy.dataproc-failures")]
    [policy] = gcp_double.monitoring.policies()
    assert policy["notificationChannels"] == [OTHER] and policy["conditions"][0]["conditionMatchedLog"]["filter"] == flt

    path.write_text(path.read_text().split("\nnotifications:")[0] + "\n")
    loaded, backend = open_gcp(path, tmp_path)
    plan, _ = apply(loaded, backend, "iac")
    assert changes(plan) == [("delete", "alert_policy.dataproc-failures")]
    assert gcp_double.monitoring.policies() == []
    gcp_double.assert_clean()


def test_a_project_without_the_block_never_calls_monitoring(gcp_env, gcp_double, tmp_path):  # noqa: F811
    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)
    apply(loaded, backend, "iac")
    assert gcp_double.count("monitoring") == 0


def test_the_offline_plan_shows_the_alert_policy_request(gcp_env, tmp_path):  # noqa: F811
    loaded, backend = open_gcp(make_project(tmp_path, edit=lambda text: text + alert_block()), tmp_path)
    from funnelops.plan.offline import offline_plan

    doc = offline_plan(loaded, backend, "iac")
    alert = next(r for r in doc["resources"] if r["kind"] == "alert_policy")
    assert alert["request"]["method"] == "POST" and alert["request"]["url"].endswith(
        f"/v3/projects/{loaded.spec.project.id}/alertPolicies")
    assert alert["request"]["body"]["alertStrategy"]["notificationRateLimit"]["period"] == "600s"


def test_the_double_refuses_a_log_match_policy_without_a_rate_limit(gcp_double):
    import requests

    gcp_double.expect_violations()
    body = {"displayName": "x", "conditions": [{"displayName": "c", "conditionMatchedLog": {"filter": "severity>=ERROR"}}]}
    resp = requests.post(f"{gcp_double.url}/v3/projects/p/alertPolicies", json=body, timeout=10)
    assert resp.status_code == 400 and "notification_rate_limit" in resp.text
    body["alertStrategy"] = {"notificationRateLimit": {"period": "300s"}}
    body["conditions"][0]["conditionMatchedLog"]["filtr"] = body["conditions"][0]["conditionMatchedLog"].pop("filter")
    resp = requests.post(f"{gcp_double.url}/v3/projects/p/alertPolicies", json=body, timeout=10)
    assert resp.status_code == 400 and "filtr" in resp.text
