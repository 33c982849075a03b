"""Cross-reference checks over a whole project, after the models validated each field.

:func:`resolve_and_check` first resolves the files a project references (`spec/resolve.py`,
the one step that produces values, stored on the loaded project), then runs :data:`CHECKS`: a
tuple of small checkers, each reading the project and adding located problems to one collector
(names are unique, references resolve with "did you mean", crons and time zones are valid,
neither views nor workflow steps form a cycle, SQL is one read-only query, steps stay confined,
trusted flows keep their contract).
Every problem is collected and raised at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable, Iterable, Mapping

from funnelops.errors import ProblemCollector, did_you_mean
from funnelops.spec import confine, flow_checks, gcp_limits, refined_checks, sql_safety
from funnelops.spec.models import ProjectSpec
from funnelops.spec.project import LoadedProject, Path_
from funnelops.spec.resolve import Resolved, resolve_files
from funnelops.spec.sqlrefs import SqlError, table_refs

TZ_HINT = "use an IANA name such as America/Bogota"


@dataclass(frozen=True)
class KnownNames:
    """Names a reference may point at: the project's own plus those of items set aside for their
    own field errors (see `spec/partial.py`), so a typo elsewhere is not reported twice."""

    buckets: frozenset[str]
    datasets: frozenset[str]
    workflows: frozenset[str]
    relations: frozenset[str]  # tables, external tables and views, as `dataset.name`


def known_names(spec: ProjectSpec, extra: dict[str, set[str]] | None = None) -> KnownNames:
    extra = extra or {}
    relations = ({t.address for t in spec.tables} | {e.address for e in spec.external_tables}
                 | {v.address for v in spec.views})
    for kind in ("tables", "external_tables", "views"):
        relations |= extra.get(kind, set())
    return KnownNames(buckets=frozenset({b.name for b in spec.buckets} | extra.get("buckets", set())),
                      datasets=frozenset({d.id for d in spec.datasets} | extra.get("datasets", set())),
                      workflows=frozenset({w.name for w in spec.workflows} | extra.get("workflows", set())),
                      relations=frozenset(relations))


@dataclass(frozen=True)
class Checked:
    """What every checker reads: the project, the file problems are reported against, the names
    references may use, and the resolved files."""

    loaded: LoadedProject
    file: str
    known: KnownNames
    resolved: Resolved

    @property
    def spec(self) -> ProjectSpec:
        return self.loaded.spec

    def line(self, path: Path_) -> int | None:
        return self.loaded.line_of(path)


Checker = Callable[[Checked, ProblemCollector], None]


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
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


def _unique(p: Checked, c: ProblemCollector, kind: str, items: list[tuple[str, Path_]], where: str | None = None) -> None:
    """One problem per repeated name, pointing back at the first definition."""
    seen: dict[str, Path_] = {}
    for name, path in items:
        if name in seen:
            c.add(p.file, p.line(path), (where or str(path[0])) + f"[{name}]",
                  f"duplicate {kind} '{name}' (first defined on line {p.line(seen[name])})", "names must be unique")
        else:
            seen[name] = path


def check_names(p: Checked, c: ProblemCollector) -> None:
    """Buckets, datasets, relations (tables, external tables, views together), workflows and
    schedulers (by name and by id) are each unique."""
    spec = p.spec
    _unique(p, c, "bucket", [(b.name, ("buckets", i, "name")) for i, b in enumerate(spec.buckets)])
    _unique(p, c, "dataset", [(d.id, ("datasets", i, "id")) for i, d in enumerate(spec.datasets)])
    relations = [(r.address, (kind, i, "name")) for kind in ("tables", "external_tables", "views")
                 for i, r in enumerate(getattr(spec, kind))]
    _unique(p, c, "table or view", relations)
    _unique(p, c, "workflow", [(w.name, ("workflows", i, "name")) for i, w in enumerate(spec.workflows)])
    _unique(p, c, "scheduler name", [(s.name, ("schedulers", i, "name")) for i, s in enumerate(spec.schedulers)])
    _unique(p, c, "scheduler id", [(s.id, ("schedulers", i, "id")) for i, s in enumerate(spec.schedulers)])


def _reference(p: Checked, c: ProblemCollector, path: Path_, field_: str, kind: str, name: str,
               known: frozenset[str]) -> None:
    if name not in known:
        c.add(p.file, p.line(path), field_, f"unknown {kind} '{name}'", did_you_mean(name, known))


def check_references(p: Checked, c: ProblemCollector) -> None:
    """The artifacts bucket, every item's dataset, external tables' buckets and schedulers'
    workflows name something the project defines."""
    spec, known = p.spec, p.known
    if spec.project.artifacts_bucket:
        _reference(p, c, ("project", "artifacts_bucket"), "project.artifacts_bucket", "bucket",
                   spec.project.artifacts_bucket, known.buckets)
    for kind in ("tables", "external_tables", "views"):
        for i, item in enumerate(getattr(spec, kind)):
            _reference(p, c, (kind, i, "dataset"), f"{kind}[{item.name}].dataset", "dataset", item.dataset,
                       known.datasets)
            if kind == "external_tables":
                _reference(p, c, (kind, i, "bucket"), f"{kind}[{item.name}].bucket", "bucket", item.bucket,
                           known.buckets)
    for i, s in enumerate(spec.schedulers):
        _reference(p, c, ("schedulers", i, "workflow"), f"schedulers[{s.name}].workflow", "workflow", s.workflow,
                   known.workflows)


def check_zones(p: Checked, c: ProblemCollector) -> None:
    """The project's and each scheduler's time zone are IANA names."""
    spec = p.spec
    if not _valid_tz(spec.project.time_zone):
        c.add(p.file, p.line(("project", "time_zone")), "project.time_zone",
              f"unknown time zone '{spec.project.time_zone}'", TZ_HINT)
    for i, s in enumerate(spec.schedulers):
        if s.time_zone is not None and not _valid_tz(s.time_zone):
            c.add(p.file, p.line(("schedulers", i, "time_zone")), f"schedulers[{s.name}].time_zone",
                  f"unknown time zone '{s.time_zone}'", TZ_HINT)


def check_cron(p: Checked, c: ProblemCollector) -> None:
    """Each scheduler's cron is a valid five-field expression."""
    from funnelops.spec.cron_hint import cron_hint

    for i, s in enumerate(p.spec.schedulers):
        if not _valid_cron(s.cron):
            c.add(p.file, p.line(("schedulers", i, "cron")), f"schedulers[{s.name}].cron",
                  f"invalid cron expression '{s.cron}'", cron_hint(s.cron))


