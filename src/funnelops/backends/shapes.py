"""Neutral resource configs <-> the JSON shapes Google's APIs take.

Workflow templates and schedulers are stored by the local backend in exactly the shape the gcp
backend sends to Dataproc and Cloud Scheduler, so what `plan` shows locally is what would be
sent. Both directions live here so a round trip is lossless and testable.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from collections.abc import Callable

from funnelops.backends.types import SchedulerState

GRANULARITY_LABEL = "funnelops-granularity"
INITIAL_LOAD_LABEL = "funnelops-initial-load"
OAUTH_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DATAPROC_ROOT = "https://dataproc.googleapis.com/v1"


def template_to_dataproc(name: str, cfg: dict[str, Any], main_uri: Callable[[str], str],
                         python_file_uris: list[str] | None = None,
                         init_actions: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """A neutral workflow template config as a Dataproc `WorkflowTemplate` body (camelCase).

    `init_actions` (``NodeInitializationAction`` bodies) go to the managed cluster's
    ``config.initializationActions``: the gcp backend installs the cluster's wheelhouse there."""
    labels = dict(cfg.get("labels", {}))
    labels[GRANULARITY_LABEL] = cfg["granularity"].lower()
    labels[INITIAL_LOAD_LABEL] = "true" if cfg.get("initial_load") else "false"
    p = cfg["placement"]
    jobs = []
    for job in cfg["jobs"]:
        pyspark: dict[str, Any] = {"mainPythonFileUri": main_uri(job["main"]), "args": list(job["args"])}
        if python_file_uris:
            pyspark["pythonFileUris"] = list(python_file_uris)
        if job.get("properties"):
            pyspark["properties"] = dict(job["properties"])
        body: dict[str, Any] = {"stepId": job["step_id"], "pysparkJob": pyspark}
        if job.get("prerequisites"):
            body["prerequisiteStepIds"] = list(job["prerequisites"])
        jobs.append(body)
    out: dict[str, Any] = {
        "id": name,
        "labels": dict(sorted(labels.items())),
        "placement": {"managedCluster": {
            "clusterName": p["cluster_name"],
            "config": {
                "masterConfig": {"numInstances": 1, "machineTypeUri": p["master_machine_type"]},
                "workerConfig": {"numInstances": p["workers"], "machineTypeUri": p["worker_machine_type"]},
                "softwareConfig": {"imageVersion": p["image_version"]},
            },
        }},
        "jobs": jobs,
        "dagTimeout": cfg["dag_timeout"],
    }
    if init_actions:
        out["placement"]["managedCluster"]["config"]["initializationActions"] = [dict(a) for a in init_actions]
    if cfg.get("parameters"):
        out["parameters"] = [{k: v for k, v in prm.items() if v not in ("", None)} for prm in cfg["parameters"]]
    return out


def template_from_dataproc(body: dict[str, Any], main_name: Callable[[str], str]) -> dict[str, Any]:
    """A Dataproc `WorkflowTemplate` (as returned) back to the neutral config."""
    labels = dict(body.get("labels", {}))
    granularity = labels.pop(GRANULARITY_LABEL, "").upper()
    initial_load = labels.pop(INITIAL_LOAD_LABEL, "false") == "true"
    mc = body.get("placement", {}).get("managedCluster", {})
    conf = mc.get("config", {})
    jobs = []
    for job in body.get("jobs", []):
        py = job.get("pysparkJob", {})
        jobs.append({
            "step_id": job.get("stepId", ""),
            "main": main_name(py.get("mainPythonFileUri", "")),
            "args": list(py.get("args", [])),
            "prerequisites": list(job.get("prerequisiteStepIds", [])),
            "properties": dict(sorted(py.get("properties", {}).items())),
        })
    params = []
    for prm in body.get("parameters", []):
        params.append({"name": prm.get("name", ""), "fields": list(prm.get("fields", [])),
                       "description": prm.get("description", "")})
    return {
        "granularity": granularity,
        "initial_load": initial_load,
        "jobs": jobs,
        "parameters": params,
        "placement": {
            "cluster_name": mc.get("clusterName", ""),
            "master_machine_type": conf.get("masterConfig", {}).get("machineTypeUri", ""),
            "worker_machine_type": conf.get("workerConfig", {}).get("machineTypeUri", ""),
            "workers": int(conf.get("workerConfig", {}).get("numInstances", 0)),
            "image_version": conf.get("softwareConfig", {}).get("imageVersion", ""),
        },
        "dag_timeout": body.get("dagTimeout", ""),
        "labels": dict(sorted(labels.items())),
    }


