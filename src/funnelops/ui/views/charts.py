"""The overview's charts, computed from a bounded window of recent runs (`runs --json` items).

Why a window: the overview must answer in milliseconds with any number of runs in the ledger, so
it reads the newest `WINDOW` runs once and derives every chart from them; nothing here touches the
backend. The same numbers feed the chart (as JSON) and the fallback tables (as text).
"""

from __future__ import annotations

from typing import Any

from funnelops.timefmt import parse
from funnelops.ui.views.fmt import TERMINAL, seconds_between

WINDOW = 200


def chart_data(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Duration and rows per workflow over time, and the quarantine share per data-quality rule.

    `duration`: ended runs with a start, oldest first: {run, workflow, started_at, t, seconds}.
    `rows`: runs that reported rows, oldest first: {run, workflow, started_at, t, read, kept}.
    (`t` is the start in epoch seconds, what the chart's time axis takes.)
    `quarantine`: per rule, rows it quarantined over the window and its share (percent) of all
    quarantined rows, largest first, with the flows it quarantined in.
    """
    dated = [(parse(r.get("started_at")), r) for r in runs]
    ordered = sorted(((dt, r) for dt, r in dated if dt is not None), key=lambda p: (p[0], str(p[1].get("id"))))
    duration: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for dt, r in ordered:
        base = {"run": str(r.get("id", "")), "workflow": str(r.get("workflow") or ""),
                "started_at": dt.isoformat(), "t": dt.timestamp()}
        if r.get("state") in TERMINAL and r.get("ended_at"):
            secs = seconds_between(r.get("started_at"), r.get("ended_at"))
            if secs is not None:
                duration.append({**base, "seconds": round(secs, 3)})
        counts = r.get("rows")
        if isinstance(counts, dict) and isinstance(counts.get("read"), int):
            rows.append({**base, "read": counts.get("read", 0), "kept": counts.get("kept", 0)})
    workflows = sorted({str(p["workflow"]) for p in duration} | {str(p["workflow"]) for p in rows})
    return {"window": len(runs), "workflows": workflows, "duration": duration, "rows": rows,
            "quarantine": quarantine_by_rule(runs)}


def quarantine_by_rule(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows each rule quarantined (from every step's per-flow metrics), and its share of the total."""
    by_rule: dict[str, int] = {}
    flows: dict[str, set[str]] = {}
    for r in runs:
        for step in r.get("steps") or []:
            for flow in (step.get("metrics") or {}).get("flows") or []:
                rules = flow.get("rules") if isinstance(flow, dict) else None
                if not isinstance(rules, dict):
                    continue
                for rule, n in rules.items():
                    if isinstance(n, int) and n > 0:
                        by_rule[str(rule)] = by_rule.get(str(rule), 0) + n
                        flows.setdefault(str(rule), set()).add(str(flow.get("flow") or "?"))
    total = sum(by_rule.values())
    out = [{"rule": rule, "quarantined": n, "share": round(100.0 * n / total, 1) if total else 0.0,
            "flows": sorted(flows[rule])} for rule, n in by_rule.items()]
    return sorted(out, key=lambda q: (-q["quarantined"], q["rule"]))
