"""Code changes reach the cluster: the artifacts are a planned resource diffed by content hash,
every start verifies the uploaded hashes, and the template installs the cluster's wheelhouse.
Real clients against the contract double and fake-gcs (the wheelhouse is the suite's stub one)."""

from __future__ import annotations

import os

import pytest

from funnelops.errors import BackendError
from funnelops.runs import coordinator

from test_backend_iac import apply, gcp_env, make_project, open_gcp  # noqa: F401 - fixture re-used

pytestmark = pytest.mark.gcp


def _plan(loaded, backend, stage: str = "iac"):
    from funnelops.plan.diff import build_plan

    return build_plan(loaded, backend, stage)


def test_a_changed_flow_file_is_planned_refused_at_force_and_uploaded_by_apply(gcp_env, gcp_double, fake_gcs,  # noqa: F811
                                                                              tmp_path):
    path = make_project(tmp_path)
    loaded, backend = open_gcp(path, tmp_path)
    first, _ = apply(loaded, backend, "iac")
    [art] = [c for c in first.changes if c.kind == "artifacts"]
    assert art.action == "create" and art.name == backend.artifacts_bucket
    assert {"funnelops.zip", "mains/funnelops.flows.py", "project/funnel.yaml"} <= set(art.resource.config)
    again = _plan(loaded, backend)
    assert [c.action for c in again.changes if c.kind == "artifacts"] == ["unchanged"]

    # A flow file changes after the apply: plan shows it, and nothing else.
    flow = path.parent / "flows" / "trusted" / "leads.py"
    flow.write_text(flow.read_text(encoding="utf-8") + "\n# a fix that must reach the cluster\n", encoding="utf-8")
    loaded, backend = open_gcp(path, tmp_path)
    plan = _plan(loaded, backend)
    changed = [c for c in plan.changes if c.action != "unchanged"]
    assert [(c.address, c.action) for c in changed] == [(f"artifacts.{backend.artifacts_bucket}", "update")]
    assert [f.field for f in changed[0].fields] == ["funnelops.zip"]

    # A forced run refuses before firing: the cluster would run the old code.
    gcp_double.dataproc.set_run_outcome(duration_s=None)
    with pytest.raises(BackendError) as refused:
        coordinator.force_scheduler(backend, "dia", "funnel-dia", actor="pipeline")
    assert "artifacts" in refused.value.message and "funnelops.zip" in refused.value.message
    assert "funnelops job create-infra" in (refused.value.hint or "")
    assert gcp_double.count("jobs.run") == 0 and not gcp_double.dataproc.operations(template="funnel-dia")
    assert backend.leases.read("funnel-dia") is None  # nothing started: the lease is free again
    with pytest.raises(BackendError):
        coordinator.start(backend, "funnel-mes", trigger="manual", actor="me")

    # apply uploads the zip (only what changed), and the force goes through.
    _, result = apply(loaded, backend, "iac")
    assert [c.address for c, _ in result.done] == [f"artifacts.{backend.artifacts_bucket}"]
    assert backend.artifacts.uploaded == ["funnelops/artifacts/funnelops.zip"]
    assert [c.action for c in _plan(loaded, backend).changes if c.kind == "artifacts"] == ["unchanged"]
    run = coordinator.force_scheduler(backend, "dia", "funnel-dia", actor="pipeline")
    assert run.trigger == "forced" and gcp_double.count("jobs.run") == 1
    gcp_double.assert_clean()


