"""The four official clients, built once, pointed at Google or at emulators.

Endpoints come from ``FUNNELOPS_STORAGE_ENDPOINT``, ``FUNNELOPS_BIGQUERY_ENDPOINT``,
``FUNNELOPS_DATAPROC_ENDPOINT`` and ``FUNNELOPS_SCHEDULER_ENDPOINT``: when one is set, that
service is reached there with anonymous credentials (an emulator or the contract double);
otherwise Application Default Credentials and Google's own endpoint. Dataproc and Cloud
Scheduler use ``transport="rest"`` (no gRPC channel to open, the same wire as the emulators).

Every client's HTTP session gets a connection pool as large as our parallelism, so bounded
parallel observation never queues on the default pool of 10, and a response hook that counts
requests (what ``bench/plan_gcp.py`` reports).
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from typing import Any

ENV = {"storage": "FUNNELOPS_STORAGE_ENDPOINT", "bigquery": "FUNNELOPS_BIGQUERY_ENDPOINT",
       "dataproc": "FUNNELOPS_DATAPROC_ENDPOINT", "scheduler": "FUNNELOPS_SCHEDULER_ENDPOINT",
       "monitoring": "FUNNELOPS_MONITORING_ENDPOINT"}
POOL = 32


def endpoint(service: str) -> str | None:
    """The overriding endpoint of a service ('' or unset: Google's own)."""
    value = os.environ.get(ENV[service], "").strip().rstrip("/")
    return value or None


class Clients:
    """Lazily built clients for one Google project and region; thread-safe."""

    def __init__(self, project: str, region: str) -> None:
        self.project = project
        self.region = region
        self.calls: Counter[str] = Counter()  # HTTP requests sent, per service
        self._lock = threading.Lock()
        self._built: dict[str, Any] = {}
        self._adc: Any = None

    # -- credentials ------------------------------------------------------------------------
    def _credentials(self, service: str) -> Any:
        if endpoint(service):
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()
        if self._adc is None:
            import google.auth

            from funnelops.errors import BackendError

            try:
                self._adc, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
            except google.auth.exceptions.DefaultCredentialsError as exc:
                raise BackendError(f"no Google credentials: {exc}",
                                   "run `gcloud auth application-default login`, or set "
                                   "GOOGLE_APPLICATION_CREDENTIALS, or point FUNNELOPS_*_ENDPOINT "
                                   "at emulators") from None
        return self._adc

    def _options(self, service: str) -> dict[str, Any]:
        url = endpoint(service)
        return {"api_endpoint": url} if url else {}

    def _instrument(self, service: str, session: Any) -> None:
        """Bigger pool + a counting hook on a requests.Session (all clients use one)."""
        if session is None or not hasattr(session, "mount"):
            return
        import requests.adapters

        adapter = requests.adapters.HTTPAdapter(pool_connections=POOL, pool_maxsize=POOL)
        session.mount("http://", adapter)
        session.mount("https://", adapter)

        def count(resp: Any, *args: Any, **kwargs: Any) -> None:
            self.calls[service] += 1

        session.hooks.setdefault("response", []).append(count)

    def _get(self, service: str) -> Any:
        with self._lock:
            client = self._built.get(service)
            if client is None:
                client = self._built[service] = getattr(self, "_build_" + service)()
            return client

    # -- the clients ------------------------------------------------------------------------
    def _build_storage(self) -> Any:
        from google.auth.transport.requests import AuthorizedSession
        import google.cloud.storage as storage  # untyped package: `from google.cloud import` hides it

        creds = self._credentials("storage")
        session = AuthorizedSession(creds)
        self._instrument("storage", session)
        return storage.Client(project=self.project, credentials=creds, _http=session,
                              client_options=self._options("storage"))

    def _build_bigquery(self) -> Any:
        from google.auth.transport.requests import AuthorizedSession
        from google.cloud import bigquery

        creds = self._credentials("bigquery")
        session = AuthorizedSession(creds)
        self._instrument("bigquery", session)
        return bigquery.Client(project=self.project, credentials=creds, _http=session,
                               client_options=self._options("bigquery"))

    def _build_dataproc(self) -> Any:
        from google.cloud import dataproc_v1

        client = dataproc_v1.WorkflowTemplateServiceClient(
            transport="rest", credentials=self._credentials("dataproc"),
            client_options=self._options("dataproc") or
            {"api_endpoint": f"{self.region}-dataproc.googleapis.com"})
        self._instrument("dataproc", getattr(client._transport, "_session", None))
        return client

    def _build_dataproc_jobs(self) -> Any:
        """Dataproc's job controller (jobs.get: where a step's driver output is); regional, like templates."""
        from google.cloud import dataproc_v1

        client = dataproc_v1.JobControllerClient(
            transport="rest", credentials=self._credentials("dataproc"),
            client_options=self._options("dataproc") or
            {"api_endpoint": f"{self.region}-dataproc.googleapis.com"})
        self._instrument("dataproc", getattr(client._transport, "_session", None))
        return client

    def _build_scheduler(self) -> Any:
        from google.cloud import scheduler_v1

        client = scheduler_v1.CloudSchedulerClient(
            transport="rest", credentials=self._credentials("scheduler"),
            client_options=self._options("scheduler"))
        self._instrument("scheduler", getattr(client._transport, "_session", None))
        return client

    def _build_monitoring(self) -> Any:
        """Cloud Monitoring's REST API over an AuthorizedSession (the alert policy only: a client
        library for one resource would be a heavy dependency)."""
        from types import SimpleNamespace

        from google.auth.transport.requests import AuthorizedSession

        session = AuthorizedSession(self._credentials("monitoring"))
        self._instrument("monitoring", session)
        return SimpleNamespace(session=session, base=endpoint("monitoring") or "https://monitoring.googleapis.com",
                               close=session.close)

    @property
    def monitoring(self) -> Any:
        return self._get("monitoring")

    @property
    def storage(self) -> Any:
        return self._get("storage")

    @property
    def bigquery(self) -> Any:
        return self._get("bigquery")

    @property
    def dataproc(self) -> Any:
        return self._get("dataproc")

    @property
    def scheduler(self) -> Any:
        return self._get("scheduler")

    @property
    def dataproc_jobs(self) -> Any:
        return self._get("dataproc_jobs")

    # -- names --------------------------------------------------------------------------------
    @property
    def region_path(self) -> str:
        return f"projects/{self.project}/regions/{self.region}"

    @property
    def location_path(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    def template_name(self, workflow: str) -> str:
        return f"{self.region_path}/workflowTemplates/{workflow}"

    def job_name(self, scheduler_id: str) -> str:
        return f"{self.location_path}/jobs/{scheduler_id}"

    def instantiate_uri(self, workflow: str) -> str:
        """What a Cloud Scheduler job POSTs to; follows FUNNELOPS_DATAPROC_ENDPOINT when set, so
        an emulator that dispatches scheduler runs reaches its own Dataproc."""
        base = endpoint("dataproc") or "https://dataproc.googleapis.com"
        return f"{base}/v1/{self.template_name(workflow)}:instantiate"

    def close(self) -> None:
        with self._lock:
            for client in self._built.values():
                fn = getattr(client, "close", None) or getattr(getattr(client, "transport", None), "close", None)
                if fn is not None:
                    try:
                        fn()
                    except Exception:  # closing is best effort
                        pass
            self._built.clear()