def check_limits(p: Checked, c: ProblemCollector) -> None:
    """Bounds that depend on two fields at once: a scheduler's retry backoff range."""
    for i, s in enumerate(p.spec.schedulers):
        if s.retry.min_backoff_s > s.retry.max_backoff_s:
            c.add(p.file, p.line(("schedulers", i, "retry")), f"schedulers[{s.name}].retry",
                  "min_backoff_s is larger than max_backoff_s")


def check_columns(p: Checked, c: ProblemCollector) -> None:
    """Each table (with resolved columns) has columns, no repeated column, and partitions and
    clusters on columns it has (partitioning on a time column)."""
    for i, (t, cols) in enumerate(zip(p.spec.tables, p.resolved.table_columns)):
        if cols is None:
            continue
        names = [col.name for col in cols]
        if not cols:
            c.add(p.file, p.line(("tables", i)), f"tables[{t.name}]", "a table needs at least one column")
        for dup in {n for n in names if names.count(n) > 1}:
            c.add(p.file, p.line(("tables", i)), f"tables[{t.name}].schema", f"duplicate column '{dup}'")
        types = {col.name: col.type for col in cols}
        if t.partitioning:
            pf, path = t.partitioning.field, ("tables", i, "partitioning", "field")
            if pf not in types:
                c.add(p.file, p.line(path), f"tables[{t.name}].partitioning.field",
                      f"unknown column '{pf}'", did_you_mean(pf, names))
            elif types[pf] not in ("DATE", "TIMESTAMP", "DATETIME"):
                c.add(p.file, p.line(path), f"tables[{t.name}].partitioning.field",
                      f"column '{pf}' is {types[pf]}; time partitioning needs DATE, TIMESTAMP or DATETIME")
        for j, cf in enumerate(t.clustering):
            if cf not in types:
                c.add(p.file, p.line(("tables", i, "clustering", j)), f"tables[{t.name}].clustering",
                      f"unknown column '{cf}'", did_you_mean(cf, names))


