"""Workflow runs as data, the same on every backend.

The types live at the contract (`funnelops.backends.types`) so that backends return them without
importing the core; the core imports them from here. The Runtime protocol is
`funnelops.backends.base.Runtime`; the order of a start and the wait loop are `runs.coordinator`'s.
"""

from __future__ import annotations

from funnelops.backends.base import Runtime
from funnelops.backends.types import (STATES, TERMINAL, TRIGGERS, Holder, RunLease, RunRecord, SchedulerState,
                                      now_iso, refuse)

__all__ = ["STATES", "TERMINAL", "TRIGGERS", "Holder", "RunLease", "RunRecord", "Runtime", "SchedulerState",
           "now_iso", "refuse"]
