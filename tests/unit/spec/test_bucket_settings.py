"""Bucket settings in the spec: safe defaults, the project's location, refusal of bad values,
and local homes made before the settings existed still plan as no-ops."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from funnelops.errors import ProjectError
from funnelops.resources import desired_resources
from funnelops.spec.loader import load_project

PROJECT = """\
project:
  id: demo-project
  location: {location}
buckets:
  - name: demo-raw
  - name: demo-open
    location: us-east1
    uniform_bucket_level_access: false
    public_access_prevention: inherited
    versioning: true
"""


def buckets(write_project, location: str = "EU") -> dict[str, dict]:
    loaded = load_project(write_project(PROJECT.format(location=location)))
    return {r.name: r.config for r in desired_resources(loaded, "iac") if r.kind == "bucket"}


def test_defaults_are_safe_and_the_location_is_the_projects(write_project) -> None:
    got = buckets(write_project, "southamerica-east1")
    assert got["demo-raw"] == {"location": "SOUTHAMERICA-EAST1", "storage_class": "STANDARD", "labels": {},
                               "lifecycle_rules": [], "uniform_bucket_level_access": True,
                               "public_access_prevention": "enforced", "versioning": False}
    assert got["demo-open"]["location"] == "US-EAST1"
    assert (got["demo-open"]["uniform_bucket_level_access"], got["demo-open"]["public_access_prevention"],
            got["demo-open"]["versioning"]) == (False, "inherited", True)


def test_an_unknown_public_access_prevention_is_a_located_error(write_project) -> None:
    text = PROJECT.format(location="US").replace("public_access_prevention: inherited",
                                                 "public_access_prevention: enforcd")
    with pytest.raises(ProjectError) as err:
        load_project(write_project(text))
    assert "public_access_prevention" in str(err.value) and "funnel.yaml:" in str(err.value)


def test_a_local_bucket_recorded_before_the_settings_existed_is_unchanged(write_project, tmp_path: Path) -> None:
    from funnelops.backends.local.storage import BucketHandler, LocalStorage

    loaded = load_project(write_project(PROJECT.format(location="US")))
    desired = next(r for r in desired_resources(loaded, "iac") if r.name == "demo-raw")
    folder = tmp_path / "buckets" / "demo-raw"
    folder.mkdir(parents=True)
    old = {"location": "US", "storage_class": "STANDARD", "labels": {}, "lifecycle_rules": []}
    (folder / ".bucket.json").write_text(json.dumps(old), encoding="utf-8")
    observed = BucketHandler(LocalStorage(tmp_path / "buckets")).observe(["demo-raw"])["demo-raw"]
    assert observed.config == desired.config
