"""The local scheduler daemon wired to a backend: fires start scheduled runs under the lease.

A fire whose workflow is still running is skipped and recorded (never a second run); a failed
start is retried per the scheduler's retry config; every event lands in the ledger.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from funnelops.errors import FunnelopsError, RunInProgress, UsageError
from funnelops.lifecycle.order import require_before
from funnelops.reporting import QUIET, Reporter
from funnelops.runs import coordinator

if TYPE_CHECKING:
    from funnelops.backends.base import Backend
    from funnelops.scheduler.daemon import SchedulerDaemon, SchedulerEvent
    from funnelops.spec.project import LoadedProject


def served_schedulers(backend: Backend, now: datetime | None = None) -> list[dict[str, Any]]:
    """The schedulers the daemon fires (as created in the backend), each with its next fire
    (`next_fire`, ISO with offset in the scheduler's zone; None when paused or its cron is bad)."""
    from funnelops.scheduler.cron import CronError, next_fire

    states = backend.runtime.scheduler_states()
    now = now or datetime.now(UTC)
    out = []
    for sid, obs in backend.handler("scheduler").observe([]).items():
        cfg = obs.config
        paused = sid in states and states[sid].paused
        try:
            upcoming = None if paused else next_fire(cfg["schedule"], cfg["time_zone"], now).isoformat()
        except CronError:
            upcoming = None
        out.append({"id": sid, "name": cfg["display_name"] or sid, "cron": cfg["schedule"],
                    "time_zone": cfg["time_zone"], "paused": paused, "retry": cfg["retry"],
                    "workflow": cfg["workflow"], "next_fire": upcoming})
    return out


def _next_text(schedulers: list[dict[str, Any]], sid: str) -> str:
    """'next fire 2026-11-30T06:00:00-05:00 (America/Bogota)' for the scheduler `sid`."""
    for s in schedulers:
        if s["id"] == sid:
            return "paused" if s["paused"] else f"next fire {s['next_fire'] or '-'} ({s['time_zone']})"
    return ""


def make_daemon(loaded: LoadedProject, backend: Backend, *, reporter: Reporter = QUIET,
                **daemon_kw: Any) -> SchedulerDaemon:
    """The daemon; each of its events is recorded in the ledger, then emitted to `reporter`."""
    from funnelops.scheduler.daemon import EventKind, FireOutcome, SchedulerDaemon

    if not backend.scheduler_daemon:
        raise UsageError("`scheduler serve` runs the local backend's schedulers",
                         "on gcp, Cloud Scheduler fires the jobs itself; use `funnelops scheduler list`")
    require_before(backend.ledger, None, "force-scheduler")
    runtime = backend.runtime

    def current() -> list[dict[str, Any]]:
        return served_schedulers(backend)

    workflows: dict[str, str] = {}
    started: dict[str, str] = {}  # scheduler id -> what its last fire started, for the event's detail

    def fire(sid: str, scheduled_for: datetime, attempt: int) -> FireOutcome:
        if sid not in workflows:
            workflows.update({s["id"]: s["workflow"] for s in current()})
        try:
            run = coordinator.start(backend, workflows[sid], trigger="scheduled", actor=f"scheduler:{sid}")
            started[sid] = f"started run {run.id} of {run.workflow}"
        except RunInProgress:
            return FireOutcome.SKIPPED_RUNNING
        except FunnelopsError:
            return FireOutcome.FAILED
        backend.schedulers.mark_fired(sid, scheduled_for.isoformat())
        return FireOutcome.STARTED

    def record(ev: SchedulerEvent) -> None:
        if ev.kind in (EventKind.STARTED, EventKind.SKIPPED_RUNNING, EventKind.FAILED):
            # say what the fire started and when the scheduler fires next (a retry says when instead)
            extra = [started.pop(ev.scheduler_id, "")] if ev.kind is EventKind.STARTED else []
            if ev.retry_at is None:
                extra.append(_next_text(current(), ev.scheduler_id))
            ev = replace(ev, detail="; ".join(x for x in (ev.detail, *extra) if x))
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
