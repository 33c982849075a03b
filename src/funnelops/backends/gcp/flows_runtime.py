"""The gcp backend's flows runtime: Spark over the buckets' URIs for trusted, BigQuery for refined.

What runs on Dataproc (the launcher sets FUNNELOPS_BACKEND=gcp): the raw and trusted buckets are
``gs://<bucket>``, or ``$FUNNELOPS_BUCKETS_URI/<bucket>`` when that is set (a ``file://``
folder, so the whole gcp path can be exercised on one machine); Excel workbooks are read on the
driver through the backend's storage client; BigQuery jobs go through the backend's clients
(FUNNELOPS_BIGQUERY_ENDPOINT with anonymous credentials for the contract double; otherwise
Application Default Credentials).

Overlap guard: the workflow's GCS lease, taken by a scheduled fire (``--lease=scheduled``) or
verified for a run the CLI started (``--lease=<owner token>``); see
:mod:`funnelops.backends.gcp.cluster_lease`. A run without ``--lease`` (the flows started by hand,
outside any template) guards nothing, as the local backend does without FUNNELOPS_WORKFLOW.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

from funnelops.errors import UsageError
from funnelops.flows.engines.base import FlowsRuntime, PassThroughGuard


def bucket_root(bucket: str) -> str:
    """The URI of a bucket as the Spark engine reads and writes it."""
    root = os.environ.get("FUNNELOPS_BUCKETS_URI", "").strip().rstrip("/")
    return f"{root}/{bucket}" if root else f"gs://{bucket}"


def read_object(uri: str, project: str | None = None) -> bytes:
    """A whole object: gs:// through google-cloud-storage (honouring FUNNELOPS_STORAGE_ENDPOINT
    via the backend's clients), anything else as a local file."""
    if uri.startswith("gs://"):
        from funnelops.backends.gcp.clients import Clients

        bucket, _, name = uri[len("gs://"):].partition("/")
        client = Clients(project or "", "").storage
        return client.bucket(bucket).blob(name).download_as_bytes()
    from funnelops.flows.spark_io import read_local

    return read_local(uri)


def _check_engine() -> None:
    engine = (os.environ.get("FUNNELOPS_ENGINE") or "spark").strip().lower()
    if engine != "spark":
        raise UsageError(f"FUNNELOPS_ENGINE={engine} cannot run the gcp path",
                         "the gcp path reads gs:// with Spark: set FUNNELOPS_ENGINE=spark or unset it")


def gcp_flows_runtime(home: Path, loaded: Any, ctx: Any = None) -> FlowsRuntime:
    """The flows runtime of a project deployed on gcp (`home` is unused: nothing is local);
    `ctx` (the run's RunContext) brings the run tail: --lease and --workflow."""
    from funnelops.backends.gcp.cluster_lease import guard_for

    from funnelops.flows.engines.bigquery_refined import BigQueryRefined
    from funnelops.flows.engines.spark_trusted import SparkTrusted

    _check_engine()
    project = loaded.spec.project

    def clients() -> Any:
        from funnelops.backends.gcp.clients import Clients

        return Clients(project.id, project.region)

    def trusted(ctx: Any) -> Any:
        return SparkTrusted.open(ctx, raw_root=bucket_root(ctx.bucket_name("raw")),
                                 trusted_root=bucket_root(ctx.bucket_name("trusted")),
                                 read_bytes=partial(read_object, project=project.id),
                                 master=os.environ.get("FUNNELOPS_SPARK_MASTER") or None)

    guard = guard_for(loaded, getattr(ctx, "lease", None), getattr(ctx, "workflow", None))
    return FlowsRuntime(trusted=trusted, refined=lambda ctx: BigQueryRefined.open(ctx, clients),
                        guard=guard or PassThroughGuard(), label=" backend=gcp")
