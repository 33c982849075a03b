"""Formatting for the templates: times, durations, counts, run rows.

Times are rendered as ``<time datetime=ISO title=ISO>`` with UTC text; `app.js` rewrites the text
into the viewer's own zone (the server cannot know it), so a page without JavaScript still shows
an unambiguous time. Everything returned as `Markup` has its values escaped first: a hostile value
never becomes markup.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup, escape

from funnelops.timefmt import parse

TERMINAL = ("DONE", "FAILED", "CANCELLED", "LOST")
STATES = ("PENDING", "RUNNING", "DONE", "FAILED", "CANCELLED", "LOST")


def when(value: Any, zone: str | None = None) -> Markup:
    """A `<time>` element for an ISO instant (``-`` when missing or without an offset).

    Shown in the viewer's zone, or in `zone` when given (a scheduler's next fire reads in the zone
    its cron is written in, as `funnelops scheduler list` shows it)."""
    dt = parse(value)
    if dt is None:
        return Markup('<span class="no-time">-</span>')
    iso = escape(dt.isoformat())  # digits and signs only; escaped all the same
    if zone:
        try:
            from zoneinfo import ZoneInfo

            text = dt.astimezone(ZoneInfo(zone)).strftime(f"%Y-%m-%d %H:%M:%S {zone}")
        except (KeyError, ValueError):
            zone = None
    if not zone:
        text = dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    attr = f' data-zone="{escape(zone)}"' if zone else ""
    return Markup(f'<time datetime="{iso}" title="{iso}"{attr}>{escape(text)}</time>')  # one string: 400 a page


def seconds_between(start: Any, end: Any, now: datetime | None = None) -> float | None:
    """Seconds from `start` to `end` (to now while running), None without a start."""
    begin = parse(start)
    if begin is None:
        return None
    finish = parse(end) or now or datetime.now(UTC)
    return max((finish - begin).total_seconds(), 0.0)


def took(seconds: float | None) -> str:
    """A duration people read at a glance: ``3.8s``, ``2m 05s``, ``1h 02m``."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def num(value: Any) -> str:
    """A count with thousands separators; ``-`` when there is none."""
    return f"{value:,}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def run_row(run: dict[str, Any]) -> dict[str, Any]:
    """One run as the runs table shows it (the numbers are `runs --json`'s, untouched)."""
    rows = run.get("rows") or {}
    seconds = seconds_between(run.get("started_at"), run.get("ended_at"))
    return {"id": str(run.get("id", "")), "workflow": run.get("workflow") or "", "trigger": run.get("trigger") or "",
            "period": run.get("period") or "-", "state": str(run.get("state") or "?"),
            "actor": run.get("actor") or "", "started_at": run.get("started_at"),
            "seconds": seconds, "took": took(seconds),
            "read": rows.get("read"), "kept": rows.get("kept"), "quarantined": rows.get("quarantined")}


def flows_of(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Every flow's metrics of every step, with the step it ran in (missing fields tolerated)."""
    out = []
    for step in run.get("steps") or []:
        metrics = step.get("metrics") or {}
        for flow in metrics.get("flows") or []:
            if isinstance(flow, dict):
                rules = flow.get("rules") or {}
                out.append({**flow, "step": step.get("step_id", ""),
                            "rules": sorted(rules.items()) if isinstance(rules, dict) else []})
    return out


def value(v: Any) -> str:
    """A plan field's before/after as text: a string as it is, anything else as JSON (the
    template escapes the result like any other text)."""
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)


def filters() -> dict[str, Any]:
    """The Jinja filters the templates use."""
    return {"when": when, "took": took, "num": num, "value": value}