def check_views(p: Checked, c: ProblemCollector) -> None:
    """Each view's SQL parses (one read-only query), reads only known relations, and views do
    not read each other in a cycle."""
    view_graph: dict[str, list[str]] = {}
    for i, (v, sql) in enumerate(zip(p.spec.views, p.resolved.view_sql)):
        if sql is None:
            continue  # its file was reported by resolve_files
        line = p.line(("views", i, "query_file" if v.query_file else "query"))
        try:
            refs = table_refs(sql)
        except SqlError as exc:
            c.add(p.file, line, f"views[{v.name}].query", sql_safety.problem_message(exc, v.query_file))
            continue
        for ref in refs:
            if ref not in p.known.relations:
                c.add(p.file, line, f"views[{v.name}].query",
                      f"reads unknown table or view '{ref}'", did_you_mean(ref, p.known.relations))
        view_graph[v.address] = list(refs)
    cycle = find_cycle(view_graph)
    if cycle:
        c.add(p.file, p.line(("views",)), "views", "views depend on each other in a cycle: " + " -> ".join(cycle),
              "break the cycle; a view cannot read itself through others")


def check_workflows(p: Checked, c: ProblemCollector) -> None:
    """Within a workflow, step ids are unique, prerequisites name its steps, and steps do not
    wait for each other in a cycle."""
    for i, w in enumerate(p.spec.workflows):
        steps = [s.step_id for s in w.jobs]
        _unique(p, c, "step id", [(s, ("workflows", i, "jobs", k, "step_id")) for k, s in enumerate(steps)],
                f"workflows[{w.name}].jobs")
        graph = {}
        for k, step in enumerate(w.jobs):
            for pre in step.prerequisites:
                if pre not in steps:
                    c.add(p.file, p.line(("workflows", i, "jobs", k, "prerequisites")),
                          f"workflows[{w.name}].jobs[{step.step_id}].prerequisites",
                          f"unknown step '{pre}'", did_you_mean(pre, steps))
            graph[step.step_id] = list(step.prerequisites)
        cyc = find_cycle(graph)
        if cyc:
            c.add(p.file, p.line(("workflows", i, "jobs")), f"workflows[{w.name}].jobs",
                  "steps depend on each other in a cycle: " + " -> ".join(cyc))


def check_sql_safety(p: Checked, c: ProblemCollector) -> None:
    """Case-insensitive name collisions, reserved datasets, refined SQL files (`spec/sql_safety.py`)."""
    sql_safety.check_project(p.loaded, p.file, c)


def check_confinement(p: Checked, c: ProblemCollector) -> None:
    """`main`, reserved names, argument sizes (`spec/confine.py`)."""
    confine.check_confinement(p.loaded, p.file, c)


# In the order the problems were always collected (equal file/line/field keep this order); Google's
# limits (`spec/gcp_limits.py`) come last.
CHECKS: tuple[Checker, ...] = (check_names, check_references, check_zones, check_columns, check_views,
                               check_workflows, check_cron, check_limits, check_sql_safety, check_confinement,
                               flow_checks.check_trusted_flows, refined_checks.check_refined_flows,
                               gcp_limits.check_clusters, gcp_limits.check_scheduler_deadlines,
                               gcp_limits.check_service_accounts, gcp_limits.check_parameters)


def resolve_and_check(loaded: LoadedProject, file: str, known_extra: dict[str, set[str]] | None = None) -> None:
    """Resolve referenced files into `loaded`, then run every checker; raise all problems at once.

    `known_extra` are names of items set aside because their own fields were invalid (they still
    count as known references)."""
    c = ProblemCollector()
    resolved = resolve_files(loaded, file, c)
    loaded.table_schemas = resolved.table_schemas(loaded)
    loaded.view_sql = resolved.view_sql_by_address(loaded)
    checked = Checked(loaded, file, known_names(loaded.spec, known_extra), resolved)
    for check in CHECKS:
        check(checked, c)
    c.raise_if_any()
