"""Next fire times of 5-field cron expressions in an IANA time zone, right across DST changes.

Why not simply ``croniter(expr, aware_start).get_next()``:

* croniter 7 fires an ambiguous wall time twice at a fall-back (``15 3 * * *`` in Europe/Riga on
  2021-10-31 gives 03:15+03:00 *and* 03:15+02:00). A daily job must run once, so we follow the wall
  clock (Cloud Scheduler "runs on wall clock time") and take each ambiguous wall time only at its
  first occurrence (``fold=0``). Consequence, on purpose: ``0 * * * *`` does not fire at the second
  01:00 of a New York fall-back, and ``* * * * *`` is silent during the repeated hour.
* croniter costs ~80-190 µs per computation; the local scheduler must compute 10,000 in <= 0.2 s.

So the calendar search happens on *naive wall times* (pure calendar arithmetic, no DST), and each
wall time is then placed in the zone by :func:`_resolve`:

* a wall time in a spring-forward gap fires once, at the first valid instant after the gap (the
  transition itself, e.g. 02:30 New York -> 03:00-04:00), exactly as croniter and cronsim do; several
  gap wall times collapse into that one instant;
* an ambiguous wall time fires once, at its first occurrence.

Parsing uses a small parser for the plain grammar (numbers, names, ``*``, ranges, steps, lists,
``L`` day of month) and falls back to ``croniter.expand`` for the rest; expressions with
``#``/``L`` day of week or ``W`` day of month are searched with croniter itself (still on naive wall
times). The tests cross-check both paths against croniter with hypothesis.

All instants are compared as UTC timestamps: Python compares two datetimes that share a tzinfo by
wall time, ignoring ``fold``, which is wrong exactly in the repeated hour.
"""

from __future__ import annotations

import bisect
import calendar
import re
from collections.abc import Set as AbstractSet
from datetime import date, datetime, timedelta, tzinfo, UTC
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from funnelops.errors import EXIT_USAGE, FunnelopsError
from funnelops.spec.cron_hint import cron_hint

__all__ = ["CronError", "CronExpr", "compile_cron", "zone", "next_fire", "next_fires",
           "fires_between", "next_fire_many"]

_UTC = UTC
_MINUTE = timedelta(minutes=1)
_DAY = timedelta(days=1)
# Longest run without a match a valid expression can have: Feb 29 skips 2100 (8 years).
_HORIZON_YEARS = 9

