"""Buckets on gcp: access, public-access prevention and versioning are sent, observed and
patched alone; the location defaults to the project's; and a corrupted body is refused.

What the bucket bodies carried is read from the GCS proxy's record of the requests (fake-gcs
keeps versioning but drops ``iamConfiguration``), so each assertion is about the wire.
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.gcp

pytest.importorskip("google.cloud.storage")

FUNNEL = Path(__file__).resolve().parents[3] / "projects" / "funnel"


def make_project(tmp_path: Path, edit=None) -> Path:
    dest = tmp_path / "funnel"
    shutil.copytree(FUNNEL, dest, ignore=shutil.ignore_patterns("__pycache__", "data"))
    text = (dest / "funnel.yaml").read_text(encoding="utf-8").replace(
        "analitica-funnel-", f"af{uuid.uuid4().hex[:8]}-")
    (dest / "funnel.yaml").write_text(edit(text) if edit else text, encoding="utf-8")
    return dest / "funnel.yaml"


@pytest.fixture
def gcs_env(monkeypatch, gcp_double, fake_gcs):
    for k, v in {"FUNNELOPS_STORAGE_ENDPOINT": fake_gcs.url, "FUNNELOPS_BIGQUERY_ENDPOINT": gcp_double.url,
                 "FUNNELOPS_DATAPROC_ENDPOINT": gcp_double.url, "FUNNELOPS_SCHEDULER_ENDPOINT": gcp_double.url,
                 "FUNNELOPS_GCP_RETRY_INITIAL_S": "0.01"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)


def open_gcp(path: Path, tmp_path: Path):
    from funnelops.backends.gcp import GcpBackend
    from funnelops.backends.gcp.backend import artifacts_bucket_of
    from funnelops.spec.loader import load_project

    loaded = load_project(path)
    p = loaded.spec.project
    return loaded, GcpBackend(p.id, p.region, artifacts_bucket=artifacts_bucket_of(loaded.spec), loaded=loaded,
                              service_account=p.service_account, home=tmp_path)


def apply_iac(loaded, backend):
    from funnelops.plan.apply import apply_plan, raise_if_failed
    from funnelops.plan.diff import build_plan

    plan = build_plan(loaded, backend, "iac")
    raise_if_failed(apply_plan(plan, backend))
    return plan


def bucket_changes(loaded, backend) -> dict[str, list[str]]:
    from funnelops.plan.diff import build_plan

    return {c.address: [f.field for f in c.fields] for c in build_plan(loaded, backend, "iac").mutating()
            if c.address.startswith("bucket.")}


def test_bucket_bodies_carry_uniform_access_public_access_prevention_and_versioning(
        gcs_env, fake_gcs, tmp_path):
    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)
    apply_iac(loaded, backend)
    inserts = {s.body["name"]: s.body for s in fake_gcs.proxy.requests("buckets.insert") if s.status == 200}
    ours = {b.name for b in loaded.spec.buckets}
    assert ours <= set(inserts)
    for name in ours:
        assert inserts[name]["iamConfiguration"] == {"uniformBucketLevelAccess": {"enabled": True},
                                                     "publicAccessPrevention": "enforced"}, name
        assert inserts[name]["versioning"] == {"enabled": False}, name
    assert bucket_changes(loaded, backend) == {}  # observed back: a re-plan is a no-op
    from funnelops.backends.gcp.storage import bucket_body  # what an offline plan shows is what is sent
    from funnelops.resources import desired_resources

    for res in (r for r in desired_resources(loaded, "iac") if r.kind == "bucket"):
        assert bucket_body(res.name, res.config) == inserts[res.name]


def test_a_bucket_without_location_takes_the_projects(gcs_env, fake_gcs, tmp_path):
    def edit(text: str) -> str:
        text = text.replace("  location: US\n  time_zone", "  location: southamerica-east1\n  time_zone")
        return text.replace("    location: US\n    storage_class: STANDARD\n", "    storage_class: STANDARD\n", 1)

    loaded, backend = open_gcp(make_project(tmp_path, edit), tmp_path)
    raw = loaded.spec.bucket_for("raw")
    assert raw is not None and raw.location is None
    apply_iac(loaded, backend)
    sent = next(s for s in fake_gcs.proxy.requests("buckets.insert") if s.body["name"] == raw.name)
    assert sent.body["location"] == "SOUTHAMERICA-EAST1"


def test_an_artifacts_bucket_the_spec_does_not_declare_is_made_safe_in_the_projects_location(
        gcs_env, fake_gcs, tmp_path):
    def edit(text: str) -> str:
        text = text.replace("  location: US\n  time_zone", "  location: EU\n  time_zone")
        text = re.sub(r"(?m)^  artifacts_bucket: .*\n", "", text).replace("role: artifacts", "role: other")
        return text.replace("  id: analitica-funnel\n", f"  id: p{uuid.uuid4().hex[:10]}\n")

    loaded, backend = open_gcp(make_project(tmp_path, edit), tmp_path)
    assert backend.artifacts_bucket == f"{loaded.spec.project.id}-funnelops"
    backend.ensure_artifacts_bucket()
    sent = next(s for s in fake_gcs.proxy.requests("buckets.insert") if s.body["name"] == backend.artifacts_bucket)
    assert sent.body["location"] == "EU"
    assert sent.body["iamConfiguration"]["publicAccessPrevention"] == "enforced"
    assert sent.body["iamConfiguration"]["uniformBucketLevelAccess"] == {"enabled": True}


def test_a_changed_setting_is_patched_alone_and_converges(gcs_env, fake_gcs, tmp_path):
    path = make_project(tmp_path)
    loaded, backend = open_gcp(path, tmp_path)
    apply_iac(loaded, backend)
    text = path.read_text(encoding="utf-8").replace(
        "    labels: {layer: trusted, app: funnel}\n",
        "    labels: {layer: trusted, app: funnel}\n    versioning: true\n    public_access_prevention: inherited\n")
    path.write_text(text, encoding="utf-8")
    loaded, backend = open_gcp(path, tmp_path)
    trusted = loaded.spec.bucket_for("trusted").name
    assert bucket_changes(loaded, backend) == {f"bucket.{trusted}": ["public_access_prevention", "versioning"]}
    fake_gcs.proxy.reset()
    apply_iac(loaded, backend)
    patches = [s.body for s in fake_gcs.proxy.requests("buckets.patch")]
    assert patches == [{"iamConfiguration": {"uniformBucketLevelAccess": {"enabled": True},
                                             "publicAccessPrevention": "inherited"},
                        "versioning": {"enabled": True}}]
    assert fake_gcs.client.get_bucket(trusted).versioning_enabled is True  # fake-gcs keeps this one
    assert bucket_changes(loaded, backend) == {}


def test_a_misspelled_lifecycle_condition_is_refused(gcs_env, fake_gcs, tmp_path, monkeypatch):
    """Mutation check: rename ``condition.age`` in what the backend sends; the gcp tier must fail."""
    from funnelops.backends.gcp import storage
    from funnelops.errors import FunnelopsError

    real = storage._lifecycle

    def corrupted(cfg):
        return [{**r, "condition": {"agee": r["condition"]["age"]}} for r in real(cfg)]

    monkeypatch.setattr(storage, "_lifecycle", corrupted)
    fake_gcs.proxy.expect_violations()
    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)
    with pytest.raises(FunnelopsError):
        apply_iac(loaded, backend)
    raw = loaded.spec.bucket_for("raw").name
    refused = [v for v in fake_gcs.proxy.violations if v.method == "storage.buckets.insert"]
    assert [v.field for v in refused] == ["lifecycle.rule[0].condition.agee"]
    assert refused[0].kind == "unknown-field"
    assert raw not in {b.name for b in fake_gcs.client.list_buckets()}


def test_deleting_a_bucket_deletes_every_generation_and_folder_marker(gcs_env, fake_gcs, tmp_path):
    """Google refuses to delete a bucket that still holds noncurrent versions or "dir/" markers;
    fake-gcs keeps neither apart, so the check is on the wire: every delete names a generation."""
    from funnelops.backends.base import Observed

    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)
    bucket = fake_gcs.new_bucket("versioned")
    for name in ("data/part-0.parquet", "data/"):
        bucket.blob(name).upload_from_string(b"x")
    fake_gcs.proxy.reset()
    backend.handler("bucket").delete(bucket.name, Observed({}))
    listed = [s for s in fake_gcs.proxy.requests("objects.list") if f"/b/{bucket.name}/" in s.path]
    assert listed and all(s.query.get("versions", "").lower() == "true" for s in listed)
    deletes = [s for s in fake_gcs.proxy.requests("objects.delete") if f"/b/{bucket.name}/" in s.path]
    assert sorted(s.path.rsplit("/", 1)[-1] for s in deletes) == ["data%2F", "data%2Fpart-0.parquet"]
    assert all(s.query.get("generation") for s in deletes)
    assert fake_gcs.proxy.requests("buckets.delete")[-1].status < 300
