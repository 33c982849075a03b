"""The lease around the flows entry point, so a run started by hand, by the local scheduler or by
a forced run can never overlap another run of the same workflow.

The runner passes FUNNELOPS_WORKFLOW and FUNNELOPS_LEASE_OWNER to the steps it starts: a step
then checks that its run still holds the lease. Started by hand with only FUNNELOPS_WORKFLOW, the
flows take the lease themselves (and renew it, retrying errors; see runs/renewal.py) for as long
as they run. Without FUNNELOPS_WORKFLOW (an ad-hoc run of the flows outside any workflow) there
is nothing to guard.

Either way, `verify_lease_held` is called right before every commit point (a partition swap, the
warehouse commit): a run that lost its lease, or is giving it up because it could not renew it,
publishes nothing more.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from collections.abc import Iterator

from funnelops.errors import RunInProgress
from funnelops.backends.local.leases import LeaseStore, default_expiry_s
from funnelops.backends.local.renewal import LeaseKeeper
from funnelops.backends.local.home import LocalHome
from funnelops.backends.local.ledger_db import LedgerDB
from funnelops.backends.local.ledger import LocalLedger, record_refusal

# The lease this process took itself (flows started by hand): (workflow, owner, keeper).
_OWN: tuple[str, str, LeaseKeeper] | None = None


def _store(home: Path) -> LeaseStore:
    return LeaseStore(LedgerDB(LocalHome(home).ledger))


@contextmanager
def workflow_lease(home: Path) -> Iterator[None]:
    global _OWN
    workflow = os.environ.get("FUNNELOPS_WORKFLOW")
    if not workflow:
        yield
        return
    leases = _store(home)
    owner = os.environ.get("FUNNELOPS_LEASE_OWNER")
    if owner:
        if not leases.owned_by(workflow, owner):
            raise RunInProgress(f"workflow '{workflow}': this step's run ({owner}) no longer holds the lease",
                                "another run took over; this step stops without writing")
        yield
        return
    owner = f"flows-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    expiry = default_expiry_s()
    try:
        leases.acquire(workflow, owner, expiry_s=expiry)
    except RunInProgress as exc:
        record_refusal(LocalLedger(Path(home)), workflow, exc, trigger="flows")
        raise
    # Losing the lease needs no action here: every commit point checks `keeper.lost` first.
    leases.db.pin()  # while we hold the lease, stopping us must block no reader (ledger_db.py)
    keeper = LeaseKeeper(leases, workflow, owner, expiry, on_lost=lambda reason: None).start()
    _OWN = (workflow, owner, keeper)
    try:
        yield
    finally:
        _OWN = None
        keeper.close()
        try:
            leases.release(workflow, owner)
        finally:
            leases.db.unpin()


def verify_lease_held(home: Path) -> None:
    """Right before a commit point: raise RunInProgress unless this run still holds its lease.

    Checks the lease this process took (by hand), or the run's lease named by FUNNELOPS_WORKFLOW
    and FUNNELOPS_LEASE_OWNER (a step of a supervised run): the owner must still hold it, with a
    heartbeat renewed within its budget. Outside a workflow there is nothing to check.
    """
    own = _OWN
    if own is not None:
        workflow, owner, keeper = own
        if keeper.lost.is_set():
            raise RunInProgress(f"workflow '{workflow}': this run ({owner}) gave up its lease: {keeper.reason}",
                                "nothing more is written; run the workflow again")
        _store(home).verify_held(workflow, owner)
        return
    env_workflow, env_owner = os.environ.get("FUNNELOPS_WORKFLOW"), os.environ.get("FUNNELOPS_LEASE_OWNER")
    if env_workflow and env_owner:
        _store(home).verify_held(env_workflow, env_owner)