_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
# (low, high, names) per field: minute, hour, day of month, month, day of week (7 = Sunday).
_FIELDS: tuple[tuple[int, int, dict[str, int]], ...] = ((0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (0, 7, _DAYS))
_STAR = tuple(frozenset(range(lo, 7 if i == 4 else hi + 1)) for i, (lo, hi, _) in enumerate(_FIELDS))
_TOKEN = re.compile(r"^(?:(\*)|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/([0-9]+))?$")


class CronError(FunnelopsError, ValueError):
    """A cron expression or time zone that cannot be evaluated."""

    exit_code = EXIT_USAGE
    kind = "invalid_cron"


class CronExpr:
    """A parsed expression: sorted value lists plus precomputed shortcuts for the day search."""

    __slots__ = ("text", "minutes", "hours", "days", "last_day", "months", "weekdays",
                 "dom_star", "dow_star", "fallback", "_every_day", "_dow_only", "_dow_skip")

    def __init__(self, text: str, minutes: AbstractSet[int], hours: AbstractSet[int], days: AbstractSet[int],
                 last_day: bool, months: AbstractSet[int], weekdays: AbstractSet[int], fallback: bool,
                 dom_star: bool = False, dow_star: bool = False) -> None:
        self.text = text
        self.minutes = tuple(sorted(minutes))
        self.hours = tuple(sorted(hours))
        self.days = days if isinstance(days, frozenset) else frozenset(days)
        self.last_day = last_day          # `L` in day of month
        self.months = months if isinstance(months, frozenset) else frozenset(months)
        self.weekdays = weekdays if isinstance(weekdays, frozenset) else frozenset(weekdays)  # 0 = Sunday
        # croniter's day rule (Vixie cron's too, but for "*/1"): a day field is unrestricted only
        # when spelled "*" or "?"; "1-31" or "0-6" restrict it and turn on the OR.
        self.dom_star = dom_star
        self.dow_star = dow_star
        self.fallback = fallback          # search with croniter (#, L weekday, W day)
        all_months = len(months) == 12
        self._every_day = all_months and self.dom_star and self.dow_star
        self._dow_only = all_months and self.dom_star and not self.dow_star
        # date.toordinal() % 7 is the cron weekday (0001-01-01 was a Monday); days to skip to
        # reach a matching weekday from each weekday.
        self._dow_skip: tuple[int, ...] = ()
        if self._dow_only:
            self._dow_skip = tuple(min((d - w) % 7 for d in self.weekdays) for w in range(7))

    def __repr__(self) -> str:
        return f"CronExpr({self.text!r})"

    def day_matches(self, d: date) -> bool:
        """Vixie-cron day rule as croniter applies it: OR if both day fields are restricted."""
        if d.month not in self.months:
            return False
        dom = d.day in self.days or (self.last_day and d.day == calendar.monthrange(d.year, d.month)[1])
        dow = (d.toordinal() % 7) in self.weekdays
        if not self.dom_star and not self.dow_star:
            return dom or dow
        return dom and dow

    def next_wall(self, wall: datetime) -> datetime:
        """The first naive wall minute strictly after ``wall`` that the expression matches."""
        start = datetime(wall.year, wall.month, wall.day, wall.hour, wall.minute) + _MINUTE
        if self.fallback:
            return _croniter_next_wall(self.text, start - _MINUTE)
        d = start.date()
        if self._every_day or self.day_matches(d):
            hm = self._first_time(start.hour, start.minute)
            if hm is not None:
                return datetime(d.year, d.month, d.day, hm[0], hm[1])
        d = self._next_day(d)
        return datetime(d.year, d.month, d.day, self.hours[0], self.minutes[0])

    def _next_day(self, d: date) -> date:
        """The first matching day strictly after ``d``."""
        if self._every_day:
            return d + _DAY
        if self._dow_only:
            o = d.toordinal() + 1
            return date.fromordinal(o + self._dow_skip[o % 7])
        limit = date(min(d.year + _HORIZON_YEARS, 9999), 12, 31)
        d += _DAY
        while d <= limit:
            if d.month not in self.months:
                d = date(d.year + 1, 1, 1) if d.month == 12 else date(d.year, d.month + 1, 1)
                continue
            if self.day_matches(d):
                return d
            d += _DAY
        raise CronError(f"cron '{self.text}' never fires", "check the day and month fields")

    def _first_time(self, hour: int, minute: int) -> tuple[int, int] | None:
        """First (hour, minute) of the day at or after hour:minute, or None."""
        hours, minutes = self.hours, self.minutes
        i = bisect.bisect_left(hours, hour)
        if i < len(hours) and hours[i] == hour:
            j = bisect.bisect_left(minutes, minute)
            if j < len(minutes):
                return hour, minutes[j]
            i += 1
        return (hours[i], minutes[0]) if i < len(hours) else None


def _croniter_next_wall(text: str, wall: datetime) -> datetime:
    """croniter on a naive datetime is pure calendar arithmetic: the wall-clock search we need."""
    from croniter import croniter

    try:
        return croniter(text, wall).get_next(datetime)
    except Exception as exc:  # croniter raises several unrelated types
        raise CronError(f"cron '{text}' cannot be evaluated: {exc}") from exc


def _value(text: str, low: int, high: int, names: dict[str, int]) -> int | None:
    if text.isdigit():
        v = int(text)
    elif text in names:
        v = names[text]
    else:
        return None
    return v if low <= v <= high else None


@lru_cache(maxsize=4096)
def _parse_field(text: str, index: int) -> frozenset[int] | None:
    """Values of one plain field, or None when the text needs croniter (wrapping ranges, ...).

    Cached: thousands of schedulers share a few hundred field spellings ("0", "*/15", "1-5")."""
    low, high, names = _FIELDS[index]
    if text.isdigit():  # the common case, e.g. "0" or "6"
        v = int(text)
        return frozenset({0} if v == 7 and index == 4 else {v}) if low <= v <= high else None
    if text == "*":
        return _STAR[index]
    out: set[int] = set()
    lo: int | None
    hi: int | None
    for part in text.split(","):
        m = _TOKEN.match(part)
        if not m:
            return None
        star, a, b, step_text = m.groups()
        step = int(step_text) if step_text else 1
        if step < 1:
            return None
        if star:
            lo, hi = low, high
        else:
            lo = _value(a, low, high, names)
            if lo is None:
                return None
            if b is not None:
                hi = _value(b, low, high, names)
                if hi is None or hi <= lo:  # croniter reads "5-5" and "22-2" as wrapping ranges
                    return None
            else:
                hi = (6 if index == 4 else high) if step_text else lo
            if index == 4 and lo == 7 and (b is not None or step_text):
                return None  # "7-7", "7/3": croniter's own reading
        out.update(range(lo, hi + 1, step))
    if index == 4 and 7 in out:
        out.discard(7)
        out.add(0)
    return frozenset(out)


def _parse_plain(fields: list[str]) -> tuple[list[AbstractSet[int]], bool] | None:
    """All five fields with the plain parser; returns (sets, last_day) or None."""
    fields = ["*" if f == "?" and i in (2, 4) else f for i, f in enumerate(fields)]
    dom_parts = fields[2].split(",")
    last_day = "l" in dom_parts
    rest = ",".join(p for p in dom_parts if p != "l")
    sets: list[AbstractSet[int]] = []
    for i, text in enumerate(fields):
        if i == 2:
            if not rest:
                sets.append(set())
                continue
            text = rest
        values = _parse_field(text, i)
        if values is None:
            return None
        sets.append(values)
    return sets, last_day


def _parse_with_croniter(text: str, fields: list[str]) -> tuple[list[AbstractSet[int]], bool, bool]:
    from croniter import croniter

    try:
        expanded, _nth = croniter.expand(text)
    except Exception as exc:
        raise CronError(f"invalid cron '{text}': {exc}", cron_hint(text)) from exc
    full = [range(0, 60), range(0, 24), range(1, 32), range(1, 13), range(0, 7)]
    sets: list[AbstractSet[int]] = []
    last_day = False
    for i, values in enumerate(expanded[:5]):
        if values == ["*"]:
            sets.append(set(full[i]))
            continue
        if i == 2 and "l" in values:
            last_day = True
        sets.append(set(full[i]) if "*" in values else {int(v) for v in values if v != "l"})
    # Whatever the plain parser refuses (wrapping ranges, "#", "W", ...) is searched by croniter
    # itself: its day rule for such spellings is its own (e.g. "1-1" reads as every day).
    return sets, last_day, True


@lru_cache(maxsize=65536)
def compile_cron(text: str) -> CronExpr:
    """Parse once, cache forever (schedulers share a handful of expressions)."""
    fields = text.lower().split()
    if len(fields) != 5:
        raise CronError(f"invalid cron '{text}': expected 5 fields, got {len(fields)}",
                        cron_hint(text))
    plain = _parse_plain(fields)
    if plain is not None:
        sets, last_day = plain
        fallback = False
    else:
        sets, last_day, fallback = _parse_with_croniter(text, fields)
    minutes, hours, days, months, weekdays = sets
    dom_star, dow_star = (_is_star(fields[2]), _is_star(fields[4]))
    if (last_day and (days or not dow_star)) or (not dom_star and len(days) == 31) or (not dow_star and len(weekdays) == 7):
        # `L` with other days or weekdays, or a day field that selects everything without being
        # spelled "*" (croniter reads "2-31,L" as every day, "1-31" as a restriction):
        # croniter has rules of its own for these (not always the Vixie OR); follow them.
        fallback = True
    if not minutes or not hours or not months or not (days or last_day) or not weekdays:
        raise CronError(f"invalid cron '{text}': a field selects nothing")
    return CronExpr(text, minutes, hours, days, last_day, months, weekdays, fallback, dom_star, dow_star)


def _is_star(field: str) -> bool:
    return field == "?" or "*" in field.split(",")


@lru_cache(maxsize=1024)
def _zone_by_name(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"unknown time zone '{name}'", "use an IANA name such as America/Bogota") from exc


def zone(tz: str | tzinfo) -> tzinfo:
    """An IANA name or a tzinfo, as a tzinfo."""
    return _zone_by_name(tz) if isinstance(tz, str) else tz


def _offset_at(ts: int, tz: tzinfo) -> timedelta:
    return _utc_offset(datetime.fromtimestamp(ts, tz))


def _utc_offset(dt: datetime) -> timedelta:
    """The offset of an aware datetime; a tzinfo that gives none cannot place cron times."""
    offset = dt.utcoffset()
    if offset is None:
        raise CronError(f"time zone {dt.tzinfo!r} gives no UTC offset")
    return offset


def _resolve(wall: datetime, tz: tzinfo) -> datetime:
    """Place a naive wall time in ``tz``: gap -> end of the gap; ambiguous -> first occurrence.

    PEP 495: fold=0 and fold=1 give the same offset except in a fold (fold=0 has the larger
    offset: the first occurrence) or a gap (fold=0 has the smaller, pre-transition offset).
    """
    first = wall.replace(tzinfo=tz)
    before = _utc_offset(first)
    after = _utc_offset(wall.replace(tzinfo=tz, fold=1))
    if before >= after:
        return first
    # Nonexistent: the transition T lies in (wall - offset_after, wall - offset_before].
    naive_utc = (wall - datetime(1970, 1, 1)) // timedelta(seconds=1)
    lo = naive_utc - int(after.total_seconds())
    hi = naive_utc - int(before.total_seconds())
    while hi - lo > 1:  # smallest second whose offset is the post-transition one
        mid = (lo + hi) // 2
        if _offset_at(mid, tz) == after:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, tz)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value


