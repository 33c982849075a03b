"""A Dataproc run's logs: each step's driver output, read from GCS where Dataproc writes it.

Why this path: a workflow run is an operation whose ``WorkflowMetadata.graph.nodes[]`` name the
Dataproc job of each step (``jobId``, set once the step starts); ``projects.regions.jobs.get``
answers that job's ``driverOutputResourceUri`` (``gs://<staging>/google-cloud-dataproc-metainfo/
<clusterUuid>/jobs/<jobId>/driveroutput``), and the driver's stdout/stderr are the objects with that
prefix (``driveroutput.000000000``, ``.000000001``, ...), in name order. It is the one place the
output outlives the ephemeral cluster, readable with the same storage permission as the artifacts.

Following a run: GCS objects are immutable, so new output shows up as new objects -- or as an
object *replaced* by a longer one (a new generation). The cursor keeps, per object, the generation
and size printed and a digest of the bytes printed: an unchanged generation is skipped without a
download; a new generation whose first bytes are the ones already printed prints only the rest;
anything else is printed again whole (said so in the text), never silently dropped.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from funnelops.backends.gcp import retry
from funnelops.backends.types import LogChunk, LogCursor, LogRead
from funnelops.errors import BackendError, UsageError

if TYPE_CHECKING:
    from funnelops.backends.gcp.runtime import GcpRuntime

CONSOLE = "https://console.cloud.google.com/dataproc"


def workflow_console_url(project: str, region: str, operation_id: str) -> str:
    """The run's page in the Cloud Console (the workflow instance is the operation).

    Format as the Apache Airflow Google provider builds its Dataproc workflow link; not checked
    against the console itself (see docs/gcp.md, "what has not been verified").
    """
    return f"{CONSOLE}/workflows/instances/{region}/{operation_id}?project={project}"


def job_console_url(project: str, region: str, job_id: str) -> str:
    """A step's Dataproc job page (the form Dataproc's own failure messages print)."""
    return f"{CONSOLE}/jobs/{job_id}?project={project}&region={region}"


def split_gs(uri: str) -> tuple[str, str]:
    """``gs://bucket/path`` -> (bucket, path)."""
    if not uri.startswith("gs://") or "/" not in uri[5:]:
        raise BackendError(f"Dataproc answered a driver output URI that is not a GCS object path: {uri!r}",
                           "report it: funnelops reads driver output from GCS only")
    bucket, _, path = uri[5:].partition("/")
    return bucket, path


class DriverOutput:
    """Reads the driver output of a run's steps (what `GcpRuntime.read_logs` answers)."""

    def __init__(self, runtime: GcpRuntime) -> None:
        self.runtime = runtime
        self.clients = runtime.clients

    def read(self, run_id: int | str, cursor: LogCursor | None) -> LogRead:
        rid = str(run_id).rsplit("/", 1)[-1]
        meta = self._metadata(rid, run_id)
        cur: dict[str, Any] = {"jobs": dict((cursor or {}).get("jobs") or {}),
                               "objects": dict((cursor or {}).get("objects") or {}),
                               "headed": list((cursor or {}).get("headed") or [])}
        chunks = []
        for node in (meta.get("graph") or {}).get("nodes") or []:
            job_id = node.get("jobId")
            if not job_id:  # the step has not started: no job, no output yet
                continue
            uri = cur["jobs"].get(job_id) or self._driver_uri(job_id)
            if not uri:
                continue
            cur["jobs"][job_id] = uri
            text = self._new_text(uri, cur["objects"])
            if text:
                source = f"step {node.get('stepId')} (Dataproc job {job_id})"
                chunks.append(LogChunk(source, text, first=source not in cur["headed"]))
                if source not in cur["headed"]:
                    cur["headed"].append(source)
        url = workflow_console_url(self.clients.project, self.clients.region, rid)
        return LogRead(chunks, cur, url)

    def _metadata(self, rid: str, run_id: int | str) -> dict[str, Any]:
        from google.api_core import exceptions

        try:
            op = self.runtime._get_op(rid)
        except BackendError as exc:
            if isinstance(exc.__cause__, exceptions.NotFound) or exc.details.get("status") == 404:
                raise UsageError(f"no run {run_id} on Dataproc (no operation {rid} in "
                                 f"{self.clients.region_path})",
                                 "see `funnelops runs`; Dataproc forgets operations some days after they end") from None
            raise
        return self.runtime._meta(op)

    def _driver_uri(self, job_id: str) -> str | None:
        """The job's driverOutputResourceUri (None while Dataproc has not created the job)."""
        from google.api_core import exceptions

        from funnelops.backends.gcp.dataproc import to_dict

        request = {"project_id": self.clients.project, "region": self.clients.region, "job_id": job_id}
        try:
            job = retry.call(lambda: self.clients.dataproc_jobs.get_job(request=request, retry=None),
                             f"Dataproc job {job_id}", permission="dataproc.jobs.get", raw=True)
        except exceptions.NotFound:
            return None
        except Exception as exc:
            raise retry.describe(exc, f"Dataproc job {job_id}", "dataproc.jobs.get") from None
        return to_dict(job).get("driverOutputResourceUri") or None

    def _new_text(self, uri: str, seen: dict[str, Any]) -> str:
        """Bytes of the objects under `uri` not printed yet, in object-name order."""
        bucket, prefix = split_gs(uri)
        storage = self.clients.storage
        blobs = retry.call(lambda: sorted(storage.list_blobs(bucket, prefix=prefix, retry=None), key=lambda b: b.name),
                           f"gs://{bucket}/{prefix}", permission="storage.objects.list")
        out: list[str] = []
        for blob in blobs:
            key = f"{bucket}/{blob.name}"
            was = seen.get(key)
            if was is not None and str(was["generation"]) == str(blob.generation):
                continue  # same generation, same bytes: nothing new
            data = self._download(bucket, blob.name, blob.generation)
            if data is None:
                continue  # replaced between the listing and the read: the next poll sees it
            start = 0
            if was is not None:
                if len(data) >= was["size"] and hashlib.sha256(data[:was["size"]]).hexdigest() == was["sha256"]:
                    start = was["size"]  # the same bytes, grown: print only the rest
                else:
                    out.append(f"[funnelops: gs://{key} was rewritten; printing it again]\n")
            seen[key] = {"generation": str(blob.generation), "size": len(data),
                         "sha256": hashlib.sha256(data).hexdigest()}
            out.append(data[start:].decode("utf-8", "replace"))
        return "".join(out)

    def _download(self, bucket: str, name: str, generation: Any) -> bytes | None:
        from google.api_core import exceptions

        blob = self.clients.storage.bucket(bucket).blob(name, generation=generation)
        try:
            return retry.call(lambda: blob.download_as_bytes(retry=None), f"gs://{bucket}/{name}",
                              permission="storage.objects.get", raw=True)
        except exceptions.NotFound:
            return None
        except Exception as exc:
            raise retry.describe(exc, f"gs://{bucket}/{name}", "storage.objects.get") from None