def test_the_template_installs_the_wheelhouse_through_an_initialization_action(gcp_env, gcp_double, fake_gcs,  # noqa: F811
                                                                               tmp_path):
    from funnelops.backends.gcp import wheelhouse

    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)
    apply(loaded, backend, "iac")
    digest = wheelhouse.requirements_hash()
    base = f"gs://{backend.artifacts_bucket}/funnelops/artifacts/"
    for tpl in gcp_double.dataproc.templates():
        assert tpl["placement"]["managedCluster"]["config"]["initializationActions"] == [
            {"executableFile": f"{base}init-{digest}.sh", "executionTimeout": "600s"}]
    blob = fake_gcs.client.bucket(backend.artifacts_bucket).blob(f"funnelops/artifacts/init-{digest}.sh")
    script = blob.download_as_bytes().decode()
    assert script.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in script
    assert f'"${{FUNNELOPS_WHEELHOUSE_URI:-{base}wheelhouse/{digest}}}"' in script
    assert "--no-index" in script and "/opt/funnelops/site" in script
    marker = fake_gcs.client.bucket(backend.artifacts_bucket).blob(f"funnelops/artifacts/wheelhouse/{digest}/requirements.txt")
    assert marker.download_as_bytes() == wheelhouse.requirements_text()
    launcher = fake_gcs.client.bucket(backend.artifacts_bucket).blob("funnelops/artifacts/mains/funnelops.flows.py")
    assert '"/opt/funnelops/site"' in launcher.download_as_bytes().decode()

    # A template changed by hand (its init action dropped) shows as a change, and apply restores it.
    from funnelops.plan.diff import build_plan

    name = backend.clients.template_name("funnel-dia")
    tpl = backend.clients.dataproc.get_workflow_template(name=name)
    del tpl.placement.managed_cluster.config.initialization_actions[:]
    del tpl.create_time, tpl.update_time  # output only: Google refuses them on update
    backend.clients.dataproc.update_workflow_template(template=tpl)
    plan = build_plan(loaded, backend, "iac")
    [c] = [c for c in plan.changes if c.action != "unchanged"]
    assert c.address == "workflow_template.funnel-dia" and c.action == "update"
    apply(loaded, backend, "iac")
    fixed = next(t for t in gcp_double.dataproc.templates() if t["id"] == "funnel-dia")
    assert fixed["placement"]["managedCluster"]["config"]["initializationActions"][0]["executableFile"].endswith(
        f"init-{digest}.sh")
    gcp_double.assert_clean()


def test_an_unreachable_pypi_names_the_command_to_run(tmp_path, monkeypatch):
    from funnelops.backends.gcp import wheelhouse

    monkeypatch.delenv(wheelhouse.ENV_DIR, raising=False)
    for k, v in {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "0", "PIP_TIMEOUT": "1",
                 "PIP_NO_CACHE_DIR": "1", "PIP_FIND_LINKS": ""}.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(BackendError) as failed:
        wheelhouse.build(tmp_path / "home")
    assert "could not download the cluster's wheelhouse" in failed.value.message
    assert "pip download --disable-pip-version-check --only-binary=:all:" in failed.value.hint
    assert "--platform manylinux2014_x86_64" in failed.value.hint and wheelhouse.ENV_DIR in failed.value.hint
    assert not list((tmp_path / "home").rglob("requirements.txt")) or not any(
        p.parent.name == wheelhouse.requirements_hash() for p in (tmp_path / "home").rglob("requirements.txt"))
    assert os.environ.get(wheelhouse.ENV_DIR) is None


def test_a_custom_image_without_bootstrap_gets_no_initialization_action(gcp_env, gcp_double, fake_gcs,  # noqa: F811
                                                                        tmp_path):
    """`placement.bootstrap: none` (a team's baked image): no init action, the image's URI on both
    node groups and no imageVersion beside it; the other workflows keep the wheelhouse install."""
    image = "projects/funnel-test/global/images/funnel-flows-2024"

    def baked(text: str) -> str:
        return text.replace("    labels: {granularity: day}\n",
                            f"    labels: {{granularity: day}}\n    placement:\n      bootstrap: none\n"
                            f"      image_uri: {image}\n", 1)

    loaded, backend = open_gcp(make_project(tmp_path, baked), tmp_path)
    apply(loaded, backend, "iac")
    templates = {t["id"]: t for t in gcp_double.dataproc.templates()}
    config = templates["funnel-dia"]["placement"]["managedCluster"]["config"]
    assert "initializationActions" not in config
    assert config["masterConfig"]["imageUri"] == config["workerConfig"]["imageUri"] == image
    assert "imageVersion" not in config.get("softwareConfig", {})
    assert templates["funnel-mes"]["placement"]["managedCluster"]["config"]["initializationActions"]
    from funnelops.plan.diff import build_plan

    assert all(c.action == "unchanged" for c in build_plan(loaded, backend, "iac").changes)
