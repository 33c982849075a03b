"""Suite-wide pytest configuration: the gcp tier's fixtures come from one plugin module.

`tests.gcp_double` (the Google contract double) is test code, not part of the funnelops wheel;
the repository root is on sys.path through `pythonpath = ["."]` in pyproject.toml.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

pytest_plugins = ["tests.gcp_double.plugin"]

STUB_REQUIREMENTS = "# the test suite's stub wheelhouse: the cluster's real one is tests/cluster's business\n"


@pytest.fixture(scope="session", autouse=True)
def stub_wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Every gcp apply uploads the cluster's wheelhouse (tens of MB from PyPI): tests get a stub
    one (a requirement set of its own, no wheels) through FUNNELOPS_WHEELHOUSE_DIR, which
    subprocesses inherit. tests/cluster removes it to build and install the real one."""
    key = "FUNNELOPS_WHEELHOUSE_DIR"
    before = os.environ.get(key)
    folder = tmp_path_factory.mktemp("wheelhouse")
    (folder / "requirements.txt").write_text(STUB_REQUIREMENTS)
    os.environ[key] = str(folder)
    try:
        yield str(folder)
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before
