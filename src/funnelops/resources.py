"""Spec + lifecycle stage -> the desired resources, each with its dependencies.

A :class:`Resource` carries its config in one backend-neutral, JSON-able shape; backends
observe into the same shape, so diffing is backend-independent. Workflow template arguments are
composed here, as the seed says: variable group + the template's own args + the stage's dynamic
argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from funnelops.errors import UsageError
from funnelops.spec.project import template_args, workflow_config  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from funnelops.spec.project import LoadedProject

STAGES = ("iac", "initial_data", "workflow")
STAGE_TITLES = {"iac": "IaC", "initial_data": "Initial data", "workflow": "Workflow"}
_STAGE_ALIASES = {
    "iac": "iac",
    "initial data": "initial_data", "initial-data": "initial_data", "initial_data": "initial_data",
    "initialdata": "initial_data",
    "workflow": "workflow", "workflow deployment": "workflow",
}

# BigQuery answers with the legacy type names; the neutral shape uses them too.
_TYPE_CANON = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}


def normalize_stage(word: str) -> str:
    """'IaC' / 'iac' / 'Initial data' / 'initial-data' / 'Workflow' -> the stage key."""
    key = _STAGE_ALIASES.get(word.strip().lower())
    if key is None:
        raise UsageError(f"unknown stage '{word}'",
                         "use one of: IaC (iac), 'Initial data' (initial-data), Workflow (workflow)")
    return key


def canonical_type(t: str) -> str:
    up = t.upper()
    return _TYPE_CANON.get(up, up)


@dataclass(frozen=True)
class Resource:
    kind: str
    name: str
    config: dict[str, Any] = field(hash=False, compare=False)
    depends_on: tuple[str, ...] = ()
    deletion_protection: bool = False
    # fields applied at creation only and never diffed afterwards (Terraform's ignore_changes)
    create_only: frozenset[str] = frozenset()
    # external tables: where their data must appear before they can be created
    waits_for: tuple[str, str] | None = None

    @property
    def address(self) -> str:
        return f"{self.kind}.{self.name}"


def _bucket(b, default_location: str) -> Resource:
    cfg = {
        "location": (b.location or default_location).upper(),
        "storage_class": b.storage_class,
        "labels": dict(sorted(b.labels.items())),
        "lifecycle_rules": [r.model_dump(mode="json", exclude_none=True) for r in b.lifecycle_rules],
        "uniform_bucket_level_access": b.uniform_bucket_level_access,
        "public_access_prevention": b.public_access_prevention,
        "versioning": b.versioning,
    }
    return Resource("bucket", b.name, cfg, (), b.deletion_protection)


def desired_resources(loaded: LoadedProject, stage: str) -> list[Resource]:
    """Everything the project should have once `stage` has been applied."""
    if stage not in STAGES:
        stage = normalize_stage(stage)
    spec = loaded.spec
    default_loc = spec.project.location.upper()
    out: list[Resource] = [_bucket(b, default_loc) for b in spec.buckets]
    for d in spec.datasets:
        out.append(Resource("dataset", d.id, {
            "location": (d.location or default_loc).upper(),
            "description": d.description,
            "labels": dict(sorted(d.labels.items())),
        }))
    for t in spec.tables:
        cols = loaded.table_schemas.get(t.address, [])
        out.append(Resource("table", t.address, {
            "description": t.description,
            "schema": [{"name": c.name, "type": canonical_type(c.type), "mode": c.mode} for c in cols],
            "partitioning": t.partitioning.model_dump(mode="json") if t.partitioning else None,
            "clustering": list(t.clustering),
            "labels": dict(sorted(t.labels.items())),
        }, (f"dataset.{t.dataset}",), t.deletion_protection))
    if stage != "iac":
        for e in spec.external_tables:
            prefix = e.prefix.rstrip("/")
            out.append(Resource("external_table", e.address, {
                "format": e.format,
                "bucket": e.bucket,
                "prefix": prefix,
                "hive_partitioning": e.hive_partitioning,
                "description": e.description,
                "labels": dict(sorted(e.labels.items())),
            }, (f"dataset.{e.dataset}", f"bucket.{e.bucket}"), waits_for=(e.bucket, prefix)))
    relation_kind = {t.address: "table" for t in spec.tables}
    relation_kind.update({e.address: "external_table" for e in spec.external_tables})
    relation_kind.update({v.address: "view" for v in spec.views})
    from funnelops.spec.sqlrefs import table_refs

    for v in spec.views:
        sql = loaded.view_sql[v.address]
        deps = [f"dataset.{v.dataset}"]
        deps += [f"{relation_kind[r]}.{r}" for r in table_refs(sql) if r in relation_kind]
        out.append(Resource("view", v.address, {
            "query": sql,
            "description": v.description,
            "labels": dict(sorted(v.labels.items())),
        }, tuple(deps)))
    templates: dict[str, dict[str, Any]] = {}
    for w in spec.workflows:
        templates[w.name] = workflow_config(loaded, w.name, stage)
        out.append(Resource("workflow_template", w.name, templates[w.name]))
    for s in spec.schedulers:
        out.append(Resource("scheduler", s.id, {
            "display_name": s.name,
            "schedule": s.cron,
            "time_zone": s.time_zone or spec.project.time_zone,
            "workflow": s.workflow,
            "description": s.description,
            "retry": s.retry.model_dump(mode="json"),
            "attempt_deadline": s.attempt_deadline,
            "paused": s.paused,
            "parameters": scheduled_values(loaded, s.workflow, templates.get(s.workflow)),
        }, (f"workflow_template.{s.workflow}",), create_only=frozenset({"paused"})))
    return out


def scheduled_values(loaded: LoadedProject, workflow: str, template: dict[str, Any] | None) -> dict[str, str]:
    """The parameter values a Cloud Scheduler fire of `workflow` sends (`--lease=scheduled`)."""
    from funnelops.backends.run_params import instantiate_values
    from funnelops.backends.shapes import template_to_dataproc

    wf = loaded.spec.workflow(workflow)
    if template is None or wf is None:
        return {}
    body = template_to_dataproc(workflow, template, lambda m: m)
    return instantiate_values(body, values={p.name: p.value for p in wf.parameters if p.value is not None},
                              workflow=workflow)
