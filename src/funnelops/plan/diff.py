"""Observe what exists, compare it with the desired resources, and build an ordered plan.

Observation goes kind by kind through the backend's handlers (each one list call, run in
parallel), so drift made by hand (a table dropped, a view edited) shows up like any change.
Only resources the backend manages are ever proposed for deletion, and only when they left the
spec entirely (an external table deferred at this stage is not "left").
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from funnelops.backends.base import KINDS, Observed
from funnelops.plan.model import Change, FieldChange, Plan
from funnelops.resources import Resource, desired_resources, normalize_stage

if TYPE_CHECKING:
    from funnelops.backends.base import Backend
    from funnelops.spec.project import LoadedProject

# Fields whose change cannot be made in place, per kind.
REPLACE_FIELDS = {"bucket": {"location"}, "dataset": {"location"}, "table": {"partitioning"}}


def field_diff(before: Any, after: Any, path: str = "") -> list[FieldChange]:
    """Leaf-level differences; lists of dicts are matched by their step_id/name."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[FieldChange] = []
        for key in sorted(set(before) | set(after), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in before:
                out.append(FieldChange(sub, None, after[key]))
            elif key not in after:
                out.append(FieldChange(sub, before[key], None))
            else:
                out.extend(field_diff(before[key], after[key], sub))
        return out
    if isinstance(before, list) and isinstance(after, list) and before and after \
            and all(isinstance(x, dict) for x in before + after):
        key = next((k for k in ("step_id", "name") if all(k in x for x in before + after)), None)
        if key:
            b = {x[key]: x for x in before}
            a = {x[key]: x for x in after}
            if list(b) == list(a):
                out = []
                for k in a:
                    out.extend(field_diff(b[k], a[k], f"{path}[{k}]"))
                return out
    return [] if before == after else [FieldChange(path, before, after)]


def _schema_needs_replace(before: list[dict], after: list[dict]) -> bool:
    """Only appending NULLABLE columns or relaxing REQUIRED -> NULLABLE is in place."""
    if len(after) < len(before):
        return True
    for old, new in zip(before, after):
        if old["name"] != new["name"] or old["type"] != new["type"]:
            return True
        if old["mode"] != new["mode"] and not (old["mode"] == "REQUIRED" and new["mode"] == "NULLABLE"):
            return True
    return any(c["mode"] == "REQUIRED" for c in after[len(before):])


def _needs_replace(kind: str, changed_top: set[str], before: dict, after: dict) -> str:
    hit = changed_top & REPLACE_FIELDS.get(kind, set())
    if hit:
        return f"{', '.join(sorted(hit))} cannot change in place"
    if kind == "table" and "schema" in changed_top and _schema_needs_replace(before["schema"], after["schema"]):
        return "a column was removed, renamed, retyped or made REQUIRED"
    return ""


def diff_resource(res: Resource, obs: Observed) -> Change:
    before = {k: v for k, v in obs.config.items() if k not in res.create_only}
    after = {k: v for k, v in res.config.items() if k not in res.create_only}
    changed_top = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    if not changed_top:
        return Change(res.kind, res.name, "unchanged", res, obs)
    fields = tuple(field_diff(before, after))
    reason = _needs_replace(res.kind, changed_top, before, after)
    if reason:
        return Change(res.kind, res.name, "replace", res, obs, fields, reason,
                      data_loss=bool(obs.rows), protected=res.deletion_protection)
    return Change(res.kind, res.name, "update", res, obs, fields)


def topo_order(resources: list[Resource]) -> list[Resource]:
    """Dependencies first; kind order breaks ties so output is stable."""
    by_addr = {r.address: r for r in resources}
    rank = {k: i for i, k in enumerate(KINDS)}
    done: set[str] = set()
    out: list[Resource] = []

    def visit(r: Resource, trail: tuple[str, ...]) -> None:
        if r.address in done or r.address in trail:
            return
        for d in r.depends_on:
            if d in by_addr:
                visit(by_addr[d], trail + (r.address,))
        done.add(r.address)
        out.append(r)

    for r in sorted(resources, key=lambda r: rank.get(r.kind, 99)):
        visit(r, ())
    return out


def observe_all(backend: Backend, names_by_kind: dict[str, list[str]],
                kinds: set[str] | None = None) -> dict[str, dict[str, Observed]]:
    """Every kind observed concurrently (bounded by the backend's parallelism)."""
    wanted = [k for k in KINDS if kinds is None or k in kinds]
    workers = max(1, min(len(wanted), backend.max_parallel))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {k: pool.submit(backend.handler(k).observe, names_by_kind.get(k, [])) for k in wanted}
        return {k: f.result() for k, f in futures.items()}


def build_plan(loaded: LoadedProject, backend: Backend, stage: str, kinds: set[str] | None = None) -> Plan:
    """The plan for `stage`; `kinds` restricts it to some resource kinds (e.g. templates only)."""
    stage = normalize_stage(stage) if stage not in ("iac", "initial_data", "workflow") else stage
    wanted = desired_resources(loaded, stage) + backend.owned_resources(stage)
    desired = topo_order([r for r in wanted if kinds is None or r.kind in kinds])
    # what the project holds at any stage: only external tables are deferred by stage
    in_spec = {r.address for r in desired} | {f"external_table.{e.address}" for e in loaded.spec.external_tables}
    later = in_spec - {r.address for r in desired}  # deferred at this stage (external tables at IaC)
    names: dict[str, list[str]] = {}
    for r in desired:
        names.setdefault(r.kind, []).append(r.name)
    backend.refresh()  # never plan from a stale snapshot
    observed = observe_all(backend, names, kinds)
    changes: list[Change] = []
    waiting: set[str] = set()
    present = {f"{k}.{n}" for k, found in observed.items() for n in found}
    for r in desired:
        obs = observed.get(r.kind, {}).get(r.name)
        blocked = [d for d in r.depends_on if d in waiting or (d in later and d not in present)]
        if obs is None and blocked:
            waiting.add(r.address)
            why = f"reads {', '.join(blocked)}, which waits for data or a later stage"
            changes.append(Change(r.kind, r.name, "waiting", r, reason=why))
            continue
        if obs is None and r.waits_for:
            bucket, prefix = r.waits_for
            if not backend.storage.has_objects(bucket, prefix, ".parquet"):
                waiting.add(r.address)
                changes.append(Change(r.kind, r.name, "waiting", r,
                                      reason=f"no data yet under {bucket}/{prefix}/"))
                continue
        if obs is None:
            changes.append(Change(r.kind, r.name, "create", r))
        else:
            changes.append(diff_resource(r, obs))
    rank = {k: i for i, k in enumerate(KINDS)}
    deletes = []
    for kind in sorted(observed, key=lambda k: -rank[k]):
        for name, obs in sorted(observed[kind].items()):
            if f"{kind}.{name}" not in in_spec:
                deletes.append(Change(kind, name, "delete", None, obs, reason="no longer in the project",
                                      data_loss=bool(obs.rows)))
    return Plan(stage=stage, backend=backend.name, changes=tuple(deletes + changes), spec_hash=loaded.spec_hash)
