"""The apply lease on gcp (issue 15): a GCS object with generation preconditions, against
fake-gcs-server and the contract double. Before: `GcpBackend.apply_lock` held nothing, so a
force (or a Cloud-Scheduler-driven start through the CLI) and a second apply ran in the middle
of an apply from another CI agent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from funnelops.errors import RunInProgress
from funnelops.runs import coordinator

from test_backend_iac import apply, gcp_env, make_project, open_gcp  # noqa: F401 - fixture re-used

pytestmark = [pytest.mark.gcp, pytest.mark.reliability]


@pytest.fixture
def deployed(gcp_env, gcp_double, tmp_path):  # noqa: F811
    loaded, backend = open_gcp(make_project(tmp_path), tmp_path)
    apply(loaded, backend, "iac")
    return loaded, backend


def test_runs_forces_and_a_second_apply_are_refused_while_an_apply_holds_the_lease(deployed, gcp_double, tmp_path):
    from funnelops.lifecycle.infra import create_infra

    loaded, holder = deployed
    gcp_double.dataproc.set_run_outcome(duration_s=None)
    _, other = open_gcp(loaded.path, tmp_path)  # another CI agent on the same project
    with holder.apply_lock():
        applying = other.apply_holder()
        assert applying is not None and applying.pid == os.getpid() and applying.actor
        for attempt in (lambda: coordinator.start(other, "funnel-mes", trigger="manual", actor="ci"),
                        lambda: coordinator.force_scheduler(other, "mes", "funnel-mes", actor="ci"),
                        lambda: create_infra(loaded, other, "iac", actor="ci")):
            with pytest.raises(RunInProgress) as refused:
                attempt()
            assert refused.value.exit_code == 3
            assert refused.value.message.startswith("an apply is in progress: `funnelops")
            assert refused.value.details["apply"]["owner"] == applying.owner
        # the runtime's own check, after its run lease is taken (a start that raced past the first look)
        with pytest.raises(RunInProgress):
            other.runtime.acquire("funnel-mes", trigger="manual", actor="ci")
        assert other.leases.read("funnel-mes") is None  # its run lease was given back
    assert gcp_double.dataproc.operations(template="funnel-mes") == []
    assert other.apply_holder() is None
    run = coordinator.start(other, "funnel-mes", trigger="manual", actor="ci")
    gcp_double.dataproc.finish(template="funnel-mes")
    assert coordinator.wait(other.runtime, [run.id], poll_s=0.05)[0].state == "DONE"


def test_two_racing_acquirers_exactly_one_wins(deployed, tmp_path):
    loaded, backend = deployed
    backends = [backend] + [open_gcp(loaded.path, tmp_path)[1] for _ in range(4)]
    start, done = threading.Barrier(len(backends)), threading.Barrier(len(backends))
    results: list[object] = []

    def go(b):
        start.wait()
        try:
            with b.apply_lock():
                results.append("won")
                done.wait(timeout=60)  # hold until every racer has tried
                return
        except RunInProgress as exc:
            results.append(exc)
        done.wait(timeout=60)

    threads = [threading.Thread(target=go, args=(b,)) for b in backends]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("won") == 1, results
    assert all(isinstance(r, RunInProgress) and "an apply is in progress" in r.message for r in results if r != "won")
    assert backend.apply_holder() is None  # released by the winner


HOLD = textwrap.dedent("""
    import sys, time
    sys.path[:0] = {paths!r}
    from test_backend_iac import open_gcp
    from pathlib import Path
    _, b = open_gcp(Path({project!r}), Path({tmp!r}))
    held = b.apply_lock()
    held.__enter__()  # kept referenced: a collected context manager would release it
    print("held", flush=True)
    time.sleep(600)
""")


def test_a_crashed_applier_blocks_only_until_its_lease_expires(deployed, tmp_path, monkeypatch):
    """kill -9 of an apply (a CI agent that died): its object stays, and once its heartbeat is past
    the TTL the next apply and the next run go on."""
    from funnelops.lifecycle.infra import create_infra

    loaded, backend = deployed
    script = HOLD.format(paths=[os.path.dirname(__file__), *sys.path], project=str(loaded.path), tmp=str(tmp_path))
    env = dict(os.environ, FUNNELOPS_APPLY_LEASE_TTL_S="2")
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        holder = backend.apply_holder()
        assert holder is not None and holder.pid == proc.pid, (backend._apply_lease.read(""), time.time())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert backend._apply_lease.read("") is not None  # the dead holder's object is still there
    deadline = time.monotonic() + 60
    while backend.apply_holder() is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert backend.apply_holder() is None, "the lease never expired"
    create_infra(loaded, backend, "iac", actor="ci")  # takes the expired lease over
    assert backend.apply_holder() is None and backend._apply_lease.read("") is None


def test_a_live_applier_keeps_its_lease_past_the_ttl(deployed, tmp_path, monkeypatch):
    monkeypatch.setenv("FUNNELOPS_APPLY_LEASE_TTL_S", "3")
    loaded, backend = deployed
    _, other = open_gcp(loaded.path, tmp_path)
    with backend.apply_lock():
        first = other.apply_holder()
        time.sleep(7)  # more than twice the TTL: only the renewals keep it live
        later = other.apply_holder()
        assert first is not None and later is not None and later.owner == first.owner
        assert later.expires_at != first.expires_at
        with pytest.raises(RunInProgress):
            with other.apply_lock():
                pass
    assert other.apply_holder() is None
