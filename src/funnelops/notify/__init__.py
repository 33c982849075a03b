"""Run-end notifications: which ends are told to whom, exactly once, never failing the run.

The core of the `notifications:` block. Whoever observes a run's end (the local supervisor as it
records it, the local reaper as it marks a dead run LOST, the gcp runtime or `funnelops watch` as
they poll) calls :func:`notify_run_end`; the backend only provides `claim` (`Ledger.claim_once`),
which lets exactly one observer send. Here, not in `runs/`: the local supervisor lives in
`backends/local`, which may not import the core above the contract, and must still notify.

Rules: the URL comes from the environment variable a channel names, read at send time; unset is
a warning naming the variable; a receiver that fails or hangs is a warning too. Nothing here
raises into the caller, and no message, event or return value contains a URL.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from funnelops.backends.types import RunRecord
from funnelops.notify.http import post_json
from funnelops.notify.payloads import facts, render
from funnelops.spec.models import NotificationChannel, Notifications

EVENT_OF_STATE = {"FAILED": "failed", "LOST": "lost", "DONE": "done", "CANCELLED": "cancelled"}

__all__ = ["EVENT_OF_STATE", "Outcome", "claim_key", "notifications_of", "notify_run_end", "wanted"]


@dataclass
class Outcome:
    """What became of one channel's notification (safe to log and record: no URL)."""

    type: str
    url_env: str
    sent: bool
    status: int | None
    attempts: int
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def claim_key(run: RunRecord) -> str:
    """The claim that lets one observer notify a run's end (a GCS object name on gcp)."""
    return f"notified/{run.id}"


def wanted(run: RunRecord, notifications: Notifications | None) -> list[NotificationChannel]:
    """The channels that want this run's end (none while it is in progress)."""
    event = EVENT_OF_STATE.get(run.state)
    if notifications is None or event is None:
        return []
    return [c for c in notifications.channels if event in c.on]


def notifications_of(project_path: str | Path | None) -> tuple[Notifications | None, str]:
    """The `notifications:` block and project id of a project file, read without the rest of it.

    The supervisor reads the file when a run ends: a project being edited elsewhere (a broken SQL
    file) must not stop the alert, so only this block is validated here. Raises ValueError (no URL
    involved) when the block itself is invalid.
    """
    from funnelops.spec.loader import parse_yaml
    from funnelops.spec.environments import select_leniently

    if not project_path:
        return None, ""
    path = Path(project_path)
    data, lines = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    if not isinstance(data, dict):
        return None, ""
    data = select_leniently(data, lines, os.environ.get("FUNNELOPS_ENV") or None, str(path))
    project = str((data.get("project") or {}).get("id") or "") if isinstance(data.get("project"), dict) else ""
    block = data.get("notifications")
    if block is None:
        return None, project
    return Notifications.model_validate(block), project


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def notify_run_end(run: RunRecord, notifications: Notifications | None, *, project: str, backend: str,
                   claim: Callable[[str], bool], log: Callable[[str], None] = _stderr,
                   env: dict[str, str] | None = None) -> list[Outcome]:
    """Post the run's end to every channel that wants it, if this observer wins the claim.

    Returns one Outcome per channel attempted ([] when nothing wanted it or another observer
    claimed it). Never raises: a notification must not fail, or block, whatever observed the end.
    """
    channels = wanted(run, notifications)
    if not channels or notifications is None:
        return []
    try:
        if not claim(claim_key(run)):
            return []
    except Exception as exc:  # the claim store is down: better no alert than a broken run end
        log(f"notifications: could not claim run {run.id}'s notification: {type(exc).__name__}: {exc}")
        return []
    env = dict(os.environ) if env is None else env
    body = facts(run, event=EVENT_OF_STATE[run.state], project=project, backend=backend)
    timeout = notifications.timeout_s

    def send(ch: NotificationChannel) -> Outcome:
        url = (env.get(ch.url_env) or "").strip()
        if not url:
            return Outcome(ch.type, ch.url_env, False, None, 0, f"{ch.url_env} is not set: not sent")
        try:
            res = post_json(url, render(ch.type, body), timeout_s=timeout)
        except Exception as exc:  # anything unexpected: report its type only (its text may hold the URL)
            return Outcome(ch.type, ch.url_env, False, None, 1, f"{type(exc).__name__} while sending")
        return Outcome(ch.type, ch.url_env, res.ok, res.status, res.attempts, res.detail)

    with ThreadPoolExecutor(max_workers=len(channels)) as pool:
        outcomes = list(pool.map(send, channels))
    for o in outcomes:
        if o.sent:
            log(f"notifications: run {run.id} {run.state}: {o.type} notified ({o.detail})")
        else:
            log(f"notifications: warning: run {run.id} {run.state}: {o.type} via {o.url_env} not notified: "
                f"{o.detail}" + (f" after {o.attempts} attempts" if o.attempts > 1 else ""))
    return outcomes
