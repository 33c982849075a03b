"""`funnelops logs RUN` on gcp: each step's Dataproc driver output, read from GCS.

The path is Google's: the operation's WorkflowMetadata.graph.nodes[].jobId -> Dataproc
`jobs.get` (the double answers a Job held to dataproc.v1.json) -> driverOutputResourceUri ->
the objects `driveroutput.000000000`, `.000000001`, ... in fake-gcs. Driver output is written
here by the test, as Dataproc's agent would. On main, `logs` on gcp printed nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from funnelops.runs import coordinator

from test_backend_iac import apply, gcp_env, make_project, open_gcp  # noqa: F401 - fixture re-used

pytestmark = pytest.mark.gcp

TWO_STEPS = """    jobs:
      - step_id: funnel-flows
        main: funnelops.flows
      - step_id: report
        main: funnelops.flows
        prerequisites: [funnel-flows]
    labels: {granularity: day}"""


def _two_step_dia(text: str) -> str:
    head, sep, tail = text.partition("  - name: funnel-dia")
    one = """    jobs:
      - step_id: funnel-flows
        main: funnelops.flows
    labels: {granularity: day}"""
    assert one in tail
    return head + sep + tail.replace(one, TWO_STEPS, 1)


@pytest.fixture
def deployed(gcp_env, gcp_double, fake_gcs, tmp_path):  # noqa: F811
    project = make_project(tmp_path, _two_step_dia)
    loaded, backend = open_gcp(project, tmp_path)
    apply(loaded, backend, "iac")
    staging = fake_gcs.new_bucket("staging")
    gcp_double.dataproc_jobs.set_staging_bucket(staging.name)
    gcp_double.reset_counters()
    return project, loaded, backend, staging


def _put(fake_gcs, uri: str, suffix: str, text: str) -> None:
    bucket, _, name = uri[len("gs://"):].partition("/")
    fake_gcs.client.bucket(bucket).blob(name + suffix).upload_from_string(text.encode())


def _cli(project: Path, tmp_path: Path, env: dict[str, str], *args: str, **kw) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if k != "STORAGE_EMULATOR_HOST"}
    full.update(env, NO_COLOR="1")
    cmd = [sys.executable, "-m", "funnelops", "--backend", "gcp", "--project", str(project),
           "--home", str(tmp_path / "home"), "logs", *args]
    return subprocess.Popen(cmd, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_logs_of_a_finished_gcp_run_print_each_steps_driver_output(deployed, gcp_double, gcp_env, fake_gcs,  # noqa: F811
                                                                   tmp_path):
    project, loaded, backend, staging = deployed
    gcp_double.dataproc.set_run_outcome("funnel-dia", duration_s=None)
    run = coordinator.start(backend, "funnel-dia", trigger="manual", actor="ci")
    op = gcp_double.dataproc.operations(template="funnel-dia")[0]["name"]
    flows = gcp_double.dataproc_jobs.driver_output_uri(op, "funnel-flows")
    report = gcp_double.dataproc_jobs.driver_output_uri(op, "report")
    assert flows.startswith(f"gs://{staging.name}/google-cloud-dataproc-metainfo/") and flows.endswith("/driveroutput")
    _put(fake_gcs, flows, ".000000000", "flows: reading leads\n")
    _put(fake_gcs, flows, ".000000001", "flows: read=3 kept=3\n")
    _put(fake_gcs, report, ".000000000", "report: done\n")
    gcp_double.dataproc.finish(template="funnel-dia")
    coordinator.wait(backend.runtime, [run.id], poll_s=0.05)

    proc = _cli(project, tmp_path, gcp_env, str(run.id))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    nodes = gcp_double.dataproc.operations(template="funnel-dia")[0]["metadata"]["graph"]["nodes"]
    flows_job, report_job = (n["jobId"] for n in nodes)
    assert out == (f"==> step funnel-flows (Dataproc job {flows_job}) <==\n"
                   "flows: reading leads\nflows: read=3 kept=3\n"
                   f"==> step report (Dataproc job {report_job}) <==\nreport: done\n")
    assert (f"https://console.cloud.google.com/dataproc/workflows/instances/{loaded.spec.project.region}/{run.id}"
            f"?project={loaded.spec.project.id}") in err
    assert gcp_double.count("dataproc.projects.regions.jobs.get") == 2
    gcp_double.assert_clean()  # every jobs.get answer held to the Job schema


def test_logs_follow_prints_new_bytes_only_and_stops_when_the_run_ends(deployed, gcp_double, gcp_env, fake_gcs,  # noqa: F811
                                                                       tmp_path):
    project, loaded, backend, staging = deployed
    gcp_double.dataproc.set_run_outcome("funnel-dia", duration_s=None)
    run = coordinator.start(backend, "funnel-dia", trigger="manual", actor="ci")
    op = gcp_double.dataproc.operations(template="funnel-dia")[0]["name"]
    flows = gcp_double.dataproc_jobs.driver_output_uri(op, "funnel-flows")
    _put(fake_gcs, flows, ".000000000", "line 1\n")
    proc = _cli(project, tmp_path, gcp_env, str(run.id), "--follow")
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 60
        while text not in "".join(seen):
            assert time.monotonic() < deadline and proc.poll() is None, ("".join(seen), proc.stderr.read())
            time.sleep(0.05)

    wait_for("line 1\n")
    _put(fake_gcs, flows, ".000000001", "line 2\n")  # a new chunk: a new object
    wait_for("line 2\n")
    _put(fake_gcs, flows, ".000000001", "line 2\nline 3\n")  # the last chunk replaced by a longer one
    wait_for("line 3\n")
    gcp_double.dataproc.finish(template="funnel-dia")
    proc.wait(timeout=60)
    reader.join(timeout=10)
    assert proc.returncode == 0, proc.stderr.read()
    job = gcp_double.dataproc.operations(template="funnel-dia")[0]["metadata"]["graph"]["nodes"][0]["jobId"]
    assert "".join(seen) == (f"==> step funnel-flows (Dataproc job {job}) <==\n"
                             f"line 1\nline 2\nline 3\n==> run {run.id} ended DONE\n")
    gcp_double.assert_clean()


def test_a_rewritten_driver_output_object_is_printed_again_and_said_so(deployed, gcp_double, fake_gcs):
    project, loaded, backend, staging = deployed
    gcp_double.dataproc.set_run_outcome("funnel-dia", duration_s=None)
    run = coordinator.start(backend, "funnel-dia", trigger="manual", actor="ci")
    op = gcp_double.dataproc.operations(template="funnel-dia")[0]["name"]
    flows = gcp_double.dataproc_jobs.driver_output_uri(op, "funnel-flows")
    _put(fake_gcs, flows, ".000000000", "first version\n")
    rt = backend.runtime
    first = rt.read_logs(run.id)
    assert [c.text for c in first.chunks] == ["first version\n"] and first.chunks[0].first
    assert rt.read_logs(run.id, first.cursor).chunks == []  # nothing new: nothing printed, no download
    _put(fake_gcs, flows, ".000000000", "other\n")  # replaced by different bytes
    again = rt.read_logs(run.id, first.cursor)
    assert len(again.chunks) == 1 and not again.chunks[0].first
    assert again.chunks[0].text.endswith("was rewritten; printing it again]\nother\n")
    # The second step has not started (BLOCKED: no jobId yet, as on Google): it shows nothing.
    meta = gcp_double.dataproc.operations(template="funnel-dia")[0]["metadata"]
    assert [n.get("jobId") is None for n in meta["graph"]["nodes"]] == [False, True]
    gcp_double.dataproc.finish(template="funnel-dia")
    gcp_double.assert_clean()


def test_jobs_get_of_a_job_no_workflow_ran_is_404(gcp_double, gcp_env):  # noqa: F811
    from google.api_core import exceptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import dataproc_v1

    client = dataproc_v1.JobControllerClient(transport="rest", credentials=AnonymousCredentials(),
                                             client_options={"api_endpoint": gcp_double.url})
    with pytest.raises(exceptions.NotFound, match="Job nope not found"):
        client.get_job(project_id="p", region="us-central1", job_id="nope")
