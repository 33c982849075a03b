"""Latency and injected 429/503: what the official clients' default retries do with them.

These record facts the gcp backend must design around: which statuses each client retries on
its own, and which surface as exceptions that funnelops has to retry itself.
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.gcp

bigquery = pytest.importorskip("google.cloud.bigquery")
dataproc_v1 = pytest.importorskip("google.cloud.dataproc_v1")
from google.api_core import exceptions  # noqa: E402

PARENT = "projects/funnel-test/regions/us-central1"
TEMPLATE = {"id": "dia",
            "placement": {"cluster_selector": {"cluster_labels": {"env": "test"}}},
            "jobs": [{"step_id": "trusted", "pyspark_job": {"main_python_file_uri": "gs://a/m.py"}}]}
FAST_BQ_RETRY = bigquery.DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.05)  # same predicate


def test_latency_applies_per_request_and_in_parallel(clients, gcp_double):
    from concurrent.futures import ThreadPoolExecutor

    clients.templates.create_workflow_template(parent=PARENT, template=TEMPLATE)
    name = f"{PARENT}/workflowTemplates/dia"
    gcp_double.set_latency(200)
    started = time.monotonic()
    clients.templates.get_workflow_template(name=name)
    assert 0.2 <= time.monotonic() - started < 1.5
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: clients.templates.get_workflow_template(name=name), range(8)))
    assert time.monotonic() - started < 1.2  # eight requests overlap, not 8 x 200 ms
    gcp_double.set_latency(0)
    assert gcp_double.count("workflowTemplates.get") == 9


def test_gapic_retries_503_but_not_429(clients, gcp_double):
    clients.templates.create_workflow_template(parent=PARENT, template=TEMPLATE)
    name = f"{PARENT}/workflowTemplates/dia"
    gcp_double.fail_next(2, 503, "workflowTemplates.get")
    assert clients.templates.get_workflow_template(name=name).version == 1
    assert gcp_double.count("workflowTemplates.get") == 3
    assert gcp_double.faults["dataproc.projects.regions.workflowTemplates.get"] == 2
    gcp_double.fail_next(1, 429, "workflowTemplates.get")
    with pytest.raises(exceptions.TooManyRequests):  # RESOURCE_EXHAUSTED is not in its retry set
        clients.templates.get_workflow_template(name=name)


def test_operation_polling_survives_a_503(clients, gcp_double):
    gcp_double.dataproc.set_run_outcome(duration_s=0.2)
    clients.templates.create_workflow_template(parent=PARENT, template=TEMPLATE)
    op = clients.templates.instantiate_workflow_template(name=f"{PARENT}/workflowTemplates/dia")
    gcp_double.fail_next(1, 503, "operations.get")
    op.result(timeout=15)
    assert gcp_double.faults["dataproc.projects.regions.operations.get"] == 1


def test_scheduler_create_is_not_retried_on_503(clients, gcp_double):
    gcp_double.fail_next(1, 503, "jobs.create")
    job = {"name": "projects/funnel-test/locations/us-central1/jobs/dia", "schedule": "0 6 * * *",
           "http_target": {"uri": "https://example.com/x"}}
    with pytest.raises(exceptions.ServiceUnavailable):
        clients.scheduler.create_job(parent="projects/funnel-test/locations/us-central1", job=job)
    assert clients.scheduler.create_job(
        parent="projects/funnel-test/locations/us-central1", job=job).state == 1


def test_bigquery_default_predicate_retries_429_and_503(clients, gcp_double):
    bq = clients.bigquery
    bq.create_dataset("funnel-test.refined")
    gcp_double.fail_next(1, 429, "datasets.get")
    gcp_double.fail_next(1, 503, "datasets.get")
    assert bq.get_dataset("funnel-test.refined", retry=FAST_BQ_RETRY).dataset_id == "refined"
    assert gcp_double.count("datasets.get") == 3


def test_seeded_fault_rate_is_absorbed_by_retries(clients, gcp_double):
    bq = clients.bigquery
    bq.create_dataset("funnel-test.refined")
    gcp_double.set_faults(0.3, statuses=(429, 503), methods=("datasets.get",), seed=7)
    for _ in range(20):
        bq.get_dataset("funnel-test.refined", retry=FAST_BQ_RETRY)
    faults = gcp_double.faults["bigquery.datasets.get"]
    assert faults > 0
    assert gcp_double.count("datasets.get") == 20 + faults
    gcp_double.set_faults(0)
