"""The local scheduler: fires each scheduler on its cron, in its time zone, like Cloud Scheduler.

It knows nothing about runs, leases or the ledger; the caller wires those in through callbacks:

* ``schedulers()`` returns the current schedulers every tick (spec models, resource dicts, ...),
  so pause/resume and spec edits take effect without a restart;
* ``fire(scheduler_id, scheduled_for, attempt)`` starts the workflow and answers a
  :class:`FireOutcome`; SKIPPED_RUNNING (the workflow is still running) is recorded and never
  retried, because retrying would only race the run in progress; FAILED is retried per the
  scheduler's RetryConfig (:mod:`.retry`), an exception counts as FAILED;
* ``record(event)`` receives every :class:`SchedulerEvent` (serialized: never called concurrently).

Misfires: when the daemon was down or late, the slots due since it last looked are coalesced into
one fire of the latest slot if it is within ``grace`` of now, and the older ones are recorded as
MISSED (Cloud Scheduler does not replay a backlog either). A paused scheduler lets its slots pass
silently and drops a pending retry; resuming does not replay them.

A pending retry is dropped when the next scheduled slot comes due first ("retry_count times, or
until the next scheduled execution time, whichever comes first"), so one scheduler never has two
attempts in flight. Fires run on a small thread pool so a slow ``fire`` does not delay other
schedulers; a scheduler whose fire is still executing is not fired again until it returns.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, UTC
from enum import Enum
from typing import Any, ParamSpec, TypeVar
from collections.abc import Callable, Iterable, Mapping

from funnelops.reporting import Event

from .cron import CronError, fires_between, next_fire
from .retry import RetryPolicy

__all__ = ["FireOutcome", "EventKind", "SchedulerEvent", "ScheduledJob", "SchedulerDaemon",
           "InlineExecutor"]

log = logging.getLogger(__name__)
_UTC = UTC
_MISSED_SCAN_LIMIT = 10_000  # a long outage of an every-minute cron is reported, not enumerated
_P = ParamSpec("_P")
_T = TypeVar("_T")


class FireOutcome(str, Enum):
    STARTED = "started"
    SKIPPED_RUNNING = "skipped_running"
    FAILED = "failed"


class EventKind(str, Enum):
    STARTED = "started"                  # fire answered STARTED
    SKIPPED_RUNNING = "skipped_running"  # workflow still running: skipped, not retried
    FAILED = "failed"                    # an attempt failed; retry_at is None when it was the last
    RETRY_DROPPED = "retry_dropped"      # pending retry superseded by the next slot, or paused
    COALESCED = "coalesced"              # `count` late slots within grace fired once
    MISSED = "missed"                    # `count` slots older than grace not fired
    ERROR = "error"                      # bad cron/time zone, or schedulers() failed


@dataclass(frozen=True)
class SchedulerEvent(Event):
    """What the daemon did for one scheduler (also a reporting event: the CLI prints it, the ledger keeps it)."""

    kind: EventKind
    scheduler_id: str
    at: datetime
    scheduled_for: datetime | None = None
    attempt: int = 0
    retry_at: datetime | None = None
    count: int = 0
    detail: str = ""
    scheduler_name: str = ""

    def to_dict(self) -> dict[str, Any]:
        iso = lambda d: d.isoformat() if d else None
        return {"kind": self.kind.value, "scheduler_id": self.scheduler_id,
                "scheduler_name": self.scheduler_name, "at": iso(self.at),
                "scheduled_for": iso(self.scheduled_for), "attempt": self.attempt,
                "retry_at": iso(self.retry_at), "count": self.count, "detail": self.detail}


@dataclass(frozen=True)
class ScheduledJob:
    """The fields the daemon needs, read from whatever shape the caller has."""

    id: str
    name: str
    cron: str
    time_zone: str
    paused: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_any(cls, obj: Any, default_time_zone: str) -> ScheduledJob:
        """Accepts a spec Scheduler, a scheduler resource's attrs dict (with ``id``), or a mapping."""
        if isinstance(obj, ScheduledJob):
            return obj
        if isinstance(obj, Mapping):
            get = obj.get
        else:
            get = lambda k, d=None: getattr(obj, k, d)
        sid = get("id")
        cron = get("cron") or get("schedule")
        if not sid or not cron:
            raise ValueError(f"scheduler needs an id and a cron, got {obj!r}")
        return cls(id=str(sid), name=str(get("name") or get("display_name") or sid), cron=str(cron),
                   time_zone=str(get("time_zone") or default_time_zone), paused=bool(get("paused", False)),
                   retry=RetryPolicy.from_config(get("retry")))


