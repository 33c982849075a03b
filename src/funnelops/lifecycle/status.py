"""Where the platform stands, gathered without touching the warehouse (so it answers during runs)."""

from __future__ import annotations

from datetime import datetime, UTC
from typing import TYPE_CHECKING, Any

from funnelops.resources import STAGE_TITLES, STAGES

if TYPE_CHECKING:
    from funnelops.backends.base import Backend
    from funnelops.spec.project import LoadedProject

def next_step(loaded: LoadedProject, position: str | None, scheduler_daemon: bool = True) -> str:
    """The command that moves the lifecycle on from `position`, with the project's own names.

    The workflow stage forces one of *this* project's schedulers: a hint naming the example's
    (`Día`) would be refused as an unknown scheduler anywhere else. `scheduler serve` is only
    suggested where a local daemon fires the schedulers (`Backend.scheduler_daemon`): on gcp
    Cloud Scheduler fires them and `serve` is refused."""
    import shlex

    if position is None:
        return "funnelops pipeline funnel --data-stage IaC"
    if position == "iac":
        return 'funnelops pipeline funnel --data-stage "Initial data"'
    schedulers = loaded.spec.schedulers
    if not schedulers:
        return "add a scheduler to the project (`schedulers:`), then `funnelops pipeline workflow --scheduler NAME`"
    force = f"funnelops pipeline workflow --scheduler {shlex.quote(schedulers[0].name)}"
    if len(schedulers) > 1:
        force += " (or another of `funnelops scheduler list`)"
    if position == "initial_data":
        return force
    if not scheduler_daemon:
        return f"{force} on demand; Cloud Scheduler fires them on their crons (`funnelops scheduler list`)"
    return f"{force} on demand, or `funnelops scheduler serve`"


def collect_status(loaded: LoadedProject, backend: Backend) -> dict[str, Any]:
    from funnelops.scheduler.cron import next_fire

    from funnelops.lifecycle.forced import settle
    from funnelops.lifecycle.where import data_locations

    spec = loaded.spec
    forced = settle(backend)  # records the Workflow stage if the last forced run has since succeeded
    done = backend.ledger.stages()
    stages = []
    last = None
    for key in STAGES:
        rec = done.get(key)
        if rec:
            last = key
        stages.append({"stage": key, "title": STAGE_TITLES[key], "done": rec is not None,
                       "completed_at": rec.completed_at if rec else None, "actor": rec.actor if rec else None,
                       "spec_hash": rec.spec_hash if rec else None})
        if key == "workflow":
            stages[-1]["forced_run"] = forced
    dynamic = {a for st in STAGES for a in getattr(spec.stages, st)}
    templates = []
    observed = backend.handler("workflow_template").observe([w.name for w in spec.workflows])
    for w in spec.workflows:
        obs = observed.get(w.name)
        args = obs.config["jobs"][0]["args"] if obs and obs.config.get("jobs") else []
        templates.append({"name": w.name, "exists": obs is not None, "version": obs.extra.get("version") if obs else None,
                          "args": args, "dynamic_args": [a for a in args if a in dynamic]})
    states = backend.runtime.scheduler_states()
    now = datetime.now(UTC)
    schedulers = []
    for s in spec.schedulers:
        tz = s.time_zone or spec.project.time_zone
        st = states.get(s.id)
        paused = st.paused if st is not None else s.paused
        nxt = None if paused or s.id not in states else next_fire(s.cron, tz, now).isoformat()
        schedulers.append({"name": s.name, "id": s.id, "workflow": s.workflow, "cron": s.cron, "time_zone": tz,
                           "exists": s.id in states, "paused": paused, "next_fire": nxt,
                           "last_fire": st.last_fire if st is not None else None})
    running = [r.to_dict() for r in backend.runtime.active()]
    holder = backend.apply_holder()  # an apply in progress: forces and scheduled fires are refused meanwhile
    waiting = []
    if "iac" in done:
        for e in spec.external_tables:
            if not backend.storage.has_objects(e.bucket, e.prefix.rstrip("/"), ".parquet"):
                waiting.append(e.address)
    return {"project": spec.project.id, "backend": backend.name, "spec_hash": loaded.spec_hash,
            "stages": stages, "position": last, "next": next_step(loaded, last, backend.scheduler_daemon),
            "templates": templates, "schedulers": schedulers, "running": running,
            "applying": holder.to_dict() if holder is not None else None, "waiting_for_data": waiting,
            "where": data_locations(loaded, backend)}

