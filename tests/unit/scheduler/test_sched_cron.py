"""Cron next-fire vectors, worked out by hand from the tz database transitions.

Europe/Riga 2021 (the zone of cronsim's DST tests): spring forward on March 28 at 03:00 +02:00 ->
04:00 +03:00 (wall 03:00-03:59 does not exist); fall back on October 31 at 04:00 +03:00 -> 03:00
+02:00 (wall 03:00-03:59 happens twice). America/New_York 2024: March 10 02:00 -05:00 -> 03:00
-04:00; November 3 02:00 -04:00 -> 01:00 -05:00. America/Bogota: -05:00 all year, no DST.

Our rules: a gap wall time fires once at the end of the gap; an ambiguous wall time fires once,
at its first occurrence. Where cronsim fires twice (wildcard hours in the repeated hour) the
test says so and asserts our documented behaviour instead.
"""

from __future__ import annotations

from datetime import datetime, timedelta, UTC
from zoneinfo import ZoneInfo

import pytest

from funnelops.scheduler.cron import CronError, compile_cron, fires_between, next_fire, next_fire_many, next_fires

RIGA = ZoneInfo("Europe/Riga")
NY = ZoneInfo("America/New_York")
BOG = ZoneInfo("America/Bogota")


def iso(cron: str, tz, after: datetime, n: int) -> list[str]:
    return [d.isoformat() for d in next_fires(cron, tz, after, n)]


@pytest.mark.parametrize("cron, after, expected", [
    # cronsim test_001 (March): the 03:00 hour does not exist; 04:00 fires once.
    ("0 * * * *", datetime(2021, 3, 28, 1, 30), ["2021-03-28T02:00:00+02:00", "2021-03-28T04:00:00+03:00",
                                                  "2021-03-28T05:00:00+03:00"]),
    # cronsim test_002 (March): 03:00 and 03:30 both fall in the gap -> one fire at 04:00.
    ("*/30 * * * *", datetime(2021, 3, 28, 2, 10), ["2021-03-28T02:30:00+02:00", "2021-03-28T04:00:00+03:00",
                                                     "2021-03-28T04:30:00+03:00"]),
    ("0 */2 * * *", datetime(2021, 3, 28, 1, 30), ["2021-03-28T02:00:00+02:00", "2021-03-28T04:00:00+03:00",
                                                    "2021-03-28T06:00:00+03:00"]),
    # 03:00 on March 28 moves to the end of the gap (04:00+03), one day only.
    ("0 3 * * *", datetime(2021, 3, 27, 1, 30), ["2021-03-27T03:00:00+02:00", "2021-03-28T04:00:00+03:00",
                                                  "2021-03-29T03:00:00+03:00"]),
    # 03:15 also moves to 04:00, not 04:15: the first valid instant after the gap.
    ("15 3 * * *", datetime(2021, 3, 27, 0, 0), ["2021-03-27T03:15:00+02:00", "2021-03-28T04:00:00+03:00",
                                                  "2021-03-29T03:15:00+03:00"]),
    ("0 1-5 * * *", datetime(2021, 3, 28, 1, 30), ["2021-03-28T02:00:00+02:00", "2021-03-28T04:00:00+03:00",
                                                    "2021-03-28T05:00:00+03:00"]),
    ("* * * * *", datetime(2021, 3, 28, 2, 58), ["2021-03-28T02:59:00+02:00", "2021-03-28T04:00:00+03:00",
                                                  "2021-03-28T04:01:00+03:00"]),
    # Fall back: each ambiguous wall time once, at the first (+03:00) occurrence.
    ("0 3 * * *", datetime(2021, 10, 31, 1, 30), ["2021-10-31T03:00:00+03:00", "2021-11-01T03:00:00+02:00"]),
    ("15 3 * * *", datetime(2021, 10, 30, 0, 0), ["2021-10-30T03:15:00+03:00", "2021-10-31T03:15:00+03:00",
                                                   "2021-11-01T03:15:00+02:00"]),
    ("0 4 * * *", datetime(2021, 10, 30, 1, 30), ["2021-10-30T04:00:00+03:00", "2021-10-31T04:00:00+02:00",
                                                   "2021-11-01T04:00:00+02:00"]),
    ("0 2 * * *", datetime(2021, 10, 31, 1, 30), ["2021-10-31T02:00:00+03:00", "2021-11-01T02:00:00+02:00"]),
    ("0 1-5 * * *", datetime(2021, 10, 31, 1, 30), ["2021-10-31T02:00:00+03:00", "2021-10-31T03:00:00+03:00",
                                                     "2021-10-31T04:00:00+02:00"]),
    # cronsim fires 03:00+02:00 too (wildcard hour); wall-clock-once does not.
    ("0 * * * *", datetime(2021, 10, 31, 1, 30), ["2021-10-31T02:00:00+03:00", "2021-10-31T03:00:00+03:00",
                                                  "2021-10-31T04:00:00+02:00"]),
    ("0 */3 * * *", datetime(2021, 10, 31, 1, 30), ["2021-10-31T03:00:00+03:00", "2021-10-31T06:00:00+02:00"]),
    ("*/15 * * * *", datetime(2021, 10, 31, 2, 40), [
        "2021-10-31T02:45:00+03:00", "2021-10-31T03:00:00+03:00", "2021-10-31T03:15:00+03:00",
        "2021-10-31T03:30:00+03:00", "2021-10-31T03:45:00+03:00", "2021-10-31T04:00:00+02:00"]),
    ("* * * * *", datetime(2021, 10, 31, 3, 58), ["2021-10-31T03:59:00+03:00", "2021-10-31T04:00:00+02:00"]),
])
def test_riga_dst_vectors(cron, after, expected):
    assert iso(cron, RIGA, after.replace(tzinfo=RIGA), len(expected)) == expected


