"""Execute instantiated workflows for real: each step's program as a subprocess, as a cluster would.

Why: the timed simulation (an operation that ends after N seconds) proves the control plane,
but not what the program on the cluster does with what it was given: its substituted args, its
lease, its data. With an :class:`Executor` attached (``double.dataproc.executor``), every
instantiation (the API call or a Cloud Scheduler dispatch) runs its steps:

* the step's ``pysparkJob.mainPythonFileUri`` and ``pythonFileUris`` are downloaded from GCS
  (fake-gcs) into a per-run folder, as Dataproc stages them on the master;
* the args are the template's with the instantiation's parameter values substituted at each
  parameter's ``fields`` path (``jobs['<step>'].pysparkJob.args[<i>]``);
* the program runs as ``python <main> <args>`` with the python files first on ``PYTHONPATH``
  (Dataproc adds ``pythonFileUris`` to the driver's path), on this interpreter (standing for the
  image plus what the initialization action installs: the cluster-side test proves that part),
  in the environment the cluster would give it (:meth:`Executor.env_for`);
* stdout and stderr, merged, are written (and re-written while the step runs, so a follower
  sees progress) as the step's driver output at
  ``gs://<staging>/google-cloud-dataproc-metainfo/<clusterUuid>/jobs/<jobId>/driveroutput.000000000``
  (:meth:`Executor.driver_output_uri`, what ``jobs.get`` reports as ``driverOutputResourceUri``);
* steps run one at a time in prerequisite order; the operation ends DONE when all exit 0, else
  FAILED naming the step, its exit code and its last output line; a cancelled operation kills
  the running step.

Usage::

    ex = Executor(double, storage_endpoint=fake_gcs.url, staging_bucket="dataproc-staging-x",
                  data_uri=f"file://{tmp_path}/buckets").attach()
    ... instantiate ...
    ex.wait(60); ex.output(job_id); ex.driver_output_uri(job_id); ex.close()
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import GcpDouble

METAINFO = "google-cloud-dataproc-metainfo"
_FIELD = re.compile(r"^jobs\['([^']+)'\]\.pysparkJob\.args\[(\d+)\]$")
_UPLOAD_EVERY_S = 0.5


@dataclass
class StepRun:
    step_id: str
    job_id: str
    args: list[str]
    output_uri: str
    returncode: int | None = None
    output: str = ""


@dataclass
class RunRecord:
    operation: str
    cluster_name: str
    cluster_uuid: str
    steps: list[StepRun] = field(default_factory=list)
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


def substitute(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, list[str]]:
    """Each step's args with the parameter values put at their `fields` paths (step id -> args)."""
    args = {j["stepId"]: list((j.get("pysparkJob") or {}).get("args") or []) for j in template.get("jobs") or []}
    for prm in template.get("parameters") or []:
        if prm.get("name") not in parameters:
            continue
        for path in prm.get("fields") or []:
            m = _FIELD.match(path)
            if m and m.group(1) in args and int(m.group(2)) < len(args[m.group(1)]):
                args[m.group(1)][int(m.group(2))] = parameters[prm["name"]]
    return args


