"""Cloud Scheduler backoff sequences, worked out by hand from the documented rule."""

from __future__ import annotations

from datetime import timedelta

import pytest

from funnelops.scheduler.retry import RetryPolicy, retry_delay_s
from funnelops.spec.models import RetryConfig


def seq(n, **kw):
    return [retry_delay_s(k, **kw) for k in range(1, n + 1)]


def test_documented_example():
    # min 10 s, max 300 s, 3 doublings: 10, 20, 40, 80, then +80 each: 160, 240, then capped.
    assert seq(8, min_backoff_s=10, max_backoff_s=300, max_doublings=3) == [10, 20, 40, 80, 160, 240, 300, 300]


def test_project_defaults():
    # RetryConfig defaults: min 5, max 3600, 5 doublings: five retries all in the doubling phase.
    assert RetryPolicy.from_config(RetryConfig(retry_count=5)).delays_s() == [5, 10, 20, 40, 80]


@pytest.mark.parametrize("kw, expected", [
    (dict(min_backoff_s=10, max_backoff_s=35, max_doublings=0), [10, 20, 30, 35, 35]),  # linear by 10
    (dict(min_backoff_s=7, max_backoff_s=1000, max_doublings=1), [7, 14, 28, 42, 56]),  # then +14
    (dict(min_backoff_s=0, max_backoff_s=3600, max_doublings=5), [0, 0, 0, 0, 0]),
    (dict(min_backoff_s=100, max_backoff_s=30, max_doublings=5), [30, 30, 30, 30, 30]),  # cap wins
    (dict(min_backoff_s=1, max_backoff_s=3600, max_doublings=2), [1, 2, 4, 8, 12]),
])
def test_hand_worked_sequences(kw, expected):
    assert seq(5, **kw) == expected


def test_policy_attempt_numbering_and_sources():
    p = RetryPolicy.from_config({"retry_count": 2, "min_backoff_s": 10, "max_backoff_s": 300, "max_doublings": 3})
    assert p.max_attempts == 3
    assert p.delay_before(2) == timedelta(seconds=10)
    assert p.delay_before(3) == timedelta(seconds=20)
    with pytest.raises(ValueError):
        p.delay_before(4)
    with pytest.raises(ValueError):
        p.delay_before(1)
    assert RetryPolicy.from_config(None) == RetryPolicy()
    assert RetryPolicy.from_config(RetryConfig()).delays_s() == []
    with pytest.raises(ValueError):
        retry_delay_s(0, min_backoff_s=1, max_backoff_s=2, max_doublings=1)
