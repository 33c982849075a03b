"""The GCS proxy: real client traffic passes it unchanged, and what Google refuses is refused.

fake-gcs-server alone accepts any JSON it can half-read; every test here would pass against it
without the proxy, which is the point: each refusal below is one fake-gcs lets through.
"""

from __future__ import annotations

import io
import json
import uuid

import pytest

pytestmark = pytest.mark.gcp

pytest.importorskip("google.cloud.storage")
requests = pytest.importorskip("requests")
from google.api_core import exceptions  # noqa: E402


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def test_the_official_clients_traffic_passes_and_is_recorded(fake_gcs):
    client, proxy = fake_gcs.client, fake_gcs.proxy
    bucket = client.bucket(_name("traffic"))
    bucket.iam_configuration.uniform_bucket_level_access_enabled = True
    bucket.iam_configuration.public_access_prevention = "enforced"
    bucket.versioning_enabled = True
    bucket.lifecycle_rules = [{"action": {"type": "Delete"}, "condition": {"age": 30}}]
    made = client.create_bucket(bucket, location="US")
    blob = made.blob("leases/dia.json")
    blob.metadata = {"owner": "a"}
    blob.upload_from_string('{"owner": "a"}', content_type="application/json", if_generation_match=0)
    assert made.blob("leases/dia.json").download_as_text() == '{"owner": "a"}'
    made.blob("wheels/big.whl").upload_from_file(io.BytesIO(b"w" * 300_000))  # size unknown: resumable
    assert len(made.blob("wheels/big.whl").download_as_bytes()) == 300_000
    assert [b.name for b in client.list_blobs(made.name, prefix="leases/")] == ["leases/dia.json"]
    got = client.get_bucket(made.name)
    got.labels = {"app": "funnel"}
    got.patch()
    live = made.get_blob("leases/dia.json")
    live.delete(if_generation_match=live.generation)

    assert proxy.violations == []
    insert = proxy.requests("buckets.insert")[-1].body
    assert insert["iamConfiguration"] == {"uniformBucketLevelAccess": {"enabled": True},
                                          "publicAccessPrevention": "enforced"}
    upload = proxy.requests("objects.insert")[0]
    assert upload.query["uploadType"] == "multipart" and upload.query["ifGenerationMatch"] == "0"
    assert upload.body["metadata"] == {"owner": "a"} and upload.body["name"] == "leases/dia.json"
    assert any(s.query.get("uploadType") == "resumable" for s in proxy.requests("objects.insert"))
    assert proxy.requests("buckets.patch")[-1].body == {"labels": {"app": "funnel"}}
    assert proxy.requests("objects.delete")[-1].query["ifGenerationMatch"] == str(live.generation)


def _refused(fake_gcs, verb: str, path: str, body=None, **kw) -> str:
    """Send a raw request through the proxy; it must answer 400 and record why."""
    fake_gcs.proxy.expect_violations()
    before = len(fake_gcs.proxy.violations)
    data = json.dumps(body).encode() if body is not None else kw.pop("data", None)
    resp = requests.request(verb, fake_gcs.url + path, data=data, timeout=10,
                            headers={"Content-Type": kw.pop("ctype", "application/json")}, **kw)
    assert resp.status_code in (400, 404), resp.text
    assert resp.json()["error"]["code"] == resp.status_code
    found = fake_gcs.proxy.violations[before:]
    assert found, "refused but not recorded"
    return "; ".join(map(str, found))


