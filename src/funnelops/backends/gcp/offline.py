"""What apply would send to Google, rendered with no credentials and no network (`plan --refresh=false`).

Why: a reviewer (or a pipeline's approval gate) reads the exact REST requests before anything is
applied, as Terraform's ``plan -refresh=false`` + ``show -json`` allow. Every body comes from the
function apply itself calls -- the handlers' ``body(res)`` (BigQuery, Dataproc, Cloud Scheduler),
the bucket handler's own ``_apply`` on a client-less ``Bucket`` serialised the way
``storage.Client.create_bucket`` does, and the runtime's ``instantiate_body`` -- so what is reviewed
cannot drift from what is sent. Nothing here builds a client: ``Clients`` is lazy and these
functions only read the project id, the region and the endpoints.

Each entry is the *create* request (nothing is observed, so nothing is known to exist); an update
sends the same body (templates: plus the current ``name``/``version``; tables, datasets and
scheduler jobs: a PATCH of the changed fields).
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any
from collections.abc import Sequence

from funnelops.backends.gcp.clients import endpoint
from funnelops.resources import Resource

if TYPE_CHECKING:
    from funnelops.backends.gcp.backend import GcpBackend

GOOGLE = {"storage": "https://storage.googleapis.com", "bigquery": "https://bigquery.googleapis.com",
          "scheduler": "https://cloudscheduler.googleapis.com", "monitoring": "https://monitoring.googleapis.com"}
PER_RUN_REQUEST_ID = "fo- + 32 hex chars of sha256(<template name>/<lease owner>): one per run, so a retried " \
                     "instantiate joins the same run"
# What `FO_LEASE` carries on a CLI start: the lease owner token, random per run (a scheduled fire sends
# `--lease=scheduled`, shown in the scheduler's decoded body).
PER_RUN_LEASE = "LEASE-OWNER-TOKEN"


def _base(service: str, region: str) -> str:
    """Where the request goes: the overriding endpoint when set (as the clients do), else Google's."""
    default = f"https://{region}-dataproc.googleapis.com" if service == "dataproc" else GOOGLE[service]
    return endpoint(service) or default


def _decoded(b64: str | None) -> Any:
    """A scheduler job's HTTP body, decoded (JSON when it is JSON)."""
    if not b64:
        return None
    raw = base64.b64decode(b64).decode("utf-8", "replace")
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _request(backend: GcpBackend, res: Resource) -> dict[str, Any]:
    c = backend.clients
    handler = backend.handler(res.kind)
    if res.kind == "bucket":
        from funnelops.backends.gcp.storage import bucket_body

        return {"method": "POST", "url": f"{_base('storage', c.region)}/storage/v1/b?project={c.project}",
                "body": bucket_body(res.name, res.config)}
    if res.kind == "artifacts":  # one upload per object whose hash differs from the bucket's
        return {"method": "POST",
                "url": f"{_base('storage', c.region)}/upload/storage/v1/b/{res.name}/o?uploadType=multipart",
                "body": {"objects_sha256": dict(sorted(res.config.items()))}}
    if res.kind == "dataset":
        return {"method": "POST", "url": f"{_base('bigquery', c.region)}/bigquery/v2/projects/{c.project}/datasets",
                "body": handler.body(res)}
    if res.kind in ("table", "external_table", "view"):
        ds = res.name.split(".", 1)[0]
        return {"method": "POST",
                "url": f"{_base('bigquery', c.region)}/bigquery/v2/projects/{c.project}/datasets/{ds}/tables",
                "body": handler.body(res)}
    if res.kind == "workflow_template":
        return {"method": "POST", "url": f"{_base('dataproc', c.region)}/v1/{c.region_path}/workflowTemplates",
                "body": handler.body(res)}
    if res.kind == "scheduler":
        return {"method": "POST", "url": f"{_base('scheduler', c.region)}/v1/{c.location_path}/jobs",
                "body": handler.body(res)}
    if res.kind == "alert_policy":
        from funnelops.backends.gcp.monitoring import policy_body

        return {"method": "POST", "url": f"{_base('monitoring', c.region)}/v3/projects/{c.project}/alertPolicies",
                "body": policy_body(res.config)}
    body = getattr(handler, "body", None)  # a kind added later: its own body function, if it has one
    return {"method": None, "url": None, "body": body(res) if callable(body) else None}


def _instantiate(backend: GcpBackend, template_body: dict[str, Any], workflow: str) -> dict[str, Any]:
    """The body a plain `funnelops start <workflow>` sends (a run with no extra arguments)."""
    from funnelops.backends.gcp.runtime import instantiate_body

    body = instantiate_body(workflow, template_body, (), lease=PER_RUN_LEASE,
                            values=backend.runtime.user_values(workflow))
    name = backend.clients.template_name(workflow)
    return {"method": "POST", "url": f"{_base('dataproc', backend.clients.region)}/v1/{name}:instantiate",
            "body": body, "per_run": {"requestId": PER_RUN_REQUEST_ID,
                                        "parameters.FO_LEASE": "--lease=<the run's lease owner token>"}}


def offline_requests(backend: GcpBackend, resources: Sequence[Resource]) -> list[dict[str, Any]]:
    """One entry per resource: its address, dependencies and the create request apply would send."""
    out = []
    for res in resources:
        entry: dict[str, Any] = {"address": res.address, "kind": res.kind, "name": res.name,
                                 "depends_on": list(res.depends_on), "request": _request(backend, res)}
        body = entry["request"]["body"] or {}
        if res.kind == "workflow_template":
            entry["instantiate"] = _instantiate(backend, body, res.name)
        if res.kind == "scheduler":
            entry["http_body"] = _decoded((body.get("httpTarget") or {}).get("body"))
            if res.config.get("paused") and body.get("name"):  # apply pauses it right after creating it
                entry["then"] = {"method": "POST", "url": f"https://cloudscheduler.googleapis.com/v1/{body['name']}:pause",
                                 "body": {}}
        out.append(entry)
    return out