def instantiate_uri(project: str, region: str, workflow: str) -> str:
    return f"{DATAPROC_ROOT}/projects/{project}/regions/{region}/workflowTemplates/{workflow}:instantiate"


_WF_FROM_URI = re.compile(r"/workflowTemplates/([^/:]+):instantiate$")
_DESC = re.compile(r"^\[(?P<name>[^\]]*)\] ?(?P<rest>.*)$", re.S)


def _secs(s: int) -> str:
    return f"{int(s)}s"


def scheduler_to_cloud(job_name: str, cfg: dict[str, Any], project: str, region: str,
                       service_account: str | None) -> dict[str, Any]:
    """A neutral scheduler config as a Cloud Scheduler `Job` body.

    Cloud Scheduler has no display name, so the seed's name (`Día`) leads the description.
    """
    r = cfg["retry"]
    target: dict[str, Any] = {
        "uri": instantiate_uri(project, region, cfg["workflow"]),
        "httpMethod": "POST",
        "body": base64.b64encode(b"{}").decode(),
        "headers": {"Content-Type": "application/json"},
    }
    if service_account:
        target["oauthToken"] = {"serviceAccountEmail": service_account, "scope": OAUTH_SCOPE}
    desc = f"[{cfg['display_name']}] {cfg.get('description', '')}".rstrip()
    return {
        "name": job_name,
        "description": desc,
        "schedule": cfg["schedule"],
        "timeZone": cfg["time_zone"],
        "httpTarget": target,
        "retryConfig": {
            "retryCount": r["retry_count"],
            "minBackoffDuration": _secs(r["min_backoff_s"]),
            "maxBackoffDuration": _secs(r["max_backoff_s"]),
            "maxDoublings": r["max_doublings"],
        },
        "attemptDeadline": cfg["attempt_deadline"],
    }


def _parse_secs(v: Any) -> int:
    if isinstance(v, (int, float)):
        return int(v)
    return int(float(str(v).rstrip("s") or 0))


def scheduler_from_cloud(body: dict[str, Any]) -> dict[str, Any]:
    """A Cloud Scheduler `Job` (as returned) back to the neutral config."""
    m = _DESC.match(body.get("description", ""))
    display, desc = (m.group("name"), m.group("rest")) if m else ("", body.get("description", ""))
    uri = body.get("httpTarget", {}).get("uri", "")
    wf = _WF_FROM_URI.search(uri)
    r = body.get("retryConfig", {})
    state = body.get("state", "ENABLED")
    return {
        "display_name": display,
        "schedule": body.get("schedule", ""),
        "time_zone": body.get("timeZone", ""),
        "workflow": wf.group(1) if wf else "",
        "description": desc,
        "retry": {
            "retry_count": int(r.get("retryCount", 0)),
            "min_backoff_s": _parse_secs(r.get("minBackoffDuration", "5s")),
            "max_backoff_s": _parse_secs(r.get("maxBackoffDuration", "3600s")),
            "max_doublings": int(r.get("maxDoublings", 5)),
        },
        "attempt_deadline": body.get("attemptDeadline", ""),
        "paused": state in ("PAUSED", 2),
    }


def scheduler_state(sid: str, body: dict[str, Any]) -> SchedulerState:
    """A Cloud-Scheduler-shaped job (gcp's as listed, local's as stored) as operated.

    One reading for both backends, so `status` finds the last fire under the same name on each.
    """
    cfg = scheduler_from_cloud(body)
    state = body.get("state", "")
    return SchedulerState(id=sid, paused=bool(cfg["paused"]), last_fire=body.get("lastAttemptTime"),
                          reported_next=body.get("scheduleTime"), state=str(state), schedule=cfg["schedule"],
                          time_zone=cfg["time_zone"], workflow=cfg["workflow"],
                          last_status=(body.get("status") or {}).get("message"))
