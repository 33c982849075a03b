"""The parity tier runs the Spark the cluster runs: the default image (Dataproc 2.2) ships Spark 3.5,
so the `spark` extra pins PySpark 3.5 and the tier refuses to pass on anything else (a newer
PySpark accepts code that 3.5 on the cluster rejects, and the other way round)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.spark
pyspark = pytest.importorskip("pyspark")

ROOT = Path(__file__).resolve().parents[2]


def test_the_parity_tier_runs_the_spark_of_the_default_image():
    from funnelops.spec.models import Placement

    image = Placement.model_fields["image_version"].default
    assert image.startswith("2.2"), f"default image {image}: update the spark pin to its Spark version"
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert extra["spark"] == ["pyspark>=3.5,<3.6"]
    assert pyspark.__version__.startswith("3.5."), (
        f"PySpark {pyspark.__version__} installed; the cluster runs 3.5: pip install 'pyspark>=3.5,<3.6'")
