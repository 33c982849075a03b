"""Dataproc v1 ``projects.regions.jobs.get``: the jobs a workflow's steps run as.

What funnelops relies on (``funnelops logs`` on gcp): a started workflow node names its job
(``WorkflowNode.jobId``, "populated after the node enters RUNNING state"), and ``jobs.get`` on that
id answers a ``Job`` whose ``driverOutputResourceUri`` is where the driver's stdout goes:
``gs://<staging>/google-cloud-dataproc-metainfo/<clusterUuid>/jobs/<jobId>/driveroutput``, the
objects being that prefix plus ``.000000000``, ``.000000001``, ... The staging bucket is the
template's ``config.configBucket`` when it names one, else a knob (Google picks a per-location
``dataproc-staging-*`` bucket). The double writes no objects here: a test (or the executor of
``tests/gcp_double/executor.py``) puts driver output at :meth:`DataprocJobsService.driver_output_uri`.
A job id no operation's graph names is 404, as on Google.
"""

from __future__ import annotations

import copy
import uuid
from typing import TYPE_CHECKING, Any

from .common import RPC_CODES, Request, not_found

if TYPE_CHECKING:
    from .server import GcpDouble

DEFAULT_STAGING = "dataproc-staging-double"
METAINFO = "google-cloud-dataproc-metainfo"
_JOB_TYPES = ("hadoopJob", "sparkJob", "pysparkJob", "hiveJob", "pigJob", "sparkRJob",
              "sparkSqlJob", "prestoJob", "trinoJob", "flinkJob")
# WorkflowNode.state -> JobStatus.state
_STATE = {"RUNNING": "RUNNING", "COMPLETED": "DONE", "FAILED": "ERROR"}


class DataprocJobsService:
    def __init__(self, double: GcpDouble) -> None:
        self.double = double
        self.reset()

    def reset(self) -> None:
        self.staging_bucket = DEFAULT_STAGING

    def handlers(self) -> dict[str, Any]:
        return {"dataproc.projects.regions.jobs.get": self._get}

    # -- knobs and helpers for tests ---------------------------------------------------------
    def set_staging_bucket(self, name: str) -> None:
        """The bucket driver output goes to when a template names no ``configBucket``."""
        with self.double.lock:
            self.staging_bucket = name

    def driver_output_uri(self, operation: str, step_id: str) -> str:
        """Where the job of `step_id` in `operation` (a name or its last segment) writes its driver
        output, whether or not the step has started (its job id is fixed at instantiation here)."""
        with self.double.lock:
            op = self._find_op(operation)
            return self._output_uri(op, f"{step_id}-{op.suffix}")

    # -- internals ----------------------------------------------------------------------------
    def _find_op(self, operation: str) -> Any:
        for name, op in self.double.dataproc._ops.items():
            if name == operation or name.rsplit("/", 1)[-1] == operation:
                return op
        raise KeyError(f"no operation {operation}")

    def _staging(self, op: Any) -> str:
        managed = (op.template.get("placement") or {}).get("managedCluster") or {}
        return (managed.get("config") or {}).get("configBucket") or self.staging_bucket

    def _output_uri(self, op: Any, job_id: str) -> str:
        return f"gs://{self._staging(op)}/{METAINFO}/{op.suffix}/jobs/{job_id}/driveroutput"

    def _get(self, req: Request) -> tuple[int, Any]:
        project, region, job_id = req.params["projectId"], req.params["region"], req.params["jobId"]
        prefix = f"projects/{project}/regions/{region}/operations/"
        for name, op in self.double.dataproc._ops.items():
            if not name.startswith(prefix):
                continue
            rendered = self.double.dataproc._render(op)
            for node in rendered["metadata"]["graph"]["nodes"]:
                if node.get("jobId") == job_id:
                    return 200, self._job(project, op, rendered, node)
        raise not_found(f"Job {job_id} not found in projects/{project}/regions/{region}")

    def _job(self, project: str, op: Any, rendered: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
        meta = rendered["metadata"]
        step = next(j for j in op.template.get("jobs") or [] if j["stepId"] == node["stepId"])
        state = _STATE.get(node["state"], "PENDING")
        error = rendered.get("error") or {}
        if state == "ERROR" and error.get("code") == RPC_CODES["CANCELLED"]:
            state = "CANCELLED"
        status: dict[str, Any] = {"state": state, "stateStartTime": meta.get("endTime") or meta["startTime"]}
        if state == "ERROR":
            status["details"] = node.get("error") or "Job failed"
        job_id = node["jobId"]
        out: dict[str, Any] = {
            "reference": {"projectId": project, "jobId": job_id},
            "placement": {"clusterName": meta["clusterName"], "clusterUuid": meta["clusterUuid"]},
            "status": status,
            "driverControlFilesUri": f"gs://{self._staging(op)}/{METAINFO}/{op.suffix}/jobs/{job_id}/",
            "driverOutputResourceUri": self._output_uri(op, job_id),
            "jobUuid": str(uuid.uuid5(uuid.NAMESPACE_URL, op.name + "/" + job_id)),
            "done": state in ("DONE", "ERROR", "CANCELLED"),
        }
        for key in _JOB_TYPES:
            if key in step:
                out[key] = copy.deepcopy(step[key])
        if step.get("labels"):
            out["labels"] = dict(step["labels"])
        return out
