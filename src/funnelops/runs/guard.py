"""The lease around the flows entry point, so a run started by hand, by the local scheduler or by
a forced run can never overlap another run of the same workflow.

The runner passes FUNNELOPS_WORKFLOW and FUNNELOPS_LEASE_OWNER to the steps it starts: a step
then checks that its run still holds the lease. Started by hand with only FUNNELOPS_WORKFLOW, the
flows take the lease themselves (and heartbeat it) for as long as they run. Without
FUNNELOPS_WORKFLOW (an ad-hoc run of the flows outside any workflow) there is nothing to guard.
"""

from __future__ import annotations

import os
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from funnelops.errors import RunInProgress
from funnelops.runs.leases import DEFAULT_EXPIRY_S, LeaseStore
from funnelops.state.db import LedgerDB


@contextmanager
def workflow_lease(home: Path) -> Iterator[None]:
    workflow = os.environ.get("FUNNELOPS_WORKFLOW")
    if not workflow:
        yield
        return
    leases = LeaseStore(LedgerDB(Path(home) / "ledger.sqlite"))
    owner = os.environ.get("FUNNELOPS_LEASE_OWNER")
    if owner:
        if not leases.owned_by(workflow, owner):
            raise RunInProgress(f"workflow '{workflow}': this step's run ({owner}) no longer holds the lease",
                                "another run took over; this step stops without writing")
        yield
        return
    owner = f"flows-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    leases.acquire(workflow, owner)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(max(0.2, DEFAULT_EXPIRY_S / 4)):
            leases.heartbeat(workflow, owner)

    t = threading.Thread(target=beat, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        leases.release(workflow, owner)
