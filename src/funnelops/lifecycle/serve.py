"""The local scheduler daemon wired to a backend: fires start scheduled runs under the lease.

A fire whose workflow is still running is skipped and recorded (never a second run); a failed
start is retried per the scheduler's retry config; every event lands in the ledger.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from funnelops.errors import FunnelopsError, RunInProgress, UsageError
from funnelops.lifecycle.order import require_before
from funnelops.reporting import QUIET, Reporter
from funnelops.runs import coordinator

if TYPE_CHECKING:
    from funnelops.backends.base import Backend
    from funnelops.scheduler.daemon import SchedulerDaemon, SchedulerEvent
    from funnelops.spec.project import LoadedProject


def make_daemon(loaded: LoadedProject, backend: Backend, *, reporter: Reporter = QUIET,
                **daemon_kw: Any) -> SchedulerDaemon:
    """The daemon; each of its events is recorded in the ledger, then emitted to `reporter`."""
    from funnelops.scheduler.daemon import FireOutcome, SchedulerDaemon

    if not backend.scheduler_daemon:
        raise UsageError("`scheduler serve` runs the local backend's schedulers",
                         "on gcp, Cloud Scheduler fires the jobs itself; use `funnelops scheduler list`")
    require_before(backend.ledger, None, "force-scheduler")
    handler = backend.handler("scheduler")
    runtime = backend.runtime

    def current() -> list[dict[str, Any]]:
        states = runtime.scheduler_states()
        out = []
        for sid, obs in handler.observe([]).items():
            cfg = obs.config
            out.append({"id": sid, "name": cfg["display_name"] or sid, "cron": cfg["schedule"],
                        "time_zone": cfg["time_zone"], "paused": sid in states and states[sid].paused,
                        "retry": cfg["retry"], "workflow": cfg["workflow"]})
        return out

    workflows: dict[str, str] = {}

    def fire(sid: str, scheduled_for: datetime, attempt: int) -> FireOutcome:
        if sid not in workflows:
            workflows.update({s["id"]: s["workflow"] for s in current()})
        try:
            coordinator.start(backend, workflows[sid], trigger="scheduled", actor=f"scheduler:{sid}")
        except RunInProgress:
            return FireOutcome.SKIPPED_RUNNING
        except FunnelopsError:
            return FireOutcome.FAILED
        backend.schedulers.mark_fired(sid, scheduled_for.isoformat())
        return FireOutcome.STARTED

    def record(ev: SchedulerEvent) -> None:
        backend.ledger.record_event(f"scheduler.{ev.kind.value}", ev.scheduler_id, ev.to_dict())
        reporter.emit(ev)

    def resume_from(sid: str) -> datetime | None:
        state = runtime.scheduler_states().get(sid)
        last = state.last_fire if state is not None else None
        try:
            return datetime.fromisoformat(last) if last else None
        except ValueError:
            return None

    return SchedulerDaemon(current, fire, record, default_time_zone=loaded.spec.project.time_zone,
                           resume_from=resume_from, **daemon_kw)
