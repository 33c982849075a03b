"""Cross-reference checks over a whole project, after the models validated each field.

Resolves the files a project references (table schema JSON, view SQL) relative to the project
file, then checks names are unique, references resolve (with "did you mean"), crons and time
zones are valid, and neither views nor workflow steps form a cycle. Every problem is collected
and raised at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from pydantic import ValidationError

from funnelops.errors import ProblemCollector, did_you_mean
from funnelops.spec.files import ProjectFileRefused, read_project_text
from funnelops.spec.models import ColumnSchema

if TYPE_CHECKING:
    from funnelops.spec.loader import LoadedProject


def _safe_relative(base: Path, rel: str) -> Path | None:
    """A file under the project's folder; None if `rel` escapes it."""
    target = (base / rel).resolve()
    try:
        target.relative_to(base.resolve())
    except ValueError:
        return None
    return target


def find_cycle(graph: dict[str, Iterable[str]]) -> list[str] | None:
    """A cycle in a dependency graph as a list of nodes, or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    color = {n: WHITE for n in graph}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        color[n] = GREY
        stack.append(n)
        for m in graph.get(n, ()):
            if m not in color:
                continue
            if color[m] == GREY:
                return stack[stack.index(m):] + [m]
            if color[m] == WHITE:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        color[n] = BLACK
        return None

    for n in sorted(graph):
        if color[n] == WHITE:
            found = visit(n)
            if found:
                return found
    return None


def _valid_tz(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
        return True
    except (ZoneInfoNotFoundError, ValueError):
        return False


def _valid_cron(expr: str) -> bool:
    from croniter import croniter

    return len(expr.split()) == 5 and croniter.is_valid(expr)


def _load_schema_file(base: Path, rel: str, file: str, line: int | None, field_: str,
                      c: ProblemCollector) -> list[ColumnSchema] | None:
    target = _safe_relative(base, rel)
    if target is None:
        c.add(file, line, field_, f"'{rel}' is outside the project folder", "keep schema files beside funnel.yaml")
        return None
    if not target.exists():
        c.add(file, line, field_, f"schema file '{rel}' not found", f"create {target} or fix the path")
        return None
    try:
        raw = json.loads(read_project_text(target))
    except ProjectFileRefused as exc:
        c.add(file, line, field_, f"schema file {exc}", "point it at a JSON file beside funnel.yaml")
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f"{rel}:{exc.lineno}" if isinstance(exc, json.JSONDecodeError) else rel
        c.add(file, line, field_, f"schema file {where} is not valid JSON: {exc}")
        return None
    if isinstance(raw, dict) and "fields" in raw:
        raw = raw["fields"]
    if not isinstance(raw, list):
        c.add(file, line, field_, f"schema file '{rel}' must be a JSON list of fields (BigQuery schema format)")
        return None
    cols = []
    bad = False
    for i, item in enumerate(raw):
        try:
            cols.append(ColumnSchema.model_validate(item))
        except ValidationError as exc:
            bad = True
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                msg = err["msg"].removeprefix("Value error, ")
                c.add(file, line, field_, f"{rel}: field [{i}] {loc}: {msg}")
    return None if bad else cols  # the bad fields are reported; no follow-on problems


def resolve_and_check(loaded: "LoadedProject", file: str, known_extra: dict[str, set[str]] | None = None) -> None:
    """Resolve referenced files and cross-check the project; `known_extra` are names of items
    set aside because their own fields were invalid (they still count as known references)."""
    from funnelops.spec.confine import check_confinement
    from funnelops.spec.sql_safety import check_project, problem_message
    from funnelops.spec.sqlrefs import SqlError, table_refs

    spec = loaded.spec
    base = loaded.base_dir
    c = ProblemCollector()
    ln = loaded.line_of

    def unique(kind: str, items: list[tuple[str, tuple]], where: str | None = None) -> None:
        seen: dict[str, tuple] = {}
        for name, path in items:
            if name in seen:
                c.add(file, ln(path), (where or str(path[0])) + f"[{name}]",
                      f"duplicate {kind} '{name}' (first defined on line {ln(seen[name])})",
                      "names must be unique")
            else:
                seen[name] = path

    extra = known_extra or {}
    buckets = {b.name for b in spec.buckets} | extra.get("buckets", set())
    datasets = {d.id for d in spec.datasets} | extra.get("datasets", set())
    workflows = {w.name for w in spec.workflows} | extra.get("workflows", set())
    unique("bucket", [(b.name, ("buckets", i, "name")) for i, b in enumerate(spec.buckets)])
    unique("dataset", [(d.id, ("datasets", i, "id")) for i, d in enumerate(spec.datasets)])
    relations: list[tuple[str, tuple]] = []
    relations += [(t.address, ("tables", i, "name")) for i, t in enumerate(spec.tables)]
    relations += [(t.address, ("external_tables", i, "name")) for i, t in enumerate(spec.external_tables)]
    relations += [(v.address, ("views", i, "name")) for i, v in enumerate(spec.views)]
    unique("table or view", relations)
    unique("workflow", [(w.name, ("workflows", i, "name")) for i, w in enumerate(spec.workflows)])
    unique("scheduler name", [(s.name, ("schedulers", i, "name")) for i, s in enumerate(spec.schedulers)])
    unique("scheduler id", [(s.id, ("schedulers", i, "id")) for i, s in enumerate(spec.schedulers)])
    known_relations = {name for name, _ in relations}
    for kind in ("tables", "external_tables", "views"):
        known_relations |= extra.get(kind, set())

    if not _valid_tz(spec.project.time_zone):
        c.add(file, ln(("project", "time_zone")), "project.time_zone",
              f"unknown time zone '{spec.project.time_zone}'", "use an IANA name such as America/Bogota")
    if spec.project.artifacts_bucket and spec.project.artifacts_bucket not in buckets:
        c.add(file, ln(("project", "artifacts_bucket")), "project.artifacts_bucket",
              f"unknown bucket '{spec.project.artifacts_bucket}'", did_you_mean(spec.project.artifacts_bucket, buckets))

    def check_dataset(kind: str, i: int, name: str, ds: str) -> None:
        if ds not in datasets:
            c.add(file, ln((kind, i, "dataset")), f"{kind}[{name}].dataset", f"unknown dataset '{ds}'",
                  did_you_mean(ds, datasets))

    schema_files: dict[str, list[ColumnSchema] | None] = {}  # many tables share one schema file
    for i, t in enumerate(spec.tables):
        check_dataset("tables", i, t.name, t.dataset)
        cols = t.schema_
        if t.schema_file is not None:
            if t.schema_file in schema_files and schema_files[t.schema_file] is not None:
                cols = schema_files[t.schema_file]
            else:  # (a bad file is reported for every table that uses it)
                cols = schema_files[t.schema_file] = _load_schema_file(
                    base, t.schema_file, file, ln(("tables", i, "schema_file")), f"tables[{t.name}].schema_file", c)
        if cols is None:
            continue
        loaded.table_schemas[t.address] = list(cols)
        names = [col.name for col in cols]
        if not cols:
            c.add(file, ln(("tables", i)), f"tables[{t.name}]", "a table needs at least one column")
        for dup in {n for n in names if names.count(n) > 1}:
            c.add(file, ln(("tables", i)), f"tables[{t.name}].schema", f"duplicate column '{dup}'")
        types = {col.name: col.type for col in cols}
        if t.partitioning:
            pf = t.partitioning.field
            if pf not in types:
                c.add(file, ln(("tables", i, "partitioning", "field")), f"tables[{t.name}].partitioning.field",
                      f"unknown column '{pf}'", did_you_mean(pf, names))
            elif types[pf] not in ("DATE", "TIMESTAMP", "DATETIME"):
                c.add(file, ln(("tables", i, "partitioning", "field")), f"tables[{t.name}].partitioning.field",
                      f"column '{pf}' is {types[pf]}; time partitioning needs DATE, TIMESTAMP or DATETIME")
        for j, cf in enumerate(t.clustering):
            if cf not in types:
                c.add(file, ln(("tables", i, "clustering", j)), f"tables[{t.name}].clustering",
                      f"unknown column '{cf}'", did_you_mean(cf, names))

    for i, e in enumerate(spec.external_tables):
        check_dataset("external_tables", i, e.name, e.dataset)
        if e.bucket not in buckets:
            c.add(file, ln(("external_tables", i, "bucket")), f"external_tables[{e.name}].bucket",
                  f"unknown bucket '{e.bucket}'", did_you_mean(e.bucket, buckets))

    view_graph: dict[str, list[str]] = {}
    for i, v in enumerate(spec.views):
        check_dataset("views", i, v.name, v.dataset)
        sql = v.query
        if v.query_file is not None:
            target = _safe_relative(base, v.query_file)
            if target is None or not target.exists():
                c.add(file, ln(("views", i, "query_file")), f"views[{v.name}].query_file",
                      f"SQL file '{v.query_file}' not found" + (" (outside the project folder)" if target is None else ""),
                      "fix the path; it is relative to the project file")
                continue
            try:
                sql = read_project_text(target)
            except ProjectFileRefused as exc:
                c.add(file, ln(("views", i, "query_file")), f"views[{v.name}].query_file",
                      f"SQL file {exc}", "point it at a .sql file beside funnel.yaml")
                continue
            except (OSError, UnicodeDecodeError) as exc:
                c.add(file, ln(("views", i, "query_file")), f"views[{v.name}].query_file",
                      f"cannot read SQL file '{v.query_file}': {exc}", "save it as UTF-8 text")
                continue
        assert sql is not None
        loaded.view_sql[v.address] = sql.strip()
        try:
            refs = table_refs(sql)
        except SqlError as exc:
            c.add(file, ln(("views", i, "query_file" if v.query_file else "query")), f"views[{v.name}].query",
                  problem_message(exc, v.query_file))
            continue
        deps = []
        for ref in refs:
            if ref not in known_relations:
                c.add(file, ln(("views", i, "query_file" if v.query_file else "query")), f"views[{v.name}].query",
                      f"reads unknown table or view '{ref}'", did_you_mean(ref, known_relations))
            deps.append(ref)
        view_graph[v.address] = deps
    cycle = find_cycle(view_graph)
    if cycle:
        c.add(file, ln(("views",)), "views", "views depend on each other in a cycle: " + " -> ".join(cycle),
              "break the cycle; a view cannot read itself through others")

    for i, w in enumerate(spec.workflows):
        steps = [j.step_id for j in w.jobs]
        unique("step id", [(s, ("workflows", i, "jobs", k, "step_id")) for k, s in enumerate(steps)],
               f"workflows[{w.name}].jobs")
        graph = {}
        for k, job in enumerate(w.jobs):
            for p in job.prerequisites:
                if p not in steps:
                    c.add(file, ln(("workflows", i, "jobs", k, "prerequisites")),
                          f"workflows[{w.name}].jobs[{job.step_id}].prerequisites",
                          f"unknown step '{p}'", did_you_mean(p, steps))
            graph[job.step_id] = list(job.prerequisites)
        cyc = find_cycle(graph)
        if cyc:
            c.add(file, ln(("workflows", i, "jobs")), f"workflows[{w.name}].jobs",
                  "steps depend on each other in a cycle: " + " -> ".join(cyc))

    for i, s in enumerate(spec.schedulers):
        if s.workflow not in workflows:
            c.add(file, ln(("schedulers", i, "workflow")), f"schedulers[{s.name}].workflow",
                  f"unknown workflow '{s.workflow}'", did_you_mean(s.workflow, workflows))
        if not _valid_cron(s.cron):
            c.add(file, ln(("schedulers", i, "cron")), f"schedulers[{s.name}].cron",
                  f"invalid cron expression '{s.cron}'", "use 5 fields: minute hour day-of-month month day-of-week")
        if s.time_zone is not None and not _valid_tz(s.time_zone):
            c.add(file, ln(("schedulers", i, "time_zone")), f"schedulers[{s.name}].time_zone",
                  f"unknown time zone '{s.time_zone}'", "use an IANA name such as America/Bogota")
        if s.retry.min_backoff_s > s.retry.max_backoff_s:
            c.add(file, ln(("schedulers", i, "retry")), f"schedulers[{s.name}].retry",
                  "min_backoff_s is larger than max_backoff_s")
    check_project(loaded, file, c)  # one read-only query per SQL, case-insensitive names (sql_safety)
    check_confinement(loaded, file, c)  # `main`, reserved names, argument sizes (spec/confine.py)
    c.raise_if_any()
