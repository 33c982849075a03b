"""The scheduler daemon on a fake clock: when it fires, what it records, how it retries."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, UTC
from zoneinfo import ZoneInfo

import pytest

from funnelops.scheduler.daemon import EventKind, FireOutcome, InlineExecutor, SchedulerDaemon
from funnelops.spec.models import RetryConfig, Scheduler

BOG = ZoneInfo("America/Bogota")
NY = ZoneInfo("America/New_York")


class Clock:
    def __init__(self, start: datetime) -> None:
        self.t = start

    def now(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


class Harness:
    """A daemon with a fake clock, inline fires, and recorded calls."""

    def __init__(self, schedulers, start, outcomes=None, **kw):
        self.clock = Clock(start)
        self.schedulers = schedulers
        self.fires: list[tuple[str, datetime, int, datetime]] = []
        self.events = []
        self.outcomes = outcomes or (lambda sid, slot, attempt: FireOutcome.STARTED)
        self.daemon = SchedulerDaemon(lambda: self.schedulers, self._fire, self.events.append,
                                      now=self.clock.now, sleep=self._sleep, executor=InlineExecutor(),
                                      poll_interval_s=kw.pop("poll_interval_s", 3600), **kw)
        self.until: datetime | None = None

    def _fire(self, sid, slot, attempt):
        self.fires.append((sid, slot, attempt, self.clock.now()))
        return self.outcomes(sid, slot, attempt)

    def _sleep(self, seconds):
        assert seconds >= 0
        self.clock.advance(seconds)
        if self.until is not None and self.clock.t >= self.until:
            self.daemon.stop()

    def run_until(self, until: datetime) -> None:
        self.until = until
        self.daemon.run()

    def kinds(self):
        return [e.kind for e in self.events]


def sched(id="dia", cron="0 6 * * *", tz="America/Bogota", paused=False, **retry):
    return {"id": id, "display_name": id.title(), "schedule": cron, "time_zone": tz, "paused": paused,
            "retry": retry or None}


def test_fires_at_cron_instants_in_time_zone():
    h = Harness([sched(), sched("cada2h", "30 */2 * * *")], datetime(2024, 5, 1, 5, 0, tzinfo=BOG))
    h.run_until(datetime(2024, 5, 2, 7, 0, tzinfo=BOG))
    dia = [(slot, at) for sid, slot, _, at in h.fires if sid == "dia"]
    assert [s.isoformat() for s, _ in dia] == ["2024-05-01T06:00:00-05:00", "2024-05-02T06:00:00-05:00"]
    assert all(slot == at for slot, at in dia)  # woke exactly at the slot, not a poll later
    assert len([f for f in h.fires if f[0] == "cada2h"]) == 13  # 06:30 May 1 .. 06:30 May 2
    assert set(h.kinds()) == {EventKind.STARTED}


def test_spec_scheduler_models_are_accepted_and_project_time_zone_applies():
    s = Scheduler(name="Día", id="dia", cron="0 6 * * *", workflow="funnel-dia")  # time_zone None
    h = Harness([s], datetime(2024, 5, 1, 5, 0, tzinfo=BOG), default_time_zone="America/Bogota")
    assert h.daemon.run_once() == datetime(2024, 5, 1, 6, 0, tzinfo=BOG)
    h.clock.t = datetime(2024, 5, 1, 6, 0, tzinfo=BOG)
    h.daemon.run_once()
    assert h.fires[0][:3] == ("dia", datetime(2024, 5, 1, 6, 0, tzinfo=BOG), 1)
    assert h.events[0].scheduler_name == "Día"


def test_dst_fall_back_fires_once_and_spring_forward_at_end_of_gap():
    h = Harness([sched("a", "30 1 * * *", "America/New_York"), sched("b", "30 2 * * *", "America/New_York")],
                datetime(2024, 3, 9, 0, 0, tzinfo=NY))
    h.run_until(datetime(2024, 3, 12, 0, 0, tzinfo=NY))
    assert [f[1].isoformat() for f in h.fires if f[0] == "b"] == [
        "2024-03-09T02:30:00-05:00", "2024-03-10T03:00:00-04:00", "2024-03-11T02:30:00-04:00"]
    h2 = Harness([sched("a", "30 1 * * *", "America/New_York")], datetime(2024, 11, 2, 0, 0, tzinfo=NY))
    h2.run_until(datetime(2024, 11, 5, 0, 0, tzinfo=NY))
    assert [f[1].isoformat() for f in h2.fires] == [
        "2024-11-02T01:30:00-04:00", "2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"]


def test_paused_scheduler_never_fires_and_resume_does_not_replay():
    h = Harness([sched(paused=True)], datetime(2024, 5, 1, 5, 0, tzinfo=BOG))
    h.run_until(datetime(2024, 5, 3, 5, 0, tzinfo=BOG))
    assert h.fires == [] and h.events == []
    h.schedulers = [sched(paused=False)]
    h.daemon._stop.clear()
    h.run_until(datetime(2024, 5, 3, 7, 0, tzinfo=BOG))
    assert [f[1].day for f in h.fires] == [3]


def test_skipped_running_is_recorded_and_not_retried():
    h = Harness([sched(retry_count=3, min_backoff_s=10)], datetime(2024, 5, 1, 5, 0, tzinfo=BOG),
                outcomes=lambda *a: FireOutcome.SKIPPED_RUNNING)
    h.run_until(datetime(2024, 5, 1, 23, 0, tzinfo=BOG))
    assert [(f[1].hour, f[2]) for f in h.fires] == [(6, 1)]
    assert h.kinds() == [EventKind.SKIPPED_RUNNING]
    assert h.daemon.pending_retry("dia") is None


def test_failed_is_retried_with_cloud_scheduler_backoff_up_to_retry_count():
    h = Harness([sched(retry_count=3, min_backoff_s=10, max_backoff_s=300, max_doublings=3)],
                datetime(2024, 5, 1, 5, 0, tzinfo=BOG), outcomes=lambda *a: FireOutcome.FAILED)
    h.run_until(datetime(2024, 5, 1, 23, 0, tzinfo=BOG))
    six = datetime(2024, 5, 1, 6, 0, tzinfo=BOG)
    assert [(f[2], (f[3] - six).total_seconds()) for f in h.fires] == [(1, 0), (2, 10), (3, 30), (4, 70)]
    assert all(f[1] == six for f in h.fires)  # retries carry the original slot
    failed = [e for e in h.events if e.kind is EventKind.FAILED]
    assert [e.attempt for e in failed] == [1, 2, 3, 4]
    assert [e.retry_at and (e.retry_at - six).total_seconds() for e in failed] == [10, 30, 70, None]


def test_fire_exception_counts_as_failure_then_success_stops_retries():
    calls = []

    def outcome(sid, slot, attempt):
        calls.append(attempt)
        if attempt == 1:
            raise RuntimeError("ledger locked")
        return "started"

    h = Harness([sched(retry_count=5, min_backoff_s=5)], datetime(2024, 5, 1, 5, 0, tzinfo=BOG), outcomes=outcome)
    h.run_until(datetime(2024, 5, 1, 23, 0, tzinfo=BOG))
    assert calls == [1, 2]
    assert h.kinds() == [EventKind.FAILED, EventKind.STARTED]
    assert "RuntimeError: ledger locked" in h.events[0].detail


def test_pending_retry_is_dropped_when_next_slot_comes_first():
    h = Harness([sched("m", "* * * * *", retry_count=2, min_backoff_s=120)], datetime(2024, 5, 1, 5, 0, 30, tzinfo=BOG),
                outcomes=lambda sid, slot, attempt: FireOutcome.FAILED if slot.minute == 1 else FireOutcome.STARTED)
    h.run_until(datetime(2024, 5, 1, 5, 3, 30, tzinfo=BOG))
    assert [(f[1].minute, f[2]) for f in h.fires] == [(1, 1), (2, 1), (3, 1)]
    assert EventKind.RETRY_DROPPED in h.kinds()


def test_misfire_within_grace_coalesces_to_one_fire_and_older_slots_are_missed():
    start = datetime(2024, 5, 1, 6, 20, tzinfo=BOG)
    h = Harness([sched("q", "*/15 * * * *")], start, since=datetime(2024, 5, 1, 5, 0, tzinfo=BOG))
    h.daemon.run_once()
    # Due since 05:00: 05:15 is older than the 1 h grace (cutoff 05:20); 05:30..06:15 coalesce.
    assert [(f[1].strftime("%H:%M"), f[2]) for f in h.fires] == [("06:15", 1)]
    by_kind = {e.kind: e for e in h.events}
    assert by_kind[EventKind.MISSED].count == 1 and by_kind[EventKind.MISSED].scheduled_for.minute == 15
    assert by_kind[EventKind.COALESCED].count == 4
    h.daemon.run_once()  # nothing is due twice
    assert len(h.fires) == 1


def test_misfire_outside_grace_is_only_recorded():
    h = Harness([sched()], datetime(2024, 5, 1, 8, 0, tzinfo=BOG), since=datetime(2024, 5, 1, 0, 0, tzinfo=BOG),
                grace=timedelta(minutes=30))
    h.daemon.run_once()
    assert h.fires == [] and h.kinds() == [EventKind.MISSED]
    h2 = Harness([sched()], datetime(2024, 5, 1, 6, 25, tzinfo=BOG), since=datetime(2024, 5, 1, 0, 0, tzinfo=BOG),
                 grace=timedelta(minutes=30))
    h2.daemon.run_once()
    assert [f[1].hour for f in h2.fires] == [6] and h2.kinds() == [EventKind.STARTED]


def test_resume_from_callback_and_no_backfill_without_it():
    seen = []
    h = Harness([sched()], datetime(2024, 5, 1, 6, 30, tzinfo=BOG),
                resume_from=lambda sid: seen.append(sid) or datetime(2024, 5, 1, 5, 0, tzinfo=BOG))
    h.daemon.run_once()
    assert seen == ["dia"] and len(h.fires) == 1
    h2 = Harness([sched()], datetime(2024, 5, 1, 6, 30, tzinfo=BOG))
    h2.daemon.run_once()
    assert h2.fires == []


def test_bad_cron_is_reported_once_and_does_not_stop_others():
    h = Harness([sched("bad", "0 0 31 2 *"), sched()], datetime(2024, 5, 1, 5, 0, tzinfo=BOG))
    h.run_until(datetime(2024, 5, 1, 7, 0, tzinfo=BOG))
    assert [e.kind for e in h.events if e.scheduler_id == "bad"] == [EventKind.ERROR]
    assert [f[0] for f in h.fires] == ["dia"]


def test_never_two_fires_of_one_scheduler_and_slow_fire_does_not_block_others():
    release = threading.Event()
    active = {"m": 0, "other": 0}
    peak = {"m": 0, "other": 0}
    calls = []
    lock = threading.Lock()

    def fire(sid, slot, attempt):
        with lock:
            active[sid] += 1
            peak[sid] = max(peak[sid], active[sid])
            calls.append((sid, slot.minute))
        if sid == "m":
            release.wait(5)
        with lock:
            active[sid] -= 1
        return FireOutcome.STARTED

    clock = Clock(datetime(2024, 5, 1, 9, 59, 30, tzinfo=BOG))
    pool = ThreadPoolExecutor(4)
    d = SchedulerDaemon(lambda: [sched("m", "* * * * *"), sched("other", "* * * * *")], fire, now=clock.now,
                        executor=pool)
    d.run_once()  # first sight: slots count from 09:59:30
    clock.t = datetime(2024, 5, 1, 10, 0, 5, tzinfo=BOG)
    d.run_once()
    deadline = time.monotonic() + 5
    while ("other", 0) not in calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ("other", 0) in calls  # fired while "m" is still blocked
    clock.t = datetime(2024, 5, 1, 10, 1, 5, tzinfo=BOG)
    d.run_once()  # "m" still in flight: must not fire again
    time.sleep(0.05)
    assert [c for c in calls if c[0] == "m"] == [("m", 0)]
    release.set()
    assert d.wait_idle(5)
    clock.t = datetime(2024, 5, 1, 10, 1, 10, tzinfo=BOG)
    d.run_once()
    assert d.wait_idle(5)
    assert [c for c in calls if c[0] == "m"] == [("m", 0), ("m", 1)]
    assert peak == {"m": 1, "other": 1}
    pool.shutdown()


def test_stop_interrupts_the_real_sleep():
    d = SchedulerDaemon(lambda: [sched(cron="0 0 1 1 *")], lambda *a: FireOutcome.STARTED, poll_interval_s=60)
    t = threading.Thread(target=d.run)
    t.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    d.stop()
    t.join(5)
    assert not t.is_alive() and time.monotonic() - t0 < 2 and d.stopped


def test_event_to_dict_is_iso_with_offsets():
    h = Harness([sched(retry_count=1)], datetime(2024, 5, 1, 6, 0, tzinfo=BOG), outcomes=lambda *a: "failed")
    h.clock.t = datetime(2024, 5, 1, 6, 0, tzinfo=BOG)
    h.daemon._states.clear()
    h.daemon.run_once(datetime(2024, 5, 1, 5, 59, tzinfo=BOG))
    h.daemon.run_once(datetime(2024, 5, 1, 6, 0, tzinfo=BOG))
    d = h.events[0].to_dict()
    assert d["kind"] == "failed" and d["scheduled_for"] == "2024-05-01T06:00:00-05:00"
    assert d["retry_at"] == "2024-05-01T06:00:05-05:00" and d["attempt"] == 1


def test_naive_schedulers_input_is_rejected_clearly():
    h = Harness([{"id": "x"}], datetime(2024, 5, 1, 6, 0, tzinfo=BOG))
    with pytest.raises(ValueError, match="id and a cron"):
        h.daemon.run_once()


def test_spec_retry_config_objects_drive_retries():
    s = Scheduler(name="Mes", id="mes", cron="0 7 1 * *", workflow="funnel-mes", time_zone="America/Bogota",
                  retry=RetryConfig(retry_count=1, min_backoff_s=60))
    h = Harness([s], datetime(2024, 5, 1, 6, 0, tzinfo=BOG), outcomes=lambda *a: FireOutcome.FAILED)
    h.run_until(datetime(2024, 5, 1, 8, 0, tzinfo=BOG))
    assert [(f[2], f[3].astimezone(UTC).strftime("%H:%M")) for f in h.fires] == [(1, "12:00"), (2, "12:01")]
