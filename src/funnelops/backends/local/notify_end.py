"""Notify a local run's end: from the supervisor as it records it, and from the reaper (LOST).

The decisions (which channels, the payloads, the retries) are `funnelops.notify`'s; this module
only says where the local backend finds the channels (the run's project file), how it claims the
notification (`LocalLedger.claim_once`, one SQLite row) and where it logs (the run's
supervisor.log, beside its step logs). Called after the end is recorded and the lease freed, so
a slow receiver never delays the run's end or the next run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from funnelops.backends.local.ledger import LocalLedger
from funnelops.backends.local.ledger_db import LedgerDB, now_iso
from funnelops.backends.types import RunRecord


def run_log(run: RunRecord) -> Callable[[str], None]:
    """Append lines to the run's supervisor.log (what the supervisor itself prints to)."""

    def log(line: str) -> None:
        if not run.log_dir:
            return
        try:
            path = Path(run.log_dir) / "supervisor.log"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"{now_iso()} {line}\n")
        except OSError:
            pass

    return log


def notify_end(db: LedgerDB, run: RunRecord | None, project_path: str | Path | None,
               log: Callable[[str], None] | None = None) -> None:
    """Best effort, never raises: post the run's end to the project's channels (once, whoever calls)."""
    from funnelops.notify import notifications_of, notify_run_end, wanted

    if run is None or not run.terminal or not project_path:
        return
    log = log or run_log(run)
    try:
        notifications, project = notifications_of(project_path)
    except Exception as exc:  # a broken block must not break the run's end
        log(f"notifications: warning: cannot read `notifications:` from {project_path}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        return
    if not wanted(run, notifications):
        return
    ledger = LocalLedger(Path(db.path).parent, db)
    outcomes = notify_run_end(run, notifications, project=project, backend="local", claim=ledger.claim_once,
                              log=log)
    if outcomes:
        try:
            ledger.record_event("notification", str(run.id),
                                {"state": run.state, "channels": [o.to_dict() for o in outcomes]})
        except Exception as exc:
            log(f"notifications: could not record the notification event: {type(exc).__name__}")
