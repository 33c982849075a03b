"""Saved plans on the gcp backend (issue #13): what gcp observes is stable from one plan to the
next (so a saved plan is not refused for nothing), the saved plan applies through `create_infra`,
and a change made in the cloud behind funnelops' back makes it stale, naming the resource.
Against the contract double and fake-gcs-server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from test_backend_iac import gcp_env, make_project, open_gcp  # noqa: F401 - fixture re-used

pytestmark = pytest.mark.gcp

pytest.importorskip("google.cloud.bigquery")


def test_a_saved_gcp_plan_applies_then_goes_stale_when_the_cloud_moves(gcp_env, gcp_double, fake_gcs,  # noqa: F811
                                                                       tmp_path: Path):
    from funnelops.lifecycle.infra import create_infra
    from funnelops.plan.diff import build_plan
    from funnelops.plan.saved import (StalePlan, check_still_current, load_saved_plan, saved_plan_document,
                                      write_saved_plan)

    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)

    def save(name: str):
        path = tmp_path / name
        write_saved_plan(path, saved_plan_document(build_plan(loaded, backend, "iac"), loaded.spec.project.id))
        return load_saved_plan(path)

    first = save("first.json")
    plan, result = create_infra(loaded, backend, "iac", actor="ci", check=lambda p: check_still_current(first, p))
    assert result.ok and plan.summary()["create"] > 0

    after = save("after.json")
    check_still_current(after, build_plan(loaded, backend, "iac"))  # observing again: the same observations
    bucket = next(b.name for b in loaded.spec.buckets if b.role == "trusted")
    fake_gcs.client.get_bucket(bucket).delete()  # deleted in the console, say
    with pytest.raises(StalePlan) as exc:
        check_still_current(after, build_plan(loaded, backend, "iac"))
    assert exc.value.details["resource"] == f"bucket.{bucket}" and exc.value.exit_code == 1
    gcp_double.assert_clean()
