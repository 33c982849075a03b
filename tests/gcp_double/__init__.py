"""An in-process HTTP contract double for BigQuery v2, Dataproc v1 and Cloud Scheduler v1.

Why: no machine here reaches Google, yet the gcp backend must be proven through Google's own
clients. The double is reached over real HTTP and holds every request to the discovery
documents google-api-python-client ships, so a body Google would refuse fails here too.

Usage::

    with GcpDouble(op_duration_s=0.3) as d:
        opts = {"api_endpoint": d.url}            # or d.endpoint("dataproc") for one API
        templates = dataproc_v1.WorkflowTemplateServiceClient(
            transport="rest", credentials=AnonymousCredentials(), client_options=opts)
        bq = bigquery.Client(project="p", credentials=AnonymousCredentials(), client_options=opts)
        ...
        d.set_latency(50); d.set_faults(0.1, (429, 503), seed=1); d.fail_next(2, 503, "jobs.get")
        d.dataproc.set_run_outcome("dia", duration_s=None)   # runs until d.dataproc.finish(...)
        d.bigquery.add_answer(r"COUNT\\(\\*\\)", rows=[[42]], schema=[("n", "INTEGER")])
        d.calls, d.count("workflowTemplates"), d.faults     # per discovery method id
        d.violations, d.response_problems, d.assert_clean(), d.reset()

Modules: :mod:`.discovery` (routing and validation), :mod:`.server` (HTTP, knobs, counters),
:mod:`.bigquery` / :mod:`.bigquery_rules` / :mod:`.bigquery_jobs`, :mod:`.dataproc`,
:mod:`.scheduler`. GCS is fake-gcs-server behind :mod:`.gcs_proxy` (rules in :mod:`.gcs_rules`),
which holds every storage request to storage.v1.json the same way (the ``fake_gcs`` fixture).
"""

from .common import ApiError
from .discovery import DiscoveryUnavailable
from .server import GcpDouble, Violation

__all__ = ["ApiError", "DiscoveryUnavailable", "GcpDouble", "Violation"]
