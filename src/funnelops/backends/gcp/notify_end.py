"""Notify a gcp run's end from whoever observes it (`GcpRuntime.get`: a `--wait`, `runs`, `watch`).

gcp has no process watching a run: Dataproc runs it, Cloud Scheduler fires it. Its end is seen
by whoever polls, and `GcsLedger.claim_once` (an object created with ifGenerationMatch=0) lets
exactly one of them send. The decisions and payloads are `funnelops.notify`'s. Never raises: an
alert must not break a poll.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from funnelops.backends.types import RunRecord


def ended_within(rec: RunRecord, seconds: float) -> bool:
    """Did the run end less than `seconds` ago? (An old run looked up by id is not news.)"""
    try:
        ended = datetime.fromisoformat(str(rec.ended_at).replace("Z", "+00:00"))
    except ValueError:
        return False
    return time.time() - (ended if ended.tzinfo else ended.replace(tzinfo=UTC)).timestamp() < seconds


def notify_end(rec: RunRecord, loaded: Any, project: str, ledger: Any) -> None:
    from funnelops.notify import notify_run_end, wanted

    notifications = getattr(loaded.spec, "notifications", None) if loaded is not None else None
    if not wanted(rec, notifications):
        return
    try:
        outcomes = notify_run_end(rec, notifications, project=project, backend="gcp", claim=ledger.claim_once)
        if outcomes:
            ledger.record_event("notification", str(rec.id),
                                {"state": rec.state, "channels": [o.to_dict() for o in outcomes]})
    except Exception:  # sent or not, the poll goes on (notify_run_end logs its own warnings)
        pass