@dataclass
class _Retry:
    scheduled_for: datetime
    attempt: int
    at: datetime


@dataclass
class _State:
    cursor: datetime          # every slot at or before this instant has been handled
    inflight: bool = False
    retry: _Retry | None = None
    error: str | None = None  # last ERROR reported, so a bad cron is reported once


class InlineExecutor(Executor):
    """Runs each submitted call at once in the caller's thread: deterministic tests, `--once`."""

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        future: Future[_T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def _utc_now() -> datetime:
    return datetime.now(_UTC)


class SchedulerDaemon:
    def __init__(
        self,
        schedulers: Callable[[], Iterable[Any]],
        fire: Callable[[str, datetime, int], FireOutcome | str],
        record: Callable[[SchedulerEvent], None] | None = None,
        *,
        now: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] | None = None,
        grace: timedelta = timedelta(hours=1),
        default_time_zone: str = "Etc/UTC",
        since: datetime | None = None,
        resume_from: Callable[[str], datetime | None] | None = None,
        executor: Executor | None = None,
        max_workers: int = 4,
        poll_interval_s: float = 30.0,
    ) -> None:
        """``since``: when the daemon last ran (slots after it are misfire candidates at the first
        tick); ``resume_from(id)``: the last handled slot per scheduler, preferred over ``since``.
        Without either, a scheduler's slots count from the moment the daemon first sees it.
        ``poll_interval_s`` bounds every sleep so pause/resume and spec edits are noticed."""
        self._schedulers = schedulers
        self._fire = fire
        self._record_cb = record or (lambda event: None)
        self._now = now
        self._grace = grace
        self._default_tz = default_time_zone
        self._since = since
        self._resume_from = resume_from
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers, thread_name_prefix="funnelops-fire")
        self._poll = poll_interval_s
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()
        self._record_lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._sleep = sleep or self._default_sleep

    # -- one tick -------------------------------------------------------------------------------

    def run_once(self, now: datetime | None = None) -> datetime | None:
        """Handle everything due at ``now``; return when the next tick is needed (None: nothing)."""
        now = (now or self._now()).astimezone(_UTC)
        jobs = [ScheduledJob.from_any(s, self._default_tz) for s in self._schedulers()]
        events: list[SchedulerEvent] = []
        submits: list[tuple[ScheduledJob, datetime, int]] = []
        with self._lock:
            since, self._since = self._since, None
            seen = {job.id for job in jobs}
            for sid in [sid for sid, st in self._states.items() if sid not in seen and not st.inflight]:
                del self._states[sid]
            for job in jobs:
                st = self._states.get(job.id)
                if st is None:
                    start = self._resume_from(job.id) if self._resume_from else None
                    st = self._states[job.id] = _State(cursor=(start or since or now).astimezone(_UTC))
                before = len(submits)
                self._tick_job(job, st, now, events, submits)
                if len(submits) > before:
                    st.inflight = True  # set under the lock, before the pool can run it
        self._emit(events)
        for job, slot, attempt in submits:
            try:
                self._executor.submit(self._fire_one, job, slot, attempt)
            except RuntimeError as exc:  # executor shut down while stopping
                with self._lock:
                    self._states[job.id].inflight = False
                    self._idle.notify_all()
                log.warning("scheduler %s not fired: %s", job.id, exc)
        with self._lock:  # after the submits: an inline fire may have scheduled a retry
            return self._next_wake(jobs, now)

    def _tick_job(self, job: ScheduledJob, st: _State, now: datetime,
                  events: list[SchedulerEvent], submits: list[tuple[ScheduledJob, datetime, int]]) -> None:
        def event(kind: EventKind, **kw: Any) -> None:
            events.append(SchedulerEvent(kind, job.id, now, scheduler_name=job.name, **kw))

        if job.paused:
            st.cursor = max(st.cursor, now)
            if st.retry:
                event(EventKind.RETRY_DROPPED, scheduled_for=st.retry.scheduled_for,
                      attempt=st.retry.attempt, detail="scheduler paused")
                st.retry = None
            return
        if st.inflight:
            return  # its due slots wait for the running fire to return (then coalesce)
        cutoff = now - self._grace
        try:
            due = fires_between(job.cron, job.time_zone, max(st.cursor, cutoff), now)
            missed = (fires_between(job.cron, job.time_zone, st.cursor, cutoff, limit=_MISSED_SCAN_LIMIT)
                      if st.cursor < cutoff else [])
        except CronError as exc:
            if st.error != str(exc):
                st.error = str(exc)
                event(EventKind.ERROR, detail=str(exc))
            st.cursor = max(st.cursor, now)
            return
        st.error = None
        if not due and not missed:
            if st.retry and st.retry.at <= now:
                retry, st.retry = st.retry, None
                submits.append((job, retry.scheduled_for, retry.attempt))
            return
        st.cursor = max(st.cursor, now)
        if missed:
            more = "+" if len(missed) == _MISSED_SCAN_LIMIT else ""
            event(EventKind.MISSED, scheduled_for=missed[-1], count=len(missed),
                  detail=f"{len(missed)}{more} slot(s) from {missed[0].isoformat()} older than the "
                         f"{self._grace} grace window")
        if st.retry:
            event(EventKind.RETRY_DROPPED, scheduled_for=st.retry.scheduled_for, attempt=st.retry.attempt,
                  detail="superseded by the next scheduled slot")
            st.retry = None
        if due:
            if len(due) > 1:
                event(EventKind.COALESCED, scheduled_for=due[-1], count=len(due),
                      detail=f"{len(due)} late slots from {due[0].isoformat()} fired once")
            submits.append((job, due[-1], 1))

    def _next_wake(self, jobs: list[ScheduledJob], now: datetime) -> datetime | None:
        wake: datetime | None = None
        for job in jobs:
            st = self._states.get(job.id)
            if st is None or job.paused or st.inflight or st.error:
                continue
            candidates = [st.retry.at] if st.retry else []
            try:
                candidates.append(next_fire(job.cron, job.time_zone, max(st.cursor, now)))
            except CronError:
                pass
            for c in candidates:
                if wake is None or c < wake:
                    wake = c
        return wake

    # -- one fire (pool thread) -----------------------------------------------------------------

    def _fire_one(self, job: ScheduledJob, slot: datetime, attempt: int) -> None:
        detail = ""
        try:
            outcome = FireOutcome(self._fire(job.id, slot, attempt))
        except Exception as exc:
            log.exception("fire of scheduler %s failed", job.id)
            outcome, detail = FireOutcome.FAILED, f"{type(exc).__name__}: {exc}"
        at = self._now()
        retry_at = None
        with self._lock:
            st = self._states.get(job.id)
            if outcome is FireOutcome.FAILED and attempt < job.retry.max_attempts and st is not None:
                retry_at = at + job.retry.delay_before(attempt + 1)
                st.retry = _Retry(slot, attempt + 1, retry_at.astimezone(_UTC))
            if st is not None:
                st.inflight = False
            self._idle.notify_all()
        kind = {FireOutcome.STARTED: EventKind.STARTED, FireOutcome.SKIPPED_RUNNING: EventKind.SKIPPED_RUNNING,
                FireOutcome.FAILED: EventKind.FAILED}[outcome]
        self._emit([SchedulerEvent(kind, job.id, at, scheduled_for=slot, attempt=attempt,
                                   retry_at=retry_at, detail=detail, scheduler_name=job.name)])
        self._wake.set()

    def _emit(self, events: list[SchedulerEvent]) -> None:
        with self._record_lock:
            for ev in events:
                try:
                    self._record_cb(ev)
                except Exception:
                    log.exception("recording scheduler event %s failed", ev.kind.value)

    # -- loop -----------------------------------------------------------------------------------

    def _default_sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def run(self) -> None:
        """Tick until :meth:`stop`; each sleep lasts until the next slot or retry, at most the poll."""
        try:
            while not self._stop.is_set():
                try:
                    wake = self.run_once()
                except Exception as exc:
                    log.exception("scheduler tick failed")
                    self._emit([SchedulerEvent(EventKind.ERROR, "", self._now(), detail=f"{type(exc).__name__}: {exc}")])
                    wake = None
                if self._stop.is_set():
                    break
                delay = self._poll
                if wake is not None:
                    delay = min(delay, max((wake - self._now()).total_seconds(), 0.0))
                self._sleep(delay)
        finally:
            if self._own_executor:
                self._executor.shutdown(wait=True)

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current tick; fires in progress complete."""
        self._stop.set()
        self._wake.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no fire is executing (tests, and a clean shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: not any(s.inflight for s in self._states.values()), timeout)

    def pending_retry(self, scheduler_id: str) -> tuple[datetime, int] | None:
        """(when, attempt) of the scheduler's pending retry, for `scheduler list`."""
        with self._lock:
            st = self._states.get(scheduler_id)
            return (st.retry.at, st.retry.attempt) if st and st.retry else None
