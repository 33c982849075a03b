"""The `runs` table: every column a run has, fitted to the terminal (see cli/fit.py).

What goes first when the terminal is narrow: the trigger, the quarantined and kept counts, the
start time, the period, the duration; the run id and the state stay at any width, and a long
workflow name is cut before any number is.
"""

from __future__ import annotations

from datetime import datetime, UTC
from typing import Any

from rich.table import Table

from funnelops.cli.context import esc
from funnelops.cli.fit import Col, fit_table
from funnelops.timefmt import local_text, zone_name

COLORS = {"DONE": "green", "FAILED": "red", "LOST": "red", "CANCELLED": "yellow", "RUNNING": "cyan"}


def duration(run: Any) -> str:
    if not run.started_at:
        return "-"
    start = datetime.fromisoformat(run.started_at)
    end = datetime.fromisoformat(run.ended_at) if run.ended_at else datetime.now(UTC)
    return f"{(end - start).total_seconds():.1f}s"


def runs_table(records: list[Any], width: int) -> tuple[Table, list[str]]:
    """The table for `records` at `width` columns, and the names of the columns it left out."""
    cols = [Col("run", keep=0, justify="right"), Col("workflow", keep=0, shrink=True, min_width=8),
            Col("state", keep=0), Col("trigger", keep=90), Col("period", keep=60),
            Col(f"started ({zone_name()})", keep=70), Col("took", keep=50, justify="right"),
            Col("read", keep=40, justify="right"), Col("kept", keep=80, justify="right"),
            Col("quar.", keep=85, justify="right")]
    rows: list[list[Any]] = []
    for r in records:
        counts = r.rows or {}

        def n(key: str, counts: dict = counts) -> str:
            return f"{counts.get(key, 0):,}" if counts else "-"

        rows.append([esc(r.id), esc(r.workflow), f"[{COLORS.get(r.state, 'white')}]{esc(r.state)}[/]",
                     esc(r.trigger), esc(r.period or "-"), local_text(r.started_at, short=True), duration(r),
                     n("read"), n("kept"), n("quarantined")])
    return fit_table(cols, rows, width)