@pytest.mark.parametrize("body, expected", [
    ({"name": "x-{u}", "lifecycle": {"rule": [{"action": {"type": "Delete"}, "condition": {"agee": 3}}]}},
     'lifecycle.rule[0].condition.agee: unknown-field: condition has no field "agee"'),
    ({"name": "x-{u}", "versioning": {"enabled": "yes"}}, "versioning.enabled: wrong-type"),
    ({"name": "x-{u}", "id": "x"}, "id: output-only"),
    ({"name": "x-{u}", "iamConfiguration": {"publicAccessPrevention": "enforcd"}},
     "iamConfiguration.publicAccessPrevention: bad-enum"),
    ({"location": "US"}, "name: missing-required"),
    ({"name": "x-{u}", "storageClass": "STANDART"}, "storageClass: bad-enum"),
    ({"name": "x-{u}", "lifecycle": {"rule": [{"action": {"type": "SetStorageClass"}, "condition": {"age": 3}}]}},
     "lifecycle.rule[0].action.storageClass: missing-required"),
    ({"name": "x-{u}", "lifecycle": {"rule": [{"action": {"type": "Delete"}, "condition": {}}]}},
     "lifecycle.rule[0].condition: missing-required"),
])
def test_a_bad_bucket_body_is_refused(fake_gcs, body, expected):
    body = json.loads(json.dumps(body).replace("{u}", uuid.uuid4().hex[:8]))
    why = _refused(fake_gcs, "POST", "/storage/v1/b?project=p", body)
    assert expected in why
    if "name" in body:  # refused before fake-gcs saw it
        with pytest.raises(exceptions.NotFound):
            fake_gcs.client.get_bucket(body["name"])


def test_patch_is_partial_but_still_typed(fake_gcs):
    bucket = fake_gcs.new_bucket("patch")
    assert fake_gcs.proxy.violations == []
    why = _refused(fake_gcs, "PATCH", f"/storage/v1/b/{bucket.name}", {"labels": ["a"]})
    assert "labels: wrong-type" in why
    fake_gcs.proxy.reset()
    requests.patch(fake_gcs.url + f"/storage/v1/b/{bucket.name}", json={"versioning": {"enabled": True}},
                   timeout=10).raise_for_status()  # no name, no location: fine for a PATCH
    assert fake_gcs.proxy.violations == []


def test_upload_metadata_and_query_parameters_are_checked(fake_gcs):
    bucket = fake_gcs.new_bucket("upload")
    boundary = "b0undary"
    meta = {"name": "a.json", "contentTyp": "application/json"}
    body = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{json.dumps(meta)}\r\n"
            f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{boundary}--\r\n").encode()
    why = _refused(fake_gcs, "POST", f"/upload/storage/v1/b/{bucket.name}/o?uploadType=multipart",
                   data=body, ctype=f'multipart/related; boundary="{boundary}"')
    assert 'contentTyp: unknown-field' in why
    why = _refused(fake_gcs, "GET", f"/storage/v1/b/{bucket.name}/o?prefixx=a")
    assert "prefixx: unknown-param" in why
    why = _refused(fake_gcs, "GET", f"/storage/v1/b/{bucket.name}/o?projection=everything")
    assert "projection: bad-enum" in why
    why = _refused(fake_gcs, "DELETE", f"/storage/v1/b/{bucket.name}/o/a.json?ifGenerationMatch=latest")
    assert "ifGenerationMatch: wrong-type" in why
    why = _refused(fake_gcs, "GET", "/storage/v2/b")
    assert "unknown-route" in why


def test_legacy_acls_are_refused_on_a_uniform_access_bucket(fake_gcs):
    bucket = fake_gcs.client.bucket(_name("ubla"))
    bucket.iam_configuration.uniform_bucket_level_access_enabled = True
    fake_gcs.client.create_bucket(bucket)
    with pytest.raises(exceptions.BadRequest):
        fake_gcs.proxy.expect_violations()
        bucket.blob("x.txt").upload_from_string("x", predefined_acl="publicRead")
    assert "uniform-access" in str(fake_gcs.proxy.violations[-1])


def test_a_violation_fails_the_test_unless_expected(fake_gcs):
    """What the fixture's teardown reads: a refused request is recorded, not only answered."""
    proxy = fake_gcs.proxy
    bucket = fake_gcs.client.bucket(_name("bad"))
    bucket.lifecycle_rules = [{"action": {"type": "Delete"}, "condition": {"agee": 1}}]
    with pytest.raises(exceptions.BadRequest):
        fake_gcs.client.create_bucket(bucket)
    assert proxy.violations and not proxy.violations_expected
    with pytest.raises(AssertionError, match="GCS contract problems"):
        proxy.assert_clean()
    proxy.expect_violations()

