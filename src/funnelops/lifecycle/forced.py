"""The Workflow stage completes when a forced run SUCCEEDS, not when it is forced.

A force only starts a run; recording the stage at that moment marked it ✓ in `status` even when
the forced run then failed (a daily scheduler on historical data processing "today"). So a force
writes a `workflow-forced` event naming its run, and the stage is recorded once that run ends
DONE: at once by `pipeline workflow --wait`, else the next time anyone settles it (`status`, the
next force). Until then `status` says "forced, run N in progress"; a failed forced run leaves the
stage not done, with the run id and the `logs` command to read why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from funnelops.backends.base import Backend
    from funnelops.runs.model import RunRecord

FORCED_EVENT = "workflow-forced"


def note_forced(backend: Backend, run: RunRecord, scheduler: str, spec_hash: str, actor: str) -> None:
    """Remember which run a force started: the Workflow stage waits for its outcome."""
    backend.ledger.record_event(FORCED_EVENT, run.workflow, {"run_id": run.id, "scheduler": scheduler,
                                                            "spec_hash": spec_hash, "actor": actor})


def record_if_done(backend: Backend, run: RunRecord, spec_hash: str, actor: str) -> bool:
    """Record the Workflow stage when `run` (a forced run) ended DONE; True if it did."""
    if run.state != "DONE":
        return False
    backend.ledger.record_stage("workflow", spec_hash, actor)
    return True


def settle(backend: Backend, recent: int = 20) -> dict[str, Any] | None:
    """The last force's outcome, recording the Workflow stage if one of the recent forced runs has
    since succeeded (forces of several schedulers may be in flight at once).

    Returns {run_id, workflow, scheduler, state, error, hint} for the last force since Initial data
    completed (None when there is none: a force before a destroy does not count).
    """
    ledger = backend.ledger
    stages = ledger.stages()
    if "initial_data" not in stages:
        return None
    since = stages["initial_data"].completed_at
    events = [e for e in ledger.events(FORCED_EVENT, limit=recent) if str(e.get("at") or "") >= since]
    out: dict[str, Any] | None = None
    for ev in events:  # newest first
        done = stages.get("workflow")
        if out is not None and done is not None and str(ev.get("at") or "") < done.completed_at:
            break  # older forces cannot change the stage (and on gcp each look is an API call)
        data = ev.get("data") or {}
        run_id = data.get("run_id")
        run = backend.runtime.get(run_id) if run_id is not None else None
        if run is None:
            continue
        if out is None:
            out = {"run_id": run.id, "workflow": run.workflow, "scheduler": data.get("scheduler"),
                   "state": run.state, "error": run.error, "hint": _hint(run)}
        if run.state == "DONE" and (done is None or done.completed_at < str(ev.get("at") or "")):
            record_if_done(backend, run, str(data.get("spec_hash") or ""), str(data.get("actor") or ""))
            break
    return out


def _hint(run: RunRecord) -> str | None:
    if run.state == "DONE":
        return None
    if run.terminal:
        return f"the forced run {run.id} ended {run.state}: read why with `funnelops logs {run.id}`"
    return f"forced, run {run.id} in progress (`funnelops logs {run.id} --follow`)"
