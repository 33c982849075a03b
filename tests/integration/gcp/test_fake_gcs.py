"""fake-gcs-server, reached by the official storage client, enforces what the lease relies on."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.gcp

pytest.importorskip("google.cloud.storage")
from google.api_core import exceptions  # noqa: E402


def test_if_generation_match_zero_creates_only_once(fake_gcs):
    bucket = fake_gcs.new_bucket("leases")
    lease = bucket.blob("leases/dia.json")
    lease.upload_from_string('{"owner": "a"}', if_generation_match=0)
    with pytest.raises(exceptions.PreconditionFailed):
        bucket.blob("leases/dia.json").upload_from_string('{"owner": "b"}', if_generation_match=0)
    assert bucket.blob("leases/dia.json").download_as_text() == '{"owner": "a"}'


def test_generation_match_guards_read_modify_write(fake_gcs):
    bucket = fake_gcs.new_bucket("ledger")
    blob = bucket.blob("state/ledger.json")
    blob.upload_from_string("v1", if_generation_match=0)
    blob.reload()
    gen = blob.generation
    bucket.blob("state/ledger.json").upload_from_string("v2", if_generation_match=gen)
    with pytest.raises(exceptions.PreconditionFailed):  # a writer still holding the old generation
        bucket.blob("state/ledger.json").upload_from_string("v3", if_generation_match=gen)
    bucket.blob("state/ledger.json").delete(if_generation_match=bucket.get_blob("state/ledger.json").generation)


def test_the_emulator_does_not_leak_into_the_process_environment(fake_gcs):
    assert os.environ.get("STORAGE_EMULATOR_HOST") != fake_gcs.url
