"""Refusing whole-home operations while any run is in progress.

A lease guards one workflow against a second run of itself. `destroy` and `data generate` touch
what EVERY workflow reads (the buckets, the warehouse), so they must wait for all runs: a run
reading raw files that are being replaced writes trusted data from torn input, and a destroy
deletes the bucket under a running step. They refuse (exit 3) naming each run in progress.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from funnelops.errors import RunInProgress
from funnelops.backends.local.leases import LeaseStore, _holder, holder_alive
from funnelops.runs.model import Holder
from funnelops.backends.local.ledger_db import LedgerDB


def store_holders(store: LeaseStore) -> list[Holder]:
    """Every live holder in a local lease store, across workflows (dead holders do not count)."""
    if not store.db.path.exists():
        return []
    with store.db.read() as con:
        rows = con.execute("SELECT * FROM leases ORDER BY workflow").fetchall()
        return [_holder(con, r) for r in rows if holder_alive(r)]


def local_holders(home: Path) -> list[Holder]:
    """Live holders of the local home's leases (none when the home has no ledger yet)."""
    return store_holders(LeaseStore(LedgerDB(Path(home) / "ledger.sqlite")))


def backend_holders(backend, workflows: Iterable[str]) -> list[Holder]:
    """Live runs on `backend`: every local lease; on gcp, each workflow's run or lease."""
    runtime = backend.runtime
    store = getattr(runtime, "leases", None)
    if isinstance(store, LeaseStore):
        return store_holders(store)
    return [h for w in workflows if (h := runtime.in_progress(w)) is not None]


def refuse_while_running(holders: list[Holder], action: str) -> None:
    """Raise RunInProgress (exit 3) naming every run in progress; return if there is none."""
    if not holders:
        return
    runs = "; ".join(f"workflow '{h.workflow}': {h.describe()}" for h in holders)
    first = next((h for h in holders if h.run_id is not None), None)
    if first is not None:
        hint = (f"wait for it to end (`funnelops logs {first.run_id} --follow`) or cancel it "
                f"(`funnelops cancel {first.run_id}`), then retry; nothing was changed")
    else:
        hint = "wait for it to end (`funnelops runs` lists what is running), then retry; nothing was changed"
    raise RunInProgress(f"cannot {action} while a run is in progress: {runs}", hint,
                        holders=[h.to_dict() for h in holders])
