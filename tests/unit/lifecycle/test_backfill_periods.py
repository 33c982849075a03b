"""The periods a backfill walks, in the workflow's granularity (lifecycle/backfill.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from funnelops.errors import UsageError
from funnelops.lifecycle.backfill import period_labels
from funnelops.lifecycle.jobs import period_args
from funnelops.spec.loader import load_project

FUNNEL = Path(__file__).resolve().parents[3] / "projects" / "funnel" / "funnel.yaml"


@pytest.fixture(scope="module")
def loaded():
    return load_project(FUNNEL)


def test_days_months_and_years_from_to_inclusive(loaded) -> None:
    assert period_labels(loaded, "DAY", "2024-02-27", "2024-03-01") == ["2024-02-27", "2024-02-28", "2024-02-29",
                                                                       "2024-03-01"]
    assert period_labels(loaded, "MONTH", "2023-11", "2024-02") == ["2023-11", "2023-12", "2024-01", "2024-02"]
    assert period_labels(loaded, "YEAR", "2022", "2022") == ["2022"]


def test_a_reversed_or_malformed_range_is_bad_usage(loaded) -> None:
    with pytest.raises(UsageError, match="is after"):
        period_labels(loaded, "DAY", "2024-01-03", "2024-01-01")
    with pytest.raises(UsageError, match="not a month period"):
        period_labels(loaded, "MONTH", "2024-01-01", "2024-02")
    with pytest.raises(UsageError, match="more than"):
        period_labels(loaded, "DAY", "1990-01-01", "2024-01-01")


def test_a_forced_period_is_checked_against_the_workflow(loaded) -> None:
    assert period_args(loaded, "funnel-mes", "2024-03") == ["--period=2024-03"]
    assert period_args(loaded, "funnel-dia", "current") == ["--period=current"]
    assert period_args(loaded, "funnel-dia", None) == []
    with pytest.raises(UsageError, match="not a day period"):
        period_args(loaded, "funnel-dia", "2024-03")