@lru_cache(maxsize=65536)
def _next_fire_utc(text: str, tz: tzinfo, after_utc: datetime) -> datetime:
    """Memoised on the exact instant, so schedulers sharing (cron, tz) cost one computation."""
    expr = compile_cron(text)
    wall = after_utc.astimezone(tz)  # next_wall reads only the wall fields
    while True:
        wall = expr.next_wall(wall)
        fire = _resolve(wall, tz)
        # Different tzinfo objects, so compared as instants. Skips first-occurrence fires that
        # are earlier than an `after` in the second pass of a repeated hour.
        if fire > after_utc:
            return fire


def next_fire(cron: str, tz: str | tzinfo, after: datetime) -> datetime:
    """The first fire strictly after ``after`` (aware), as an aware datetime in ``tz``."""
    after_utc = _aware(after, "after").astimezone(_UTC)
    return _next_fire_utc(cron, zone(tz), after_utc)


def next_fires(cron: str, tz: str | tzinfo, after: datetime, n: int) -> list[datetime]:
    """The next ``n`` fires strictly after ``after``, strictly increasing."""
    out: list[datetime] = []
    cursor = after
    for _ in range(n):
        cursor = next_fire(cron, tz, cursor)
        out.append(cursor)
    return out


def fires_between(cron: str, tz: str | tzinfo, start: datetime, end: datetime,
                  limit: int | None = None) -> list[datetime]:
    """Fires in the half-open interval (start, end], oldest first, at most ``limit`` of them.

    Half-open so that consecutive windows (t0, t1], (t1, t2] never report a slot twice.
    """
    end_ts = _aware(end, "end").timestamp()
    out: list[datetime] = []
    cursor = _aware(start, "start")
    while limit is None or len(out) < limit:
        cursor = next_fire(cron, tz, cursor)
        if cursor.timestamp() > end_ts:
            break
        out.append(cursor)
    return out


def next_fire_many(items: list[tuple[str, str | tzinfo]], after: datetime) -> list[datetime]:
    """``next_fire`` for many (cron, tz) pairs, each distinct pair computed once."""
    done: dict[tuple[str, str | tzinfo], datetime] = {}
    out = []
    for key in items:
        fire = done.get(key)
        if fire is None:
            fire = done[key] = next_fire(key[0], key[1], after)
        out.append(fire)
    return out
