"""`funnelops watch`: one observer that polls runs and posts their ends (exactly once overall).

Why it exists: on gcp nothing watches a run (Dataproc runs it, Cloud Scheduler fires it); an end
is seen by whoever polls. Locally the supervisor notifies itself, but a supervisor killed while
nobody looks is found LOST only when someone asks. A team runs one watcher (`watch`, or `watch
--once` from cron) so every end is told even when no one runs a command. Polling through the
backend's `list` lets its own observers act (the local reaper, gcp's `get`); then every run
that ended within `since_s` is offered to `notify_run_end`, whose claim (`Ledger.claim_once`)
makes a second watcher, a `--wait` or the supervisor a no-op for a run already told.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, UTC
from typing import Any

from funnelops.backends.base import Backend
from funnelops.notify import notify_run_end, wanted


def _ended_ago_s(ended_at: str | None, now: float) -> float | None:
    if not ended_at:
        return None
    try:
        dt = datetime.fromisoformat(ended_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return now - (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def poll_once(backend: Backend, notifications: Any, project: str, *, since_s: float = 3600.0, limit: int = 200,
              log: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """One poll: the runs seen, and what this watcher notified (runs others told are not repeated)."""
    records = backend.runtime.list(None, limit)
    now = time.time()
    notified = []
    for run in records:
        ago = _ended_ago_s(run.ended_at, now)
        if not run.terminal or ago is None or ago > since_s or not wanted(run, notifications):
            continue
        outcomes = notify_run_end(run, notifications, project=project, backend=backend.name,
                                  claim=backend.ledger.claim_once, log=log)
        if outcomes:
            backend.ledger.record_event("notification", str(run.id),
                                        {"state": run.state, "channels": [o.to_dict() for o in outcomes]})
            notified.append({"run_id": run.id, "workflow": run.workflow, "state": run.state,
                             "channels": [o.to_dict() for o in outcomes]})
    return {"runs_seen": len(records), "active": sum(1 for r in records if not r.terminal), "notified": notified}
