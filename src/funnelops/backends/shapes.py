"""Neutral resource configs <-> the JSON shapes Google's APIs take.

Workflow templates and schedulers are stored by the local backend in exactly the shape the gcp
backend sends to Dataproc and Cloud Scheduler, so what `plan` shows locally is what would be
sent. Both directions live here so a round trip is lossless and testable.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from collections.abc import Callable

from funnelops.backends.types import SchedulerState

GRANULARITY_LABEL = "funnelops-granularity"
INITIAL_LOAD_LABEL = "funnelops-initial-load"
BOOTSTRAP_LABEL = "funnelops-bootstrap"  # placement.bootstrap: which dependencies the cluster installs
OAUTH_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DATAPROC_ROOT = "https://dataproc.googleapis.com/v1"


def _param_to(prm: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": prm["name"], "fields": list(prm["fields"])}
    if prm.get("description"):
        out["description"] = prm["description"]
    if prm.get("regexes"):
        out["validation"] = {"regex": {"regexes": list(prm["regexes"])}}
    return out


def _cluster_config(p: dict[str, Any], init_actions: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The managed cluster's `ClusterConfig`: identity and network (`gceClusterConfig`), image, actions."""
    gce: dict[str, Any] = {}
    for key, api in (("service_account", "serviceAccount"), ("scopes", "serviceAccountScopes"),
                     ("subnetwork", "subnetworkUri"), ("zone", "zoneUri"), ("tags", "tags")):
        if p.get(key):
            gce[api] = list(p[key]) if isinstance(p[key], list) else p[key]
    if p.get("internal_ip_only") is not None:
        gce["internalIpOnly"] = bool(p["internal_ip_only"])
    master: dict[str, Any] = {"numInstances": 1, "machineTypeUri": p["master_machine_type"]}
    worker: dict[str, Any] = {"numInstances": p["workers"], "machineTypeUri": p["worker_machine_type"]}
    if p.get("image_uri"):  # a custom image carries its own version: no imageVersion beside it
        master["imageUri"] = worker["imageUri"] = p["image_uri"]
    software: dict[str, Any] = {}
    if p.get("image_version"):
        software["imageVersion"] = p["image_version"]
    if p.get("properties"):
        software["properties"] = dict(sorted(p["properties"].items()))
    conf: dict[str, Any] = {}
    if gce:
        conf["gceClusterConfig"] = gce
    conf.update(masterConfig=master, workerConfig=worker)
    if software:
        conf["softwareConfig"] = software
    if init_actions:
        conf["initializationActions"] = [dict(a) for a in init_actions]
    return conf