def test_after_in_second_pass_of_repeated_hour_skips_to_after_the_fold():
    after = datetime(2021, 10, 31, 3, 30, fold=1, tzinfo=RIGA)  # 03:30+02:00, the second 03:30
    assert after.utcoffset() == timedelta(hours=2)
    assert next_fire("*/15 * * * *", RIGA, after).isoformat() == "2021-10-31T04:00:00+02:00"
    assert next_fire("45 3 * * *", RIGA, after).isoformat() == "2021-11-01T03:45:00+02:00"


@pytest.mark.parametrize("cron, after, expected", [
    ("30 2 * * *", datetime(2024, 3, 9), ["2024-03-09T02:30:00-05:00", "2024-03-10T03:00:00-04:00",
                                           "2024-03-11T02:30:00-04:00"]),
    ("*/30 1-2 * * *", datetime(2024, 3, 10), ["2024-03-10T01:00:00-05:00", "2024-03-10T01:30:00-05:00",
                                                "2024-03-10T03:00:00-04:00", "2024-03-11T01:00:00-04:00"]),
    ("30 1 * * *", datetime(2024, 11, 2), ["2024-11-02T01:30:00-04:00", "2024-11-03T01:30:00-04:00",
                                            "2024-11-04T01:30:00-05:00"]),
    ("0 * * * *", datetime(2024, 11, 3, 0, 30), ["2024-11-03T01:00:00-04:00", "2024-11-03T02:00:00-05:00",
                                                  "2024-11-03T03:00:00-05:00"]),
    ("0 6 * * *", datetime(2024, 3, 9, 12), ["2024-03-10T06:00:00-04:00", "2024-03-11T06:00:00-04:00"]),
])
def test_new_york_dst_vectors(cron, after, expected):
    assert iso(cron, "America/New_York", after.replace(tzinfo=NY), len(expected)) == expected


def test_daily_interval_is_23_and_25_hours_across_new_york_dst():
    spring = next_fires("0 6 * * *", NY, datetime(2024, 3, 9, 0, tzinfo=NY), 2)
    fall = next_fires("0 6 * * *", NY, datetime(2024, 11, 2, 0, tzinfo=NY), 2)
    assert spring[1] - spring[0] != timedelta(hours=23)  # same tzinfo: wall-clock subtraction...
    assert spring[1].timestamp() - spring[0].timestamp() == 23 * 3600  # ...so compare instants
    assert fall[1].timestamp() - fall[0].timestamp() == 25 * 3600


def test_bogota_has_no_dst_and_seed_schedules():
    after = datetime(2024, 3, 9, 12, tzinfo=UTC)
    dia = next_fires("0 6 * * *", "America/Bogota", after, 3)
    assert [d.isoformat() for d in dia] == ["2024-03-10T06:00:00-05:00", "2024-03-11T06:00:00-05:00",
                                             "2024-03-12T06:00:00-05:00"]
    assert {d.astimezone(UTC).hour for d in dia} == {11}
    assert iso("0 7 1 * *", BOG, after, 2) == ["2024-04-01T07:00:00-05:00", "2024-05-01T07:00:00-05:00"]
    assert iso("0 8 1 1 *", BOG, after, 2) == ["2025-01-01T08:00:00-05:00", "2026-01-01T08:00:00-05:00"]
    assert iso("0 9 2 * *", BOG, after, 1) == ["2024-04-02T09:00:00-05:00"]
    for d in dia:
        assert d.tzinfo is not None and d.utcoffset() == timedelta(hours=-5)


