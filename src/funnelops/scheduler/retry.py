"""Cloud Scheduler's retry backoff, so the local scheduler retries exactly like the cloud one.

Cloud Scheduler documents RetryConfig as: the interval starts at ``min_backoff``, doubles
``max_doublings`` times, then increases linearly by ``2**max_doublings * min_backoff``, and never
exceeds ``max_backoff``; at most ``retry_count`` retries. Its own example (min 10 s, max 300 s,
3 doublings) retries after 10, 20, 40, 80, 160, 240, 300, 300, ... seconds. In closed form, the wait
before retry ``k`` (1-based) is::

    min_backoff * 2**(k-1)                    if k <= max_doublings + 1
    min_backoff * 2**max_doublings * (k - d)  otherwise (d = max_doublings)

capped at ``max_backoff``. Both branches agree at k = d + 1, so the sequence has no jump.
``max_retry_duration`` is not part of the project's RetryConfig and is not modelled.

Attempts are numbered from 1 (the scheduled fire); retry ``k`` is attempt ``k + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from collections.abc import Mapping

__all__ = ["RetryPolicy", "retry_delay_s"]


def retry_delay_s(retry: int, *, min_backoff_s: float, max_backoff_s: float, max_doublings: int) -> float:
    """Seconds to wait before retry number ``retry`` (1 = the first retry)."""
    if retry < 1:
        raise ValueError(f"retry numbers start at 1, got {retry}")
    if retry <= max_doublings + 1:
        delay = min_backoff_s * 2 ** (retry - 1)
    else:
        delay = min_backoff_s * 2 ** max_doublings * (retry - max_doublings)
    return float(min(delay, max_backoff_s))


@dataclass(frozen=True)
class RetryPolicy:
    """A scheduler's RetryConfig as plain numbers (defaults are RetryConfig's and Cloud Scheduler's)."""

    retry_count: int = 0
    min_backoff_s: float = 5
    max_backoff_s: float = 3600
    max_doublings: int = 5

    @classmethod
    def from_config(cls, config: Any) -> RetryPolicy:
        """From a spec RetryConfig, a mapping with the same keys, a RetryPolicy, or None."""
        if config is None:
            return cls()
        if isinstance(config, RetryPolicy):
            return config
        get = config.get if isinstance(config, Mapping) else lambda k, d: getattr(config, k, d)
        default = cls()
        return cls(
            retry_count=int(get("retry_count", default.retry_count)),
            min_backoff_s=float(get("min_backoff_s", default.min_backoff_s)),
            max_backoff_s=float(get("max_backoff_s", default.max_backoff_s)),
            max_doublings=int(get("max_doublings", default.max_doublings)),
        )

    @property
    def max_attempts(self) -> int:
        """The scheduled attempt plus every retry."""
        return self.retry_count + 1

    def delay_before(self, attempt: int) -> timedelta:
        """The wait between the failure of ``attempt - 1`` and ``attempt`` (attempt >= 2)."""
        if attempt < 2 or attempt > self.max_attempts:
            raise ValueError(f"attempt {attempt} is not a retry of this policy (2..{self.max_attempts})")
        return timedelta(seconds=retry_delay_s(
            attempt - 1, min_backoff_s=self.min_backoff_s, max_backoff_s=self.max_backoff_s,
            max_doublings=self.max_doublings))

    def delays_s(self) -> list[float]:
        """Every backoff in order, e.g. for `scheduler list` or a plan."""
        return [self.delay_before(a).total_seconds() for a in range(2, self.max_attempts + 1)]
