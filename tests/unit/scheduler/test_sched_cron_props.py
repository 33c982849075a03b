"""Property tests: our parser and search against croniter, our DST placement against brute force."""

from __future__ import annotations

from datetime import datetime, timedelta, UTC
from zoneinfo import ZoneInfo

from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funnelops.scheduler.cron import compile_cron, fires_between

FULL = [set(range(60)), set(range(24)), set(range(1, 32)), set(range(1, 13)), set(range(7))]
BOUNDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


@st.composite
def field(draw, index: int) -> str:
    lo, hi = BOUNDS[index]
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["star", "num", "range", "step", "startstep", "name"]))
        a = draw(st.integers(lo, hi))
        b = draw(st.integers(lo, hi))
        s = draw(st.integers(1, hi + 2))
        if kind == "star":
            parts.append("*")
        elif kind == "num":
            parts.append(str(a))
        elif kind == "range":
            parts.append(f"{min(a, b)}-{max(a, b)}" + (f"/{s}" if draw(st.booleans()) else ""))
        elif kind == "step":
            parts.append(f"*/{s}")
        elif kind == "startstep":
            parts.append(f"{a}/{s}")
        elif index == 3:
            parts.append(MONTHS[(a - 1) % 12])
        elif index == 4:
            parts.append(DAYS[a % 7])
        else:
            parts.append(str(a))
    if index == 2 and draw(st.integers(0, 5)) == 0:
        parts.append("L")
    return ",".join(parts)


@st.composite
def expression(draw) -> str:
    text = " ".join(draw(field(i)) for i in range(5))
    if not croniter.is_valid(text):  # e.g. "31 2" style combos croniter refuses
        from hypothesis import assume
        assume(False)
    return text


def croniter_sets(text: str):
    expanded, _ = croniter.expand(text)
    out = []
    for i, values in enumerate(expanded):
        if values == ["*"]:
            out.append(FULL[i])
        else:
            out.append(FULL[i] if "*" in values else {v for v in values if v != "l"})
    return out, "l" in expanded[2]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(expression())
def test_parser_agrees_with_croniter_expand(text):
    expr = compile_cron(text)
    if expr.fallback:  # searched by croniter itself; its own expansion is what counts
        return
    sets, last = croniter_sets(text)
    assert (set(expr.minutes), set(expr.hours), set(expr.days), set(expr.months), set(expr.weekdays)) == \
        tuple(sets), text
    assert expr.last_day == last


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(expression(), st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1)))
def test_wall_search_agrees_with_croniter_on_naive_time(text, start):
    expr = compile_cron(text)
    try:
        expected = croniter(text, start).get_next(datetime)
    except Exception:  # croniter gives up on expressions that (almost) never fire
        return
    assert expr.next_wall(start) == expected, (text, start)


ZONES = ["America/New_York", "Europe/Riga", "Australia/Sydney", "Australia/Lord_Howe", "Europe/Dublin",
         "America/Bogota", "Asia/Kolkata"]
TRANSITIONS = [datetime(2021, 3, 28, 1, tzinfo=UTC), datetime(2021, 10, 31, 1, tzinfo=UTC),
               datetime(2024, 3, 10, 7, tzinfo=UTC), datetime(2024, 11, 3, 6, tzinfo=UTC),
               datetime(2024, 4, 6, 15, tzinfo=UTC), datetime(2024, 10, 5, 15, tzinfo=UTC)]


def brute_force(text: str, tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """Walk every UTC minute: a minute fires if its wall time matches at its first occurrence, or if
    it ends a gap in which some skipped wall minute matched. Independent of our search code."""
    expr = compile_cron(text)

    def match(w: datetime) -> bool:
        return w.minute in expr.minutes and w.hour in expr.hours and expr.day_matches(w.date())

    out = []
    u = start.replace(second=0, microsecond=0)
    while u <= end:
        if u > start:
            w = u.astimezone(tz)
            prev = (u - timedelta(minutes=1)).astimezone(tz)
            jump = (w.utcoffset() - prev.utcoffset()) // timedelta(minutes=1)
            skipped = [w.replace(tzinfo=None) - timedelta(minutes=k) for k in range(1, jump + 1)]
            if (w.fold == 0 and match(w)) or any(match(s) for s in skipped):
                out.append(u)
        u += timedelta(minutes=1)
    return out


@st.composite
def dense_expression(draw) -> str:
    minute = draw(st.sampled_from(["*", "*/15", "0", "30", "0,30", "45", "*/7", "59"]))
    hour = draw(st.sampled_from(["*", "*/2", "1-3", "2", "3", "0-4", "1,2,3,4,5", "*/3"]))
    return f"{minute} {hour} * * *"


@settings(max_examples=60, deadline=None)
@given(dense_expression(), st.sampled_from(ZONES), st.sampled_from(TRANSITIONS),
       st.integers(-6 * 60, 6 * 60))
def test_dst_placement_agrees_with_brute_force(text, zone_name, transition, offset_min):
    tz = ZoneInfo(zone_name)
    start = transition + timedelta(minutes=offset_min, seconds=17)
    end = start + timedelta(hours=8)
    got = [d.astimezone(UTC) for d in fires_between(text, tz, start, end)]
    assert got == brute_force(text, tz, start, end), (text, zone_name, start)
