"""The offline plan document: every resource of a stage with the request apply would send.

`funnelops --backend gcp plan --refresh=false --json` prints it; nothing is observed (no
credentials, no network), so every resource is listed with its *create* request, in apply's
order. The backend renders the requests (`Backend.offline_requests`) with the same functions
apply calls; this module only chooses the resources and wraps them in a stable document:

    {"format_version": 1, "refreshed": false, "backend": "gcp", "project": ..., "region": ...,
     "stage": "workflow", "spec_hash": ..., "counts": {kind: n},
     "resources": [{"address", "kind", "name", "depends_on",
                    "request": {"method", "url", "body"},
                    "instantiate": {"method", "url", "body", "per_run"},   # workflow templates
                    "http_body": {...},                                    # schedulers (decoded)
                    "then": {"method", "url", "body"}}]}                   # a paused scheduler's :pause
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from funnelops.plan.diff import topo_order
from funnelops.resources import desired_resources

if TYPE_CHECKING:
    from funnelops.backends.base import Backend
    from funnelops.spec.project import LoadedProject

FORMAT_VERSION = 1


def offline_plan(loaded: LoadedProject, backend: Backend, stage: str) -> dict[str, Any]:
    """The document above for `stage` (a normalised stage key)."""
    resources = topo_order(desired_resources(loaded, stage) + backend.owned_resources(stage))
    entries = backend.offline_requests(resources)
    counts: dict[str, int] = {}
    for e in entries:
        counts[e["kind"]] = counts.get(e["kind"], 0) + 1
    p = loaded.spec.project
    return {"format_version": FORMAT_VERSION, "refreshed": False, "backend": backend.name, "project": p.id,
            "region": p.region, "stage": stage, "spec_hash": loaded.spec_hash, "counts": counts,
            "resources": entries}


def offline_lines(doc: dict[str, Any]) -> list[str]:
    """A readable summary: one line per request, the instantiate and scheduler bodies spelled out."""
    import json

    from rich.markup import escape

    lines = [f"[bold]Offline plan[/] (not refreshed: nothing observed) of {escape(doc['project'])} "
             f"({escape(doc['region'])}), stage {escape(doc['stage'])}: what apply sends to create each resource"]
    for e in doc["resources"]:
        req = e["request"]
        lines.append(f"  [green]+[/] {escape(e['address'])}  {escape(str(req['method']))} {escape(str(req['url']))}")
        if "instantiate" in e:
            inst = e["instantiate"]
            lines.append(f"      run: {escape(inst['method'])} {escape(inst['url'])} "
                         f"{escape(json.dumps(inst['body'], ensure_ascii=False))}")
        if "http_body" in e:
            lines.append(f"      fires with: {escape(json.dumps(e['http_body'], ensure_ascii=False))}")
        if "then" in e:
            lines.append(f"      then: {escape(str(e['then']['method']))} {escape(str(e['then']['url']))} (created paused)")
    counts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in doc["counts"].items())
    lines.append(f"{len(doc['resources'])} request(s): {counts}. `--json` prints every body.")
    return lines