def test_last_day_of_month():
    after = datetime(2023, 12, 31, 9, tzinfo=BOG)  # after the 08:00 fire of Dec 31
    assert iso("0 8 L * *", BOG, after, 5) == [
        "2024-01-31T08:00:00-05:00", "2024-02-29T08:00:00-05:00", "2024-03-31T08:00:00-05:00",
        "2024-04-30T08:00:00-05:00", "2024-05-31T08:00:00-05:00"]
    assert iso("0 8 L 2 *", BOG, after, 2) == ["2024-02-29T08:00:00-05:00", "2025-02-28T08:00:00-05:00"]
    assert iso("0 0 15,L * *", BOG, after, 3) == ["2024-01-15T00:00:00-05:00", "2024-01-31T00:00:00-05:00",
                                                  "2024-02-15T00:00:00-05:00"]
    # cronsim's "1 1 L * *" from 2020-01-01.
    assert iso("1 1 L * *", "Etc/UTC", datetime(2020, 1, 1, tzinfo=UTC), 1) == ["2020-01-31T01:01:00+00:00"]


def test_croniter_only_syntax_goes_through_the_fallback():
    assert compile_cron("1 1 * * 1#2").fallback
    # cronsim's second-Monday vector: 2020-01-13.
    assert iso("1 1 * * 1#2", "Etc/UTC", datetime(2020, 1, 1, tzinfo=UTC), 2) == [
        "2020-01-13T01:01:00+00:00", "2020-02-10T01:01:00+00:00"]


def test_day_of_month_or_day_of_week_when_both_restricted():
    # Vixie cron / croniter: the 13th OR a Friday. January 2023: Fri 6, Fri 13, Fri 20.
    after = datetime(2023, 1, 1, tzinfo=UTC)
    assert [d.day for d in next_fires("0 0 13 * 5", "Etc/UTC", after, 4)] == [6, 13, 20, 27]


def test_fires_between_is_half_open_and_fires_ambiguous_slot_once():
    start = datetime(2021, 10, 30, 3, 30, tzinfo=RIGA)
    end = datetime(2021, 11, 2, 3, 30, tzinfo=RIGA)
    got = fires_between("30 3 * * *", RIGA, start, end)
    assert [d.isoformat() for d in got] == ["2021-10-31T03:30:00+03:00", "2021-11-01T03:30:00+02:00",
                                            "2021-11-02T03:30:00+02:00"]
    assert fires_between("* * * * *", "Etc/UTC", start, end, limit=3) == next_fires("* * * * *", "Etc/UTC", start, 3)


def test_results_are_aware_and_strictly_after():
    after = datetime(2024, 5, 1, 6, 0, tzinfo=BOG)
    assert next_fire("0 6 * * *", BOG, after).isoformat() == "2024-05-02T06:00:00-05:00"
    assert next_fire("0 6 * * *", BOG, after - timedelta(microseconds=1)) == after


def test_next_fire_many_groups_identical_pairs():
    after = datetime(2024, 5, 1, tzinfo=UTC)
    items = [("0 6 * * *", "America/Bogota"), ("0 6 * * *", "Europe/Riga"), ("0 6 * * *", "America/Bogota")]
    got = next_fire_many(items, after)
    assert got[0] is got[2]
    assert got == [next_fire(c, z, after) for c, z in items]


@pytest.mark.parametrize("cron", ["* * * *", "61 * * * *", "0 0 0 * *", "a b c d e", "0 0 * * 8"])
def test_invalid_cron_raises_cron_error(cron):
    with pytest.raises(CronError):
        next_fire(cron, "Etc/UTC", datetime(2024, 1, 1, tzinfo=UTC))


def test_errors_are_clear():
    with pytest.raises(CronError, match="never fires"):
        next_fire("0 0 31 2 *", "Etc/UTC", datetime(2024, 1, 1, tzinfo=UTC))
    with pytest.raises(CronError, match="unknown time zone"):
        next_fire("0 0 * * *", "Mars/Olympus", datetime(2024, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire("0 0 * * *", "Etc/UTC", datetime(2024, 1, 1))
