"""A Cloud Monitoring log-based alert policy on failed Dataproc jobs: the ``alert_policy`` kind.

Why: funnelops notifies run ends it observes (`notifications.channels`), but a workflow template
instantiated from the console, or a run nobody polls, would go unnoticed. Google's own alerting
watches the logs instead: one policy per project (``notifications.gcp_alert``), owned by the gcp
backend (see `GcpBackend.owned_resources`), planned and applied like any resource.

The condition is a ``conditionMatchedLog`` over Dataproc's error logs in the project's region:
the cluster logs (``cloud_dataproc_cluster``: the Dataproc agent reports a failed job or
workflow step there) and the job resource (``cloud_dataproc_job``: the job driver's output, when
``dataproc:dataproc.logging.stackdriver.job.driver.enable`` is set on the cluster), severity ERROR
or worse. Sources:
https://cloud.google.com/dataproc/docs/guides/stackdriver-logging (Dataproc job and cluster logs),
https://cloud.google.com/dataproc/docs/guides/driver-output (driver output in Logging, on the job resource),
https://cloud.google.com/monitoring/alerts/log-based-alerts (log-match conditions: one condition per
policy, and ``alertStrategy.notificationRateLimit`` is required).

Google assigns a policy's name (``projects/P/alertPolicies/ID``), so the name funnelops gives the
resource maps to it through a small record in the artifacts bucket
(``funnelops/alert-policies/<name>.json``): observe reads the records (one GCS list; no
Monitoring call at all for a project that never asked for a policy), then GETs each policy.
The REST API is called through google-auth's AuthorizedSession (no extra client library).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from funnelops.backends.base import Observed
from funnelops.backends.gcp import retry
from funnelops.backends.gcp.clients import Clients
from funnelops.errors import BackendError
from funnelops.resources import Resource

RECORDS = "funnelops/alert-policies/"
NAME = "dataproc-failures"
MANAGED_LABEL = "funnelops-managed"


def log_filter(project: str, region: str) -> str:
    """Error logs of Dataproc jobs and clusters in the project's region (see the module's sources)."""
    return (f'resource.type=("cloud_dataproc_cluster" OR "cloud_dataproc_job")\n'
            f'resource.labels.project_id="{project}"\n'
            f'resource.labels.region="{region}"\n'
            f'severity>=ERROR')


def desired(spec: Any, project: str, region: str) -> Resource | None:
    """The alert policy the project asks for (None: none)."""
    n = spec.notifications
    alert = n.gcp_alert if n is not None else None
    if alert is None:
        return None
    return Resource("alert_policy", NAME, {
        "display_name": f"funnelops {project}: a Dataproc job or workflow failed",
        "filter": log_filter(project, region),
        "notification_channels": sorted(alert.notification_channels),
        "rate_limit": alert.rate_limit,
        "auto_close": alert.auto_close,
        "enabled": True,
    })


def policy_body(cfg: dict[str, Any]) -> dict[str, Any]:
    """The AlertPolicy (REST JSON) of a neutral config: what create sends and `plan --refresh=false` shows."""
    return {
        "displayName": cfg["display_name"],
        "documentation": {"mimeType": "text/markdown", "content": (
            "A Dataproc job or workflow of this project logged an error. See the failed run with "
            "`funnelops --backend gcp runs` and its output with `funnelops --backend gcp logs RUN`.")},
        "userLabels": {MANAGED_LABEL: "true"},
        "combiner": "OR",
        "conditions": [{"displayName": "Dataproc error logs",
                        "conditionMatchedLog": {"filter": cfg["filter"]}}],
        "alertStrategy": {"notificationRateLimit": {"period": cfg["rate_limit"]}, "autoClose": cfg["auto_close"]},
        "notificationChannels": list(cfg["notification_channels"]),
        "enabled": bool(cfg["enabled"]),
    }


def config_of(policy: dict[str, Any]) -> dict[str, Any]:
    """A policy as Google returns it, in the neutral shape (what the diff compares)."""
    cond = ((policy.get("conditions") or [{}])[0].get("conditionMatchedLog") or {})
    strategy = policy.get("alertStrategy") or {}
    return {"display_name": policy.get("displayName", ""), "filter": cond.get("filter", ""),
            "notification_channels": sorted(policy.get("notificationChannels") or []),
            "rate_limit": (strategy.get("notificationRateLimit") or {}).get("period", ""),
            "auto_close": strategy.get("autoClose", ""), "enabled": bool(policy.get("enabled", True))}


class AlertPolicyHandler:
    """Create, read, update and delete the project's alert policy (REST, through the clients' session)."""

    kind = "alert_policy"

    def __init__(self, clients: Clients, bucket: str, before_write: Callable[[], object]) -> None:
        self.clients = clients
        self.bucket = bucket
        self.before_write = before_write  # makes the artifacts bucket (where the records live)

    # -- records -------------------------------------------------------------------------------
    def _records(self) -> dict[str, str]:
        """{resource name: Google's policy name} of the policies funnelops made."""
        from google.api_core import exceptions

        uri = f"gs://{self.bucket}/{RECORDS}"
        try:
            blobs = retry.call(lambda: list(self.clients.storage.list_blobs(self.bucket, prefix=RECORDS, retry=None)),
                               uri, raw=True)
        except exceptions.NotFound:
            return {}
        except Exception as exc:
            raise retry.describe(exc, uri, "storage.objects.list") from None
        out = {}
        for b in blobs:
            try:
                out[b.name[len(RECORDS):-len(".json")]] = json.loads(b.download_as_bytes(retry=None))["policy"]
            except (ValueError, KeyError):
                continue
        return out

    def _record(self, name: str, policy: str | None) -> None:
        blob = self.clients.storage.bucket(self.bucket).blob(f"{RECORDS}{name}.json")
        if policy is None:
            from google.api_core import exceptions

            try:
                retry.call(lambda: blob.delete(retry=None), f"gs://{self.bucket}/{RECORDS}{name}.json", raw=True)
            except exceptions.NotFound:
                pass
            return
        body = json.dumps({"policy": policy})
        retry.call(lambda: blob.upload_from_string(body, content_type="application/json", retry=None),
                   f"gs://{self.bucket}/{RECORDS}{name}.json", permission="storage.objects.create")

    # -- the REST calls --------------------------------------------------------------------------
    def _call(self, verb: str, path: str, what: str, permission: str, body: Any = None,
              params: dict[str, str] | None = None) -> dict[str, Any]:
        api = self.clients.monitoring

        def send() -> dict[str, Any]:
            resp = api.session.request(verb, f"{api.base}/v3/{path}", json=body, params=params, timeout=60)
            resp.raise_for_status()
            return resp.json() if resp.content else {}

        return retry.call(send, what, permission=permission)

    # -- the ResourceHandler protocol --------------------------------------------------------------
    def observe(self, names: Iterable[str]) -> dict[str, Observed]:
        out: dict[str, Observed] = {}
        for name, policy in self._records().items():
            try:
                live = self._call("GET", policy, f"alert policy {policy}", "monitoring.alertPolicies.get")
            except BackendError as exc:
                if exc.details.get("status") == 404:  # deleted by hand: absent (create makes it again)
                    continue
                raise
            out[name] = Observed(config_of(live), extra={"policy": policy})
        return out

    def create(self, res: Resource) -> None:
        self.before_write()
        made = self._call("POST", f"projects/{self.clients.project}/alertPolicies", f"alert policy {res.name}",
                          "monitoring.alertPolicies.create", body=policy_body(res.config))
        self._record(res.name, made["name"])

    def update(self, res: Resource, observed: Observed, changed: list[str]) -> None:
        policy = observed.extra["policy"]
        body = policy_body(res.config)
        mask = ",".join(sorted({_MASK[f] for f in changed if f in _MASK})) or "displayName"
        self._call("PATCH", policy, f"alert policy {policy}", "monitoring.alertPolicies.update",
                   body={k: v for k, v in body.items() if k in mask.split(",")},
                   params={"updateMask": mask})

    def delete(self, name: str, observed: Observed) -> None:
        policy = observed.extra["policy"]
        try:
            self._call("DELETE", policy, f"alert policy {policy}", "monitoring.alertPolicies.delete")
        except BackendError as exc:
            if exc.details.get("status") != 404:
                raise
        self._record(name, None)


# neutral field -> the AlertPolicy field an update mask names
_MASK = {"display_name": "displayName", "filter": "conditions", "notification_channels": "notificationChannels",
         "rate_limit": "alertStrategy", "auto_close": "alertStrategy", "enabled": "enabled"}
