"""What a run-end notification says, as a generic JSON document, a Slack message and a Teams card.

One `facts(...)` dict is built per run end and every channel renders from it, so the three
channels never disagree. Nothing here knows a URL: the payload is what is posted, and it is safe
to log or show.
"""

from __future__ import annotations

from datetime import datetime, UTC
from typing import Any

from funnelops.backends.types import RunRecord

ERROR_CHARS = 500  # an error is truncated: chat messages have limits, and the log has the rest
EMOJI = {"failed": ":red_circle:", "lost": ":warning:", "done": ":large_green_circle:", "cancelled": ":white_circle:"}
TEAMS_COLOR = {"failed": "attention", "lost": "warning", "done": "good", "cancelled": "default"}


def iso(value: str | None) -> str | None:
    """ISO 8601 with an offset (a naive stamp is UTC: every record is written in UTC)."""
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).isoformat()


def truncate(text: str | None, limit: int = ERROR_CHARS) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit - 1] + "…"


def logs_command(run: RunRecord, backend: str) -> str:
    return f"funnelops logs {run.id}" if backend == "local" else f"funnelops --backend {backend} logs {run.id}"


def facts(run: RunRecord, *, event: str, project: str, backend: str) -> dict[str, Any]:
    """The run's end in one flat, JSON-able document (the generic webhook's body)."""
    rows = run.rows or {}

    def count(key: str) -> int | None:
        return int(rows[key]) if isinstance(rows.get(key), (int, float)) else None

    return {"source": "funnelops", "version": 1, "event": event, "project": project, "backend": backend,
            "run_id": run.id, "workflow": run.workflow, "state": run.state, "trigger": run.trigger,
            "actor": run.actor, "period": run.period, "started_at": iso(run.started_at),
            "ended_at": iso(run.ended_at),
            "rows": {"read": count("read"), "kept": count("kept"), "quarantined": count("quarantined")},
            "error": truncate(run.error), "logs_command": logs_command(run, backend)}


def _title(f: dict[str, Any]) -> str:
    period = f" for {f['period']}" if f["period"] else ""
    return f"Run {f['run_id']} of {f['workflow']}{period} {f['state']} ({f['project']})"


def _rows_text(f: dict[str, Any]) -> str:
    r = f["rows"]
    return ", ".join(f"{k} {v:,}" for k, v in r.items() if v is not None) or "not reported"


def _fields(f: dict[str, Any]) -> list[tuple[str, str]]:
    return [("State", f["state"]), ("Workflow", f["workflow"]), ("Period", f["period"] or "-"),
            ("Trigger", f"{f['trigger']} by {f['actor']}"), ("Started", f["started_at"] or "-"),
            ("Ended", f["ended_at"] or "-"), ("Rows", _rows_text(f)), ("Project", f"{f['project']} ({f['backend']})")]


def slack(f: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message: `text` (the notification's fallback) and Block Kit blocks."""
    title = f"{EMOJI.get(f['event'], '')} {_title(f)}".strip()
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in _fields(f)]},
    ]
    if f["error"]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Error*\n```{f['error']}```"}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Logs: `{f['logs_command']}`"}]})
    text = title + (f": {f['error']}" if f["error"] else "")
    return {"text": text, "blocks": blocks}


def teams(f: dict[str, Any]) -> dict[str, Any]:
    """A Teams message carrying an Adaptive Card: what a Teams Workflows "post to a channel when a
    webhook request is received" flow expects (Microsoft's replacement for Office 365 connectors,
    whose MessageCard webhooks are retired); legacy incoming webhooks accept it too. See
    https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using
    """
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": True, "text": _title(f),
         "color": TEAMS_COLOR.get(f["event"], "default")},
        {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in _fields(f)]},
    ]
    if f["error"]:
        body.append({"type": "TextBlock", "wrap": True, "fontType": "Monospace", "text": f["error"]})
    body.append({"type": "TextBlock", "wrap": True, "isSubtle": True, "text": f"Logs: {f['logs_command']}"})
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
            "version": "1.4", "body": body}
    return {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                                "contentUrl": None, "content": card}]}


def render(kind: str, f: dict[str, Any]) -> dict[str, Any]:
    """The body posted to a channel of `kind` (webhook: the facts themselves)."""
    if kind == "slack":
        return slack(f)
    if kind == "teams":
        return teams(f)
    return f
