"""Sentences about runs and schedulers that several commands print: a cancel's outcome, what a
scheduler fire started, when each scheduler fires next.

Times are written with `funnelops.timefmt.local_text` (the machine's zone, named).
"""

from __future__ import annotations

from typing import Any

from funnelops.timefmt import local_text


def cancel_text(before: Any, after: Any) -> str:
    """What `funnelops cancel` did: nothing for a run that had ended, else what it stopped."""
    if before is None or before.terminal:
        run = before or after
        return f"run {run.id} already ended {run.state} at {local_text(run.ended_at)}; nothing to cancel"
    stopped = [str(s.get("step_id")) for s in before.steps or [] if s.get("state") == "RUNNING"]
    what = f" (stopped step{'s' if len(stopped) != 1 else ''} {', '.join(stopped)})" if stopped else ""
    if after.state == "CANCELLED":
        return f"cancelled run {after.id} of {after.workflow}{what}; its lease is released"
    return f"run {after.id} of {after.workflow} ended {after.state} while being cancelled{what}"
