"""funnelops.timefmt: one time format, the zone always named in text, ISO with offset in JSON."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone, timedelta, UTC

import pytest

from funnelops.timefmt import iso, local_text, parse, zone_name


@pytest.fixture
def paris(monkeypatch):
    """The machine's zone is Europe/Paris for the test (the schedulers' is America/Bogota)."""
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_local_text_names_the_zone_it_shows(paris) -> None:
    assert local_text("2026-11-29T08:00:00+00:00") == "2026-11-29 09:00:00 CET"
    assert local_text("2026-07-01T08:00:00Z") == "2026-07-01 10:00:00 CEST"
    assert local_text("2026-11-29T11:00:00+00:00", "America/Bogota") == "2026-11-29 06:00:00 UTC-05"
    assert local_text(datetime(2026, 11, 29, 8, tzinfo=UTC), "UTC") == "2026-11-29 08:00:00 UTC"
    assert local_text("2026-11-29T08:00:00+00:00", short=True) == "11-29 09:00:00"


def test_missing_or_naive_times_are_a_dash_not_a_guess() -> None:
    for value in (None, "", "2026-11-29T08:00:00", "not a time", datetime(2026, 1, 1)):
        assert local_text(value) == "-"
        assert iso(value) is None
        assert parse(value) is None


def test_iso_keeps_the_offset() -> None:
    assert iso("2026-11-29T08:00:00Z") == "2026-11-29T08:00:00+00:00"
    bogota = datetime(2026, 11, 29, 6, tzinfo=timezone(timedelta(hours=-5)))
    assert iso(bogota) == "2026-11-29T06:00:00-05:00"


def test_zone_name(paris) -> None:
    assert zone_name(at=datetime(2026, 1, 1, tzinfo=UTC)) == "CET"
    assert zone_name("America/Bogota") == "UTC-05"
    assert os.environ["TZ"] == "Europe/Paris"
