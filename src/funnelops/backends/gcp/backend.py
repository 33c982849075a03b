"""GcpBackend: the handlers, storage, ledger and runtime for one project on Google Cloud.

Everything funnelops itself keeps on gcp (the ledger, the leases, the bucket records, the
artifacts Dataproc runs) lives in one *artifacts bucket*: ``project.artifacts_bucket``, else the
bucket whose role is ``artifacts``, else ``<project-id>-funnelops``. It is made on first need
(with the project's settings for it when the project declares it), so the first apply can
upload artifacts before templates reference them, whatever order the plan runs in.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Iterator, Sequence

from funnelops.backends.gcp.apply_lease import ApplyLease
from funnelops.backends.gcp.artifacts import Artifacts, ArtifactsHandler
from funnelops.backends.gcp.bigquery import (DatasetHandler, ExternalTableHandler, Snapshot, TableHandler,
                                             ViewHandler)
from funnelops.backends.gcp.clients import Clients
from funnelops.backends.gcp.dataproc import TemplateHandler
from funnelops.backends.gcp.leases import Leases
from funnelops.backends.gcp.ledger import LEDGER, GcsJson, GcsLedger
from funnelops.backends.gcp.monitoring import AlertPolicyHandler
from funnelops.backends.gcp.runtime import GcpRuntime
from funnelops.backends.gcp.scheduler import SchedulerHandler
from funnelops.backends.gcp.storage import BucketHandler, BucketRecords, GcsStorage, default_bucket_config
from funnelops.backends.types import invoked_command
from funnelops.resources import Resource

if TYPE_CHECKING:
    from funnelops.backends.types import ApplyHolder, QueryResult, RelationStats
    from funnelops.plan.model import Plan

WAREHOUSE_KINDS = ("dataset", "table", "external_table", "view")


def artifacts_bucket_of(spec: Any) -> str:
    p = spec.project
    if p.artifacts_bucket:
        return p.artifacts_bucket
    b = spec.bucket_for("artifacts")
    return b.name if b is not None else f"{p.id}-funnelops"


class GcpBackend:
    """Implements `backends.base.Backend` for one Google Cloud project."""

    name = "gcp"
    max_parallel = 16
    scheduler_daemon = False  # Cloud Scheduler fires the jobs on its own clock

    def __init__(self, project: str, region: str, *, artifacts_bucket: str, loaded: Any | None = None,
                 service_account: str | None = None, home: Path | None = None, deep_observe: bool | None = None,
                 max_parallel: int | None = None) -> None:
        from funnelops.resources import desired_resources

        if max_parallel:
            self.max_parallel = max_parallel
        self.home = home
        self.loaded = loaded
        self.clients = Clients(project, region)
        self.storage = GcsStorage(self.clients)
        self.artifacts_bucket = artifacts_bucket
        self.artifacts = Artifacts(self.clients, artifacts_bucket, loaded, home)
        self._bucket_lock = threading.RLock()
        self._artifacts_ready = False
        desired: dict[str, dict[str, Resource]] = {k: {} for k in WAREHOUSE_KINDS + ("bucket",)}
        if loaded is not None:
            for r in desired_resources(loaded, "workflow"):
                if r.kind in desired:
                    desired[r.kind][r.name] = r
        self._desired_buckets = desired["bucket"]
        if deep_observe is None:
            deep_observe = os.environ.get("FUNNELOPS_GCP_DEEP_OBSERVE", "") not in ("", "0", "false")
        self.snapshot = Snapshot(self.clients, self.max_parallel)
        records = BucketRecords(self.clients, artifacts_bucket)
        self.schedulers = SchedulerHandler(self.clients, service_account)
        wh = {k: {n: r.config for n, r in desired[k].items()} for k in WAREHOUSE_KINDS}
        self._handlers: dict[str, Any] = {
            "bucket": BucketHandler(self.clients, self.storage, records, self.ensure_artifacts_bucket,
                                    self.max_parallel),
            "dataset": DatasetHandler(self.clients, self.snapshot, wh["dataset"], self.max_parallel, deep_observe),
            "table": TableHandler(self.clients, self.snapshot, wh["table"], self.max_parallel, deep_observe),
            "external_table": ExternalTableHandler(self.clients, self.snapshot, wh["external_table"],
                                                   self.max_parallel, deep_observe),
            "view": ViewHandler(self.clients, self.snapshot, wh["view"], self.max_parallel, deep_observe),
            "artifacts": ArtifactsHandler(self.artifacts, self.ensure_artifacts_bucket),
            # a template write needs the bucket only: the artifacts are their own planned resource
            "workflow_template": TemplateHandler(self.clients, self.artifacts, self.ensure_artifacts_bucket),
            "scheduler": self.schedulers,
            "alert_policy": AlertPolicyHandler(self.clients, artifacts_bucket, self.ensure_artifacts_bucket),
        }
        self.ledger = GcsLedger(GcsJson(self.clients, artifacts_bucket, LEDGER, self.ensure_artifacts_bucket))
        self.leases = Leases(self.clients, artifacts_bucket, self.ensure_artifacts_bucket)
        self._apply_lease = ApplyLease(self.clients, artifacts_bucket)
        self._apply_depth = 0
        self.runtime = GcpRuntime(self.clients, self.ledger, self.leases, self.schedulers, loaded,
                                  verify_artifacts=self.artifacts.verify, apply_holder=self.apply_holder)

    @classmethod
    def for_project(cls, loaded: Any, home: Path) -> GcpBackend:
        p = loaded.spec.project
        return cls(p.id, p.region, artifacts_bucket=artifacts_bucket_of(loaded.spec), loaded=loaded,
                   service_account=p.service_account, home=Path(home))

    def handler(self, kind: str) -> Any:
        return self._handlers[kind]

    def offline_requests(self, resources: Sequence[Resource]) -> list[dict[str, Any]]:
        """The create request apply would send for each resource, rendered offline (see .offline)."""
        from funnelops.backends.gcp.offline import offline_requests

        return offline_requests(self, resources)

    def owned_resources(self, stage: str) -> list[Resource]:
        """The artifacts Dataproc runs (one resource, diffed by content hash), at every stage:
        templates reference them from the first stage on; and the log-based alert policy on failed
        Dataproc jobs when the project asks for one (`notifications.gcp_alert`)."""
        from funnelops.backends.gcp.monitoring import desired as alert_policy

        if self.loaded is None:
            return []
        owned = [self._handlers["artifacts"].resource()] if self.loaded.spec.workflows else []
        alert = alert_policy(self.loaded.spec, self.clients.project, self.clients.region)
        return owned + ([alert] if alert is not None else [])

    def table_rows(self, name: str) -> int:
        return self._handlers["table"].rows(name)

    def read_query(self, sql: str) -> list[tuple[Any, ...]]:
        from funnelops.spec.sqlrefs import table_refs

        table_refs(sql)  # one read-only query, or UnsafeSql: the same rule as views
        job = self.clients.bigquery.query(sql, retry=None)
        return [tuple(row.values()) for row in job.result()]

    def read_query_table(self, sql: str, *, max_rows: int | None = None, timeout: float | None = None,
                         on_wait: Callable[[str], None] | None = None) -> QueryResult:
        """One read-only query as a BigQuery job (see gcp/query.py)."""
        from funnelops.backends.gcp.query import read_table

        return read_table(self, sql, max_rows=max_rows, timeout=timeout, on_wait=on_wait)

    def relation_stats(self, name: str, kind: str, period_column: str | None = None) -> RelationStats:
        """numRows and the newest partition, from metadata (see gcp/query.py)."""
        from funnelops.backends.gcp.query import relation_stats

        return relation_stats(self, name, kind, period_column)

    def warehouse_location(self) -> str:
        return f"BigQuery project {self.clients.project}"

    def data_uri(self, bucket: str, path: str = "") -> str:
        return f"gs://{bucket}/{path}"

    # -- the artifacts bucket -------------------------------------------------------------------
    def ensure_artifacts_bucket(self) -> None:
        """Make the artifacts bucket if it is missing (once per process)."""
        from google.api_core import exceptions

        from funnelops.backends.gcp import retry

        with self._bucket_lock:
            if self._artifacts_ready:
                return
            name = self.artifacts_bucket
            try:
                retry.call(lambda: self.clients.storage.get_bucket(name, retry=None), f"bucket {name}",
                           permission="storage.buckets.get", raw=True)
            except exceptions.NotFound:
                location = self.loaded.spec.project.location if self.loaded is not None else "US"
                res = self._desired_buckets.get(name) or Resource("bucket", name, default_bucket_config(location))
                self._artifacts_ready = True  # the handler records into it once it is made
                self._handlers["bucket"].create(res)
            except Exception as exc:
                raise retry.describe(exc, f"bucket {name}", "storage.buckets.get") from None
            self._artifacts_ready = True

    def upload_artifacts(self) -> list[str]:
        self.ensure_artifacts_bucket()
        return self.artifacts.ensure()

    @contextmanager
    def apply_session(self) -> Iterator[None]:
        """An apply observes fresh afterwards: listings cached before it are dropped."""
        try:
            yield
        finally:
            self.refresh()

    @contextmanager
    def apply_lock(self) -> Iterator[None]:
        """The project's apply lease (apply_lease.py: a GCS object with generation preconditions and
        a renewed expiry), re-entrant within this backend object."""
        if self._apply_depth == 0:
            self._apply_lease.take(command=invoked_command())
        self._apply_depth += 1
        try:
            yield
        finally:
            self._apply_depth -= 1
            if self._apply_depth == 0:
                self._apply_lease.give_back()

    def apply_holder(self) -> ApplyHolder | None:
        """The live holder of the apply lease (an expired one does not count), or None."""
        return self._apply_lease.holder()

    def check_plan(self, plan: Plan) -> None:
        """No pre-flight on gcp: BigQuery checks each change as it is made."""

    def refresh(self) -> None:
        self.snapshot.invalidate()

    def close(self) -> None:
        self.clients.close()
