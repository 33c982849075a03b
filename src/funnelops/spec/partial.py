"""Cross-checks on the valid part of an invalid project, so one run reports every problem.

When some fields fail validation, the items that hold them are set aside and the cross-reference
checks (unknown workflow, cron, view reads, cycles...) run on the rest. Items set aside still
count as known names, so a scheduler naming a workflow that merely had a typo elsewhere is not
reported twice. Line numbers follow the items to their original positions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from funnelops.errors import Problem, ProjectError
from funnelops.spec import models as m
from funnelops.spec.project import LoadedProject
from funnelops.spec.validate import resolve_and_check

LIST_MODELS: dict[str, type[m.Strict]] = {
    "buckets": m.Bucket, "datasets": m.Dataset, "tables": m.Table, "external_tables": m.ExternalTable,
    "views": m.View, "workflows": m.Workflow, "schedulers": m.Scheduler,
}
PLACEHOLDER_PROJECT = {"id": "placeholder-project"}


def _valid(model: type[m.Strict], value: Any) -> bool:
    try:
        model.model_validate(value)
        return True
    except (ValidationError, TypeError, ValueError):
        return False


def _name_of(kind: str, item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    if kind in ("tables", "external_tables", "views"):
        ds, name = item.get("dataset"), item.get("name")
        return f"{ds}.{name}" if isinstance(ds, str) and isinstance(name, str) else None
    value = item.get("id") if kind == "datasets" else item.get("name")
    return value if isinstance(value, str) else None


def partial_problems(data: dict[str, Any], lines: dict[tuple, int], path: Path, file: str) -> list[Problem]:
    """Problems the cross-checks find in the valid items of an invalid project (best effort)."""
    partial: dict[str, Any] = {}
    remap: dict[tuple[str, int], int] = {}  # (kind, new index) -> original index
    set_aside: dict[str, set[str]] = {k: set() for k in LIST_MODELS}
    for key, value in data.items():
        if key in LIST_MODELS and isinstance(value, list):
            kept: list[Any] = []
            for i, item in enumerate(value):
                if _valid(LIST_MODELS[key], item):
                    remap[(key, len(kept))] = i
                    kept.append(item)
                else:
                    name = _name_of(key, item)
                    if name:
                        set_aside[key].add(name)
            partial[key] = kept
        elif key == "project":
            partial[key] = value if _valid(m.Project, value) else PLACEHOLDER_PROJECT
        elif key in ("variables", "stages"):
            if _valid(m.ProjectSpec, {"project": PLACEHOLDER_PROJECT, key: value}):
                partial[key] = value
    partial.setdefault("project", PLACEHOLDER_PROJECT)
    try:
        spec = m.ProjectSpec.model_validate(partial)
    except ValidationError:
        return []
    to_new = {(kind, old): new for (kind, new), old in remap.items()}
    new_lines: dict[tuple, int] = {}
    for p, line in lines.items():
        if len(p) >= 2 and p[0] in LIST_MODELS and isinstance(p[1], int):
            new = to_new.get((p[0], p[1]))
            if new is not None:
                new_lines[(p[0], new) + tuple(p[2:])] = line
        else:
            new_lines[p] = line
    loaded = LoadedProject(spec=spec, path=path.resolve(), lines=new_lines)
    try:
        resolve_and_check(loaded, file, known_extra=set_aside)
    except ProjectError as exc:
        return exc.problems
    return []
