"""A validated project plus what was resolved around it: the value every layer above `spec` reads.

It lives apart from the loader so that the modules the loader calls (`validate`, `partial`,
`confine`, `sql_safety`) can name it without importing the loader back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funnelops.spec.models import ColumnSchema, ProjectSpec

Path_ = tuple[Any, ...]


def line_for(lines: dict[Path_, int], path: Path_) -> int | None:
    """The line of the closest ancestor of `path` that we know."""
    p = tuple(path)
    while p:
        if p in lines:
            return lines[p]
        p = p[:-1]
    return lines.get(())


@dataclass
class LoadedProject:
    """A validated project plus what was resolved around it (files, SQL, lines)."""

    spec: ProjectSpec
    path: Path
    lines: dict[Path_, int]
    table_schemas: dict[str, list[ColumnSchema]] = field(default_factory=dict)
    view_sql: dict[str, str] = field(default_factory=dict)
    spec_hash: str = ""

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def line_of(self, path: Path_) -> int | None:
        return line_for(self.lines, path)


def template_args(loaded: LoadedProject, workflow_name: str, stage: str, job_args: list[str] | None = None) -> list[str]:
    """The full argument list of a template's job at `stage`: the variable group, the workflow's and
    the job's own arguments, then the stage's dynamic argument (last, so it wins)."""
    from funnelops.errors import UsageError
    from funnelops.spec.models import variable_args

    spec = loaded.spec
    wf = spec.workflow(workflow_name)
    if wf is None:
        raise UsageError(f"unknown workflow '{workflow_name}'")
    dynamic = list(getattr(spec.stages, stage))
    return variable_args(spec.variables) + list(wf.args) + list(job_args or []) + dynamic
