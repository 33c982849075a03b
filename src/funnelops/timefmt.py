"""One time format for every command: ISO 8601 with offset in JSON, local time with its zone named in text.

Records are stamped in UTC (`backends.types.now_iso`); people read them in the zone they are in.
A time shown without its zone is ambiguous (`status` once printed next fires converted to the
machine's zone but labelled with the scheduler's), so text output always names the zone it is
shown in: ``2026-11-29 09:00:00 CET``. A time with no offset cannot be placed on the clock at
all, so it is shown as ``-`` rather than guessed. This module imports nothing of funnelops, so
any layer may use it.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

__all__ = ["iso", "local_text", "parse", "zone_name"]


def parse(value: str | datetime | None) -> datetime | None:
    """`value` as an aware datetime, or None (missing, unparseable or naive: no instant)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if dt.tzinfo is None or dt.utcoffset() is None:
        return None
    return dt


def _zone(tz: str | tzinfo | None) -> tzinfo | None:
    if tz is None:
        return None
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def local_text(value: str | datetime | None, tz: str | tzinfo | None = None, *, short: bool = False) -> str:
    """`value` in zone `tz` (None: the machine's zone), its zone named: ``2026-11-29 09:00:00 CET``.

    A missing or naive value gives ``-``. `short` drops the year and the zone name
    (``11-29 09:00:00``) for a table column whose header names the zone (see :func:`zone_name`).
    """
    dt = parse(value)
    if dt is None:
        return "-"
    zone = _zone(tz)
    local = dt.astimezone(zone) if zone is not None else dt.astimezone()
    if short:
        return local.strftime("%m-%d %H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M:%S") + f" {_name(local)}"


def zone_name(tz: str | tzinfo | None = None, at: datetime | None = None) -> str:
    """The abbreviation of zone `tz` (None: the machine's) at `at` (default now): a column header's label."""
    from datetime import UTC

    now = at or datetime.now(UTC)
    zone = _zone(tz)
    return _name(now.astimezone(zone) if zone is not None else now.astimezone())


def _name(local: datetime) -> str:
    """A zone without an abbreviation (many IANA zones print ``-05``) reads as ``UTC-05``."""
    name = local.tzname() or local.strftime("%z")
    if name and name[0] in "+-":
        name = f"UTC{name}"
    return name


def iso(value: str | datetime | None) -> str | None:
    """`value` as ISO 8601 with its offset (for JSON), or None when it is missing or naive."""
    dt = parse(value)
    return dt.isoformat() if dt is not None else None
