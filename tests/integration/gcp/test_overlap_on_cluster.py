"""Issue #11 item 6, demonstrated: the program on the cluster guards the workflow, not the CLI.

An applied project on the contract double whose Dataproc *executes* runs (tests/gcp_double/
executor.py: each step's launcher, downloaded from GCS, runs as a subprocess with the substituted
args; its output is the step's driver output in GCS). The refined layer does the work (BigQuery
jobs on the double, one per refined flow, labelled ``funnelops-flow``), so "who did the work" is
countable. BigQuery requests are held at a gate while the working run is inside its work, so
"while it runs" is deterministic, not a race against a timer.

Every flows step ends with the run tail (`--lease=scheduled --workflow=<name>`, FO_LEASE
declared over the lease argument); the CLI sends its owner token as FO_LEASE.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from funnelops.runs import coordinator
from tests.helpers.tiny_project import wait_until

from test_backend_iac import apply, gcp_env, make_project, open_gcp  # noqa: F401 - fixture re-used

pytestmark = [pytest.mark.gcp, pytest.mark.slow]
WORKFLOW = "funnel-dia"
SKIP_LINE = re.compile(r"^skipped: run \S+ in progress \(since .+, by .+\)$", re.M)


def _refined_only_with_lease(text: str) -> str:
    return text.replace('iac: ["--refined_flows=false"]', 'iac: ["--trusted_flows=false"]')


@pytest.fixture
def deployed(gcp_env, gcp_double, dataproc_executor, tmp_path):  # noqa: F811
    loaded, backend = open_gcp(make_project(tmp_path, _refined_only_with_lease), tmp_path)
    apply(loaded, backend, "iac")
    gcp_double.reset_counters()
    return loaded, backend


def _work(gcp_double) -> Counter[str]:
    """Refined flows run so far (BigQuery query jobs, by their funnelops-flow label)."""
    with gcp_double.lock:
        labels = [j.get("configuration", {}).get("labels", {}) for j in gcp_double.bigquery.jobs._jobs.values()]
    return Counter(la["funnelops-flow"] for la in labels if la.get("funnelops-flow"))


def _outputs(executor, operation: str) -> str:
    return "".join(executor.output(s.job_id) for s in executor.runs[operation].steps)


def _ops(gcp_double) -> list[dict]:
    return gcp_double.dataproc.operations(template=WORKFLOW)


def test_a_scheduler_fire_during_a_forced_run_skips_and_one_run_does_the_work(deployed, gcp_double,
                                                                           dataproc_executor):
    loaded, backend = deployed
    executor = dataproc_executor
    gate = gcp_double.gate("bigquery.jobs")  # the working run stays inside its work until released
    run = coordinator.force_scheduler(backend, "dia", WORKFLOW, actor="pipeline")
    assert run.state in ("PENDING", "RUNNING")
    # The forced fire's program adopted the lease the CLI marked for it.
    adopted = wait_until(lambda: (backend.leases.read(WORKFLOW) or None) and
                         backend.leases.read(WORKFLOW).data.get("adopted_by"), 90, "the program to adopt the lease",
                         poll=0.1)
    forced_op = _ops(gcp_double)[0]
    assert forced_op["name"].endswith(str(run.id)) and adopted == forced_op["metadata"]["clusterName"]
    # Cloud Scheduler fires the same workflow on its own clock while the forced run works.
    gcp_double.scheduler.fire("dia")
    second = wait_until(lambda: [o for o in _ops(gcp_double) if not o["name"].endswith(str(run.id))],
                        90, "the scheduler's own run", poll=0.1)[0]
    executor.runs[second["name"]].done.wait(90)
    skipped = _outputs(executor, second["name"])
    assert f"skipped: run {run.id} in progress (since " in skipped and "by pipeline)" in skipped, skipped
    ended = next(o for o in _ops(gcp_double) if o["name"] == second["name"])
    assert ended["done"] and "error" not in ended  # DONE, not FAILED: a skip is no failure
    assert _work(gcp_double) == Counter()  # the skipped run touched nothing; the forced one is held
    gate.set()
    done = coordinator.wait(backend.runtime, [run.id], poll_s=0.1, timeout=120)[0]
    assert done.state == "DONE", _outputs(executor, forced_op["name"])
    work = _work(gcp_double)
    assert work and set(work.values()) == {1}  # every refined flow ran exactly once
    assert not SKIP_LINE.search(_outputs(executor, forced_op["name"]))
    assert backend.leases.read(WORKFLOW) is None  # released when the run ended
    assert len(_ops(gcp_double)) == 2 and gcp_double.count("jobs.run") == 1
    gcp_double.assert_clean()


def test_two_scheduled_fires_at_once_one_works_one_skips(deployed, gcp_double, dataproc_executor):
    loaded, backend = deployed
    executor = dataproc_executor
    gate = gcp_double.gate("bigquery.jobs")
    gcp_double.scheduler.fire("dia")
    gcp_double.scheduler.fire("dia")
    wait_until(lambda: len(executor.runs) == 2, 90, "two runs", poll=0.1)
    skipped_op = wait_until(lambda: next((op for op, r in executor.runs.items() if r.done.is_set()), None),
                            90, "one run to skip", poll=0.1)
    assert SKIP_LINE.search(_outputs(executor, skipped_op))
    gate.set()
    runs = executor.wait(120)
    assert [r.error for r in runs] == [None, None]  # both DONE
    worked = [op for op in executor.runs if op != skipped_op]
    assert not SKIP_LINE.search(_outputs(executor, worked[0]))
    assert set(_work(gcp_double).values()) == {1}
    assert backend.leases.read(WORKFLOW) is None  # the fire that took it gave it back
    gcp_double.assert_clean()


def test_a_run_whose_lease_token_does_not_match_fails_before_touching_data(deployed, gcp_double,
                                                                        dataproc_executor):
    loaded, backend = deployed
    executor = dataproc_executor
    run = coordinator.start(backend, WORKFLOW, trigger="manual", actor="me")  # token sent: it works
    assert coordinator.wait(backend.runtime, [run.id], poll_s=0.1, timeout=120)[0].state == "DONE"
    assert set(_work(gcp_double).values()) == {1}
    op = _ops(gcp_double)[0]
    assert op["metadata"]["parameters"]["FO_LEASE"] == "--lease=" + _token_of(gcp_double, backend, run)
    before = _work(gcp_double)
    # A run started with someone else's token (the lease is not held by it): refused on the cluster.
    api = backend.clients.dataproc
    lease = backend.runtime.acquire(WORKFLOW, trigger="manual", actor="other")
    bogus = api.instantiate_workflow_template(request={
        "name": backend.clients.template_name(WORKFLOW),
        "parameters": {"FO_EXECUTION_TYPE": "--execution_type=delta", "FO_LEASE": "--lease=not-the-owner",
                       "FO_PERIOD": "--period=current"}}).operation
    executor.runs[bogus.name].done.wait(90)
    rec = executor.runs[bogus.name]
    assert rec.error and "exit code 3" in rec.error
    assert "lease not-the-owner is not held" in _outputs(executor, bogus.name)
    [step] = rec.steps  # its driver output, where Dataproc puts it (jobs.get's driverOutputResourceUri)
    assert executor.driver_output_uri(step.job_id) == (
        f"gs://{executor.staging_bucket}/google-cloud-dataproc-metainfo/{rec.cluster_uuid}/jobs/{step.job_id}"
        "/driveroutput")
    failed = next(o for o in _ops(gcp_double) if o["name"] == bogus.name)
    assert failed["done"] and failed["error"]["message"] == rec.error
    assert _work(gcp_double) == before  # nothing written
    assert backend.leases.read(WORKFLOW).data["owner"] == lease.owner  # the holder keeps it
    gcp_double.assert_clean()


def _token_of(gcp_double, backend, run) -> str:
    return backend.ledger.runs()[str(run.id)]["owner"]
