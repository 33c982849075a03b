"""Plans and apply results as text for people (the JSON form is `Plan.to_dict`)."""

from __future__ import annotations

import json
from typing import Any

from rich.markup import escape

from funnelops.plan.model import Plan
from funnelops.resources import STAGE_TITLES

SYMBOL = {"create": ("+", "green"), "update": ("~", "yellow"), "replace": ("-/+", "magenta"),
          "delete": ("-", "red"), "unchanged": ("=", "dim"), "waiting": ("…", "cyan")}


def _short(value: Any, limit: int = 90) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True) if not isinstance(value, str) else value
    text = text.replace("\n", " ")
    return escape(text if len(text) <= limit else text[: limit - 1] + "…")


def _field_text(before: Any, after: Any) -> str:
    """Lists of scalars (argument lists) show what left and what came, not both whole lists."""
    if isinstance(before, list) and isinstance(after, list) and \
            all(not isinstance(x, (dict, list)) for x in before + after):
        gone = [x for x in before if x not in after]
        came = [x for x in after if x not in before]
        if gone or came:
            parts = []
            if gone:
                parts.append("removed " + ", ".join(f"[red]{_short(x, 60)}[/]" for x in gone))
            if came:
                parts.append("added " + ", ".join(f"[green]{_short(x, 60)}[/]" for x in came))
            return "; ".join(parts)
    return f"{_short(before)} [dim]->[/] {_short(after)}"


def summary_line(plan: Plan) -> str:
    s = plan.summary()
    return (f"Plan: {s['create']} to create, {s['update']} to update, {s['replace']} to replace, "
            f"{s['delete']} to delete, {s['unchanged']} unchanged, {s['waiting']} waiting for data.")


def plan_lines(plan: Plan, show_unchanged: bool = True) -> list[str]:
    """Rich-markup lines: one per resource, then its changed fields."""
    lines = [f"[bold]Stage {STAGE_TITLES.get(plan.stage, plan.stage)}[/] on the {plan.backend} backend"]
    for c in plan.changes:
        if c.action == "unchanged" and not show_unchanged:
            continue
        sym, color = SYMBOL[c.action]
        note = f"  [dim]({escape(c.reason)})[/]" if c.reason else ""
        warn = "  [bold red]! holds data[/]" if c.data_loss and c.action in ("replace", "delete") else ""
        lines.append(f"  [{color}]{sym:>3} {c.action:<9}[/] {escape(c.address)}{note}{warn}")
        for f in c.fields:
            lines.append(f"        [dim]{escape(f.field)}:[/] {_field_text(f.before, f.after)}")
    lines.append(f"[bold]{summary_line(plan)}[/]")
    return lines