def _ordered(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps in an order that respects prerequisites (the template is checked acyclic)."""
    out: list[dict[str, Any]] = []
    done: set[str] = set()
    pending = list(jobs)
    while pending:
        ready = [j for j in pending if set(j.get("prerequisiteStepIds") or []) <= done]
        out.extend(ready)
        done |= {j["stepId"] for j in ready}
        pending = [j for j in pending if j["stepId"] not in done]
    return out


class Executor:
    """Runs the steps of every workflow instantiated on `double` (see the module docstring)."""

    def __init__(self, double: GcpDouble, *, storage_endpoint: str, staging_bucket: str,
                 data_uri: str | None = None, env: dict[str, str] | None = None,
                 python: str = sys.executable, step_timeout_s: float = 300.0, workdir: Path | None = None) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        self.double = double
        self.storage_endpoint = storage_endpoint
        self.staging_bucket = staging_bucket
        self.data_uri = data_uri
        self.extra_env = dict(env or {})
        self.python = python
        self.step_timeout_s = step_timeout_s
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="dataproc-executor-"))
        self.storage = storage.Client(project="executor", credentials=AnonymousCredentials(),
                                      client_options={"api_endpoint": storage_endpoint})
        if self.storage.lookup_bucket(staging_bucket) is None:
            self.storage.create_bucket(staging_bucket)
        self.runs: dict[str, RunRecord] = {}
        self._outputs: dict[str, str] = {}
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    # -- wiring --------------------------------------------------------------------------------
    def attach(self) -> Executor:
        self.double.dataproc.executor = self
        return self

    def close(self) -> None:
        """Detach, and kill what still runs (a test that ends mid-run)."""
        if self.double.dataproc.executor is self:
            self.double.dataproc.executor = None
        with self._lock:
            procs = list(self._procs)
        for p in procs:
            p.kill()

    # -- what tests (and the double's jobs.get) read --------------------------------------------
    def driver_output_uri(self, job_id: str) -> str | None:
        """``gs://<staging>/google-cloud-dataproc-metainfo/<clusterUuid>/jobs/<jobId>/driveroutput``
        (the prefix: Dataproc numbers the chunks ``.000000000``, ``.000000001``...)."""
        with self._lock:
            return self._outputs.get(job_id)

    def output(self, job_id: str) -> str:
        """The driver output of a step so far (from GCS, as a reader would get it)."""
        uri = self.driver_output_uri(job_id)
        if uri is None:
            raise KeyError(f"no step ran as job {job_id}")
        bucket, _, name = uri[len("gs://"):].partition("/")
        blob = self.storage.bucket(bucket).blob(name + ".000000000")
        return blob.download_as_bytes().decode("utf-8", "replace") if blob.exists() else ""

    def wait(self, timeout: float = 120.0) -> list[RunRecord]:
        """Wait until every run started so far has ended; returns them."""
        deadline = time.monotonic() + timeout
        for rec in list(self.runs.values()):
            if not rec.done.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"operation {rec.operation} still runs after {timeout}s")
        return list(self.runs.values())

    def env_for(self, cluster_name: str) -> dict[str, str]:
        """The environment of a driver on the cluster: no funnelops settings of this machine, the
        Google endpoints of the doubles, the data folder standing for the buckets, and the
        cluster's name (on Dataproc: the metadata attribute ``dataproc-cluster-name``)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("FUNNELOPS_") and k not in ("PYTHONPATH", "STORAGE_EMULATOR_HOST")}
        env.update(FUNNELOPS_STORAGE_ENDPOINT=self.storage_endpoint, FUNNELOPS_BIGQUERY_ENDPOINT=self.double.url,
                   FUNNELOPS_DATAPROC_ENDPOINT=self.double.url, FUNNELOPS_CLUSTER_NAME=cluster_name,
                   FUNNELOPS_GCP_RETRY_INITIAL_S="0.01", PYTHONUNBUFFERED="1")
        if self.data_uri:
            env["FUNNELOPS_BUCKETS_URI"] = self.data_uri
        env.update(self.extra_env)
        return env

    # -- the hook ---------------------------------------------------------------------------------
    def start(self, operation: dict[str, Any], template: dict[str, Any], parameters: dict[str, str]) -> None:
        """Called by the double's instantiate (under its lock): run the workflow on a thread."""
        meta = operation["metadata"]
        rec = RunRecord(operation["name"], meta["clusterName"], meta["clusterUuid"])
        jobs = {n["stepId"]: n["jobId"] for n in meta["graph"]["nodes"]}
        args = substitute(template, parameters)
        for job in _ordered(list(template.get("jobs") or [])):
            sid = job["stepId"]
            uri = f"gs://{self.staging_bucket}/{METAINFO}/{rec.cluster_uuid}/jobs/{jobs[sid]}/driveroutput"
            rec.steps.append(StepRun(sid, jobs[sid], args[sid], uri))
        with self._lock:
            self.runs[rec.operation] = rec
            self._outputs.update({s.job_id: s.output_uri for s in rec.steps})
        threading.Thread(target=self._run, args=(rec, template), daemon=True,
                         name=f"executor-{rec.cluster_uuid}").start()

    def _run(self, rec: RunRecord, template: dict[str, Any]) -> None:
        folder = self.workdir / rec.cluster_uuid
        try:
            jobs = {j["stepId"]: j for j in template.get("jobs") or []}
            for step in rec.steps:
                rc = self._step(step, jobs[step.step_id], folder / step.step_id, rec.cluster_name)
                if self._cancelled(rec.operation):
                    rec.error = "cancelled"
                    return
                if rc != 0:
                    last = next((line for line in reversed(step.output.splitlines()) if line.strip()), "")
                    rec.error = (f"Job {step.job_id} (step {step.step_id}) failed with exit code {rc}: {last} "
                                 f"(driver output: {step.output_uri})")
                    return
        except Exception as exc:  # the executor itself failed: the run fails, visibly
            rec.error = f"executor: {exc}"
        finally:
            if rec.error != "cancelled":
                self.double.dataproc.finish(rec.operation, error=rec.error)
            shutil.rmtree(folder, ignore_errors=True)
            rec.done.set()

    def _cancelled(self, operation: str) -> bool:
        ops = self.double.dataproc.operations()
        return any(o["name"] == operation and o["done"] for o in ops)

    def _download(self, uri: str, folder: Path) -> Path:
        if not uri.startswith("gs://"):
            raise ValueError(f"the executor stages gs:// files only, got {uri}")
        bucket, _, name = uri[len("gs://"):].partition("/")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name.rsplit("/", 1)[-1]
        self.storage.bucket(bucket).blob(name).download_to_filename(str(target))
        return target

    def _step(self, step: StepRun, job: dict[str, Any], folder: Path, cluster_name: str) -> int:
        py = job.get("pysparkJob")
        if py is None:
            step.output = "the executor runs pysparkJob steps only\n"
            self._upload(step)
            return 2
        main = self._download(py["mainPythonFileUri"], folder)
        path = [str(self._download(u, folder)) for u in py.get("pythonFileUris") or []]
        env = {**self.env_for(cluster_name), "PYTHONPATH": os.pathsep.join(path)}
        proc = subprocess.Popen([self.python, str(main), *step.args], cwd=folder, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        with self._lock:
            self._procs.add(proc)
        reader = threading.Thread(target=self._pump, args=(proc, step), daemon=True)
        reader.start()
        deadline = time.monotonic() + self.step_timeout_s
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline or self._cancelled_by_name(step):
                    proc.kill()
                time.sleep(0.1)
            reader.join(10)
        finally:
            with self._lock:
                self._procs.discard(proc)
        step.returncode = proc.returncode
        self._upload(step)
        return proc.returncode

    def _cancelled_by_name(self, step: StepRun) -> bool:
        with self._lock:
            op = next((r.operation for r in self.runs.values() if step in r.steps), None)
        return op is not None and self._cancelled(op)

    def _pump(self, proc: subprocess.Popen[bytes], step: StepRun) -> None:
        last = 0.0
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            step.output += raw.decode("utf-8", "replace")
            if time.monotonic() - last > _UPLOAD_EVERY_S:
                self._upload(step)
                last = time.monotonic()

    def _upload(self, step: StepRun) -> None:
        bucket, _, name = step.output_uri[len("gs://"):].partition("/")
        self.storage.bucket(bucket).blob(name + ".000000000").upload_from_string(
            step.output, content_type="text/plain")
