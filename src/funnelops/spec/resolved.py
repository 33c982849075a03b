"""What `validate` shows of the resolved project: the values an environment really deploys.

Why: with overlays and `${VAR}` the file no longer says, line by line, what `--env prod` deploys.
`validate` prints the few values people check before an apply (GCP project, region, buckets,
datasets, cluster sizes, which schedulers start paused) and, with --json, the whole validated
document under `resolved`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from funnelops.errors import Problem
from funnelops.spec.project import LoadedProject


def resolved_summary(loaded: LoadedProject) -> dict[str, Any]:
    """The compact resolved values (also the `summary` of validate's JSON)."""
    spec = loaded.spec
    p = spec.project
    return {
        "project_id": p.id, "region": p.region, "location": p.location, "backend": loaded.backend,
        "service_account": p.service_account, "artifacts_bucket": p.artifacts_bucket,
        "buckets": [{"name": b.name, "role": b.role} for b in spec.buckets],
        "datasets": [d.id for d in spec.datasets],
        "clusters": [{"workflow": w.name, "workers": w.placement.workers,
                      "worker_machine_type": w.placement.worker_machine_type} for w in spec.workflows],
        "schedulers": [{"name": s.name, "id": s.id, "paused": s.paused} for s in spec.schedulers],
        "variables": {k: v for k, v in spec.variables.items()},
    }


def resolved_lines(loaded: LoadedProject) -> list[str]:
    """The summary as a few plain lines (no markup: the caller escapes them)."""
    s = resolved_summary(loaded)
    env = f"environment {loaded.env}" if loaded.env else "no environment (the project as written)"
    lines = [f"Resolved ({env}):",
             f"  project    {s['project_id']}, region {s['region']}, location {s['location']}, backend {s['backend']}"]
    if s["service_account"]:
        lines.append(f"  identity   {s['service_account']}")
    lines.append("  buckets    " + (", ".join(f"{b['name']} ({b['role']})" for b in s["buckets"]) or "none"))
    lines.append("  datasets   " + (", ".join(s["datasets"]) or "none"))
    if s["clusters"]:
        lines.append("  clusters   " + ", ".join(f"{c['workflow']}: {c['workers']} x {c['worker_machine_type']}"
                                             for c in s["clusters"]))
    if s["schedulers"]:
        lines.append("  schedulers " + ", ".join(f"{x['name']} {'paused' if x['paused'] else 'active'}"
                                             for x in s["schedulers"]))
    if s["variables"]:
        lines.append("  variables  " + " ".join(_arg(k, v) for k, v in s["variables"].items()))
    return lines


def _arg(key: str, value: Any) -> str:
    from funnelops.spec.models import variable_args

    return variable_args({key: value})[0]


def resolved_document(loaded: LoadedProject) -> dict[str, Any]:
    """The whole validated document (every default filled in), as JSON values."""
    doc = loaded.spec.model_dump(mode="json", by_alias=True)
    doc.pop("environments", None)
    return doc


def environment_problems(loaded: LoadedProject) -> list[Problem]:
    """Names two declared environments share (spec/env_checks.py), read from the file again."""
    from funnelops.spec.env_checks import cross_environment_problems
    from funnelops.spec.files import read_project_text
    from funnelops.spec.loader import parse_yaml

    if len(loaded.environments) < 2:
        return []
    path = Path(loaded.path)
    raw, raw_lines = parse_yaml(read_project_text(path), str(path))
    return cross_environment_problems(raw, raw_lines, str(path)) if isinstance(raw, dict) else []