def template_to_dataproc(name: str, cfg: dict[str, Any], main_uri: Callable[[str], str],
                         python_file_uris: list[str] | None = None,
                         init_actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A neutral workflow template config as a Dataproc `WorkflowTemplate` body (camelCase).

    `init_actions` (Dataproc `NodeInitializationAction`s) default to the config's `init_actions`;
    keep them in the config so that observing the template gives them back and a change diffs."""
    labels = dict(cfg.get("labels", {}))
    labels[GRANULARITY_LABEL] = cfg["granularity"].lower()
    labels[INITIAL_LOAD_LABEL] = "true" if cfg.get("initial_load") else "false"
    p = cfg["placement"]
    if p.get("bootstrap"):
        labels[BOOTSTRAP_LABEL] = p["bootstrap"]
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
    actions = init_actions if init_actions is not None else cfg.get("init_actions")
    out: dict[str, Any] = {
        "id": name,
        "labels": dict(sorted(labels.items())),
        "placement": {"managedCluster": {"clusterName": p["cluster_name"], "config": _cluster_config(p, actions)}},
        "jobs": jobs,
        "dagTimeout": cfg["dag_timeout"],
    }
    if cfg.get("parameters"):
        out["parameters"] = [_param_to(prm) for prm in cfg["parameters"]]
    return out


def _placement_from(mc: dict[str, Any], bootstrap: str) -> dict[str, Any]:
    conf = mc.get("config", {})
    gce = conf.get("gceClusterConfig", {})
    master, worker = conf.get("masterConfig", {}), conf.get("workerConfig", {})
    software = conf.get("softwareConfig", {})
    return {
        "cluster_name": mc.get("clusterName", ""),
        "master_machine_type": master.get("machineTypeUri", ""),
        "worker_machine_type": worker.get("machineTypeUri", ""),
        "workers": int(worker.get("numInstances", 0)),
        "image_version": software.get("imageVersion", ""),
        "image_uri": master.get("imageUri") or None,
        "bootstrap": bootstrap,
        "service_account": gce.get("serviceAccount") or None,
        "scopes": list(gce.get("serviceAccountScopes", [])),
        "subnetwork": gce.get("subnetworkUri") or None,
        "internal_ip_only": bool(gce.get("internalIpOnly", False)),
        "tags": list(gce.get("tags", [])),
        "zone": gce.get("zoneUri") or None,
        "properties": dict(sorted(software.get("properties", {}).items())),
    }


def template_from_dataproc(body: dict[str, Any], main_name: Callable[[str], str]) -> dict[str, Any]:
    """A Dataproc `WorkflowTemplate` (as returned) back to the neutral config."""
    labels = dict(body.get("labels", {}))
    granularity = labels.pop(GRANULARITY_LABEL, "").upper()
    initial_load = labels.pop(INITIAL_LOAD_LABEL, "false") == "true"
    bootstrap = labels.pop(BOOTSTRAP_LABEL, "")
    mc = body.get("placement", {}).get("managedCluster", {})
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
                       "description": prm.get("description", ""),
                       "regexes": list(((prm.get("validation") or {}).get("regex") or {}).get("regexes", []))})
    out = {
        "granularity": granularity,
        "initial_load": initial_load,
        "jobs": jobs,
        "parameters": params,
        "placement": _placement_from(mc, bootstrap),
        "dag_timeout": body.get("dagTimeout", ""),
        "labels": dict(sorted(labels.items())),
    }
    actions = mc.get("config", {}).get("initializationActions")
    if actions:
        out["init_actions"] = [dict(a) for a in actions]
    return out


def instantiate_uri(project: str, region: str, workflow: str) -> str:
    return f"{DATAPROC_ROOT}/projects/{project}/regions/{region}/workflowTemplates/{workflow}:instantiate"


_WF_FROM_URI = re.compile(r"/workflowTemplates/([^/:]+):instantiate$")
_DESC = re.compile(r"^\[(?P<name>[^\]]*)\] ?(?P<rest>.*)$", re.S)


def _secs(s: int) -> str:
    return f"{int(s)}s"


def instantiate_body(parameters: dict[str, str]) -> bytes:
    """The JSON body of an instantiate request Cloud Scheduler posts: a value for every parameter.

    No requestId: a fixed one would make Dataproc join every later fire to the first operation."""
    return json.dumps({"parameters": dict(sorted(parameters.items()))}, separators=(",", ":")).encode()


def _body_parameters(b64: str) -> dict[str, str]:
    try:
        data = json.loads(base64.b64decode(b64 or "") or b"{}")
    except ValueError:
        return {"(unreadable body)": b64}
    return dict(sorted((data.get("parameters") or {}).items())) if isinstance(data, dict) else {}


def scheduler_to_cloud(job_name: str, cfg: dict[str, Any], project: str, region: str,
                       service_account: str | None) -> dict[str, Any]:
    """A neutral scheduler config as a Cloud Scheduler `Job` body.

    Cloud Scheduler has no display name, so the seed's name (`Día`) leads the description. The
    HTTP body carries `cfg["parameters"]`: a value for every parameter of the workflow's template
    (see `backends/run_params.py`), or Dataproc refuses the fire.
    """
    r = cfg["retry"]
    target: dict[str, Any] = {
        "uri": instantiate_uri(project, region, cfg["workflow"]),
        "httpMethod": "POST",
        "body": base64.b64encode(instantiate_body(cfg.get("parameters") or {})).decode(),
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
    http = body.get("httpTarget", {})
    uri = http.get("uri", "")
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
        "parameters": _body_parameters(http.get("body", "")),
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
