"""Sentences about runs and schedulers that several commands print: a cancel's outcome, what a
scheduler fire started, when each scheduler fires next.

Times are written with `funnelops.timefmt.local_text` (the machine's zone, named) once that
module exists; until then a local fallback of the same shape is used (delete at merge).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

try:  # helper B's time module (COMMON13 decision 4)
    from funnelops.timefmt import local_text  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # pragma: no cover - fallback until the merge
    def local_text(value: str | datetime | None, tz: str | None = None) -> str:
        """'2026-11-29 09:00:00 CET' in `tz` (None: this machine's zone); '-' when missing or naive."""
        from zoneinfo import ZoneInfo

        when = value
        if isinstance(value, str):
            try:
                when = datetime.fromisoformat(value)
            except ValueError:
                return value
        if not isinstance(when, datetime) or when.tzinfo is None:
            return "-"
        local = when.astimezone(ZoneInfo(tz)) if tz else when.astimezone()
        return local.strftime("%Y-%m-%d %H:%M:%S %Z")


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
