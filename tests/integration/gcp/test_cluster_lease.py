"""The cluster-side lease guard (backends/gcp/cluster_lease.py) against fake-gcs, case by case.

The end-to-end proof (programs executed by the double) is test_overlap_on_cluster.py; here each
branch of the decision is pinned quickly: take, skip, adopt (one winner), join, take over a
stale lease, verify at a commit point, and the CLI's update after an adoption.
"""

from __future__ import annotations

import threading
import time

import pytest

from funnelops.errors import RunInProgress
from funnelops.flows.engines.base import RunSkipped

from test_backend_iac import gcp_env  # noqa: F401 - fixture re-used

pytestmark = pytest.mark.gcp
WF = "funnel-dia"


@pytest.fixture
def leases(gcp_env, fake_gcs):  # noqa: F811
    from funnelops.backends.gcp.clients import Clients
    from funnelops.backends.gcp.leases import Leases

    bucket = fake_gcs.new_bucket("leases")
    return Leases(Clients("funnel-test", "us-central1"), bucket.name, ensure_bucket=lambda: None)


def guard(leases, lease_arg="scheduled", instance="cluster-a", *, done=(), found=None, release=True):
    from funnelops.backends.gcp.cluster_lease import GcsLeaseGuard

    return GcsLeaseGuard(leases, WF, lease_arg, ttl_s=60, release_at_end=release, instance=instance,
                         op_done=lambda op: op in done, find_operation=lambda cluster: found)


def test_a_fire_takes_a_free_lease_and_gives_it_back(leases):
    g = guard(leases, found="projects/p/regions/r/operations/op-a")
    with g.hold():
        held = leases.read(WF).data
        assert held["trigger"] == "scheduled" and held["instance"] == "cluster-a"
        assert held["run_id"] == "op-a"  # its operation, so its end frees it for everyone
        g.verify()
    assert leases.read(WF) is None


def test_a_fire_skips_a_live_lease_naming_the_run(leases):
    with guard(leases, found="projects/p/regions/r/operations/op-a").hold():
        with pytest.raises(RunSkipped) as skipped:
            with guard(leases, instance="cluster-b").hold():
                pytest.fail("the second fire must not run")
        assert str(skipped.value).startswith("skipped: run op-a in progress (since ")
        assert str(skipped.value).endswith(", by cloud-scheduler)")


def test_stale_leases_are_taken_over(leases):
    with guard(leases, instance="crashed", release=False).hold():
        pass
    lease = leases.read(WF)
    leases.update(lease, operation="projects/p/regions/r/operations/ended")
    with guard(leases, instance="cluster-b", done={"projects/p/regions/r/operations/ended"}).hold():
        assert leases.read(WF).data["instance"] == "cluster-b"  # its operation is done: stale
    with guard(leases, instance="old", release=False).hold():
        pass
    lease = leases.read(WF)
    leases.write(WF, {**lease.data, "expires": time.time() - 1}, lease.generation)
    with guard(leases, instance="cluster-c").hold():
        assert leases.read(WF).data["instance"] == "cluster-c"  # expired: stale


def test_a_later_step_of_the_same_run_joins_and_does_not_release(leases):
    with guard(leases, release=False).hold():
        with guard(leases).hold():  # same cluster: an earlier step of this run took it
            pass
        assert leases.read(WF) is not None


def test_only_one_fire_adopts_the_lease_of_a_forced_run(leases):
    owner = leases.acquire(WF, trigger="forced", actor="pipeline", is_live=lambda lease: True)
    leases.update(owner, adopt="scheduled")
    barrier = threading.Barrier(4)
    results: list[str] = []

    def fire(i: int) -> None:
        barrier.wait()
        try:
            with guard(leases, instance=f"cluster-{i}").hold():
                results.append("ran")
                time.sleep(0.5)
        except RunSkipped:
            results.append("skipped")

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ran", "skipped", "skipped", "skipped"]
    data = leases.read(WF).data
    assert data["owner"] == owner.token and data["adopt"] is None  # the CLI's lease, still held
    # The CLI's own update (run id, operation) lands on top of the adoption, owner unchanged.
    after = leases.update(owner, run_id="op-forced", operation="projects/p/regions/r/operations/op-forced")
    assert after.data["adopted_by"].startswith("cluster-") and after.data["owner"] == owner.token


def test_a_forced_run_verifies_its_token_and_stops_when_it_lost_the_lease(leases):
    owner = leases.acquire(WF, trigger="manual", actor="me", is_live=lambda lease: True)
    with pytest.raises(RunInProgress, match="lease someone-else is not held"):
        with guard(leases, "someone-else").hold():
            pytest.fail("must not run")
    g = guard(leases, owner.token)
    with g.hold():
        g.verify()
        leases.release(WF, owner=owner.token)  # taken away (judged stale elsewhere)
        with pytest.raises(RunInProgress, match="no longer holds its lease"):
            g.verify()



def test_a_scheduled_fire_skips_while_an_apply_holds_the_apply_lease(leases):
    """Issue 15: Cloud Scheduler fires on its own clock; the program on the cluster is the one place
    that sees the fire, so it looks at the apply lease too. Before: it ran in the middle of an apply."""
    from funnelops.backends.gcp.apply_lease import ApplyLease
    from funnelops.backends.gcp.cluster_lease import GcsLeaseGuard

    apply_lease = ApplyLease(leases.clients, leases.bucket)
    g = GcsLeaseGuard(leases, WF, "scheduled", ttl_s=60, release_at_end=True, instance="cluster-a",
                      op_done=lambda op: False, find_operation=lambda cluster: None, apply_holder=apply_lease.holder)
    apply_lease.take(command="funnelops apply plan.json", actor="ci@agent")
    try:
        with pytest.raises(RunSkipped) as skipped:
            with g.hold():
                pytest.fail("the fire must not run during an apply")
        assert str(skipped.value).startswith("skipped: an apply is in progress (`funnelops apply plan.json` by ci@agent")
        assert leases.read(WF) is None  # its run lease was given back
    finally:
        apply_lease.give_back()
    with g.hold():
        assert leases.read(WF) is not None
