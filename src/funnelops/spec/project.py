"""A validated project plus what was resolved around it: the value every layer above `spec` reads.

It lives apart from the loader so that the modules the loader calls (`validate`, `partial`,
`confine`, `sql_safety`) can name it without importing the loader back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funnelops.errors import Problem, UsageError
from funnelops.spec.models import ColumnSchema, ProjectSpec

Path_ = tuple[Any, ...]


def line_for(lines: Mapping[Path_, int], path: Path_) -> int | None:
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
    # `--backend` when the command line overrides the file's `project.backend`: backend-specific
    # checks (a gcp project's service accounts) follow what will really run.
    backend_override: str | None = None
    # the environment whose overlay was merged (None: the base as written), the ones the file
    # declares, where a YAML 1.1 reader would read a value differently (validate's warnings), and
    # the document that was validated: overlay merged, `${VAR}` resolved (spec/environments.py)
    env: str | None = None
    environments: tuple[str, ...] = ()
    notes: list[Problem] = field(default_factory=list)
    document: dict[str, Any] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return self.backend_override or self.spec.project.backend

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


def workflow_config(loaded: LoadedProject, name: str, stage: str) -> dict[str, Any]:
    """A workflow's template config at `stage`: args composed, the run tail and its parameters added
    (`backends/run_params.py`), the cluster's service account defaulting to the project's.

    Here, beside `template_args`, rather than in `resources`: `validate` checks user parameters
    against exactly this template (spec/gcp_limits.py), and spec sits below resources."""
    from funnelops.backends.run_params import with_run_tail

    spec = loaded.spec
    w = spec.workflow(name)
    if w is None:
        raise UsageError(f"unknown workflow '{name}'")
    jobs = [{"step_id": j.step_id, "main": j.main, "args": template_args(loaded, w.name, stage, j.args),
             "prerequisites": list(j.prerequisites), "properties": dict(sorted(j.properties.items()))}
            for j in w.jobs]
    params = [{"name": p.name, "fields": list(p.fields), "description": p.description, "regexes": list(p.regexes)}
              for p in w.parameters]
    jobs, params = with_run_tail(jobs, params, w.name)
    placement = w.placement.model_dump(mode="json")
    placement["service_account"] = placement["service_account"] or spec.project.service_account
    placement["properties"] = dict(sorted(placement["properties"].items()))
    if placement["image_uri"]:
        placement["image_version"] = ""  # a custom image carries its version
    return {
        "granularity": w.granularity,
        "initial_load": w.initial_load,
        "jobs": jobs,
        "parameters": params,
        "placement": placement,
        "dag_timeout": w.dag_timeout,
        "labels": dict(sorted(w.labels.items())),
    }
