"""Where the platform's data comes from: buckets -> trusted flows -> tables -> refined SQL -> views.

Built only from what the project declares (buckets, the trusted flows' `FILES`/`TARGET`, external
tables over trusted prefixes, refined SQL files and their `-- target:` headers, views) and from the
tables each piece of SQL reads, parsed as the runs parse it (`spec.sqlrefs.table_refs`, never a
regex). Nothing is run and no backend is opened, so `funnelops lineage` and the dashboard's
lineage page answer even before IaC.

The document (`funnelops lineage --json`, `/api/lineage`):
    {"nodes": [{"id", "kind", "label", "layer", "rank", "detail"}], "edges": [{"from", "to"}]}
`kind` is bucket, flow, table, sql or view; `id` is `<kind>:<name>` (tables and views by
`dataset.name`); `layer` the platform layer (raw, trusted, refined, reporting...); `rank` the
length of the longest path reaching the node (a column for drawing). Nodes are ordered by rank
then id, edges by (from, to): the same project always gives the same document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funnelops.errors import Problem, ProblemCollector, ProjectError
from funnelops.spec.project import LoadedProject

KINDS = ("bucket", "flow", "table", "sql", "view")


@dataclass
class _Graph:
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: set[tuple[str, str]] = field(default_factory=set)

    def node(self, kind: str, name: str, layer: str, detail: str = "", label: str | None = None) -> str:
        nid = f"{kind}:{name}"
        self.nodes.setdefault(nid, {"id": nid, "kind": kind, "label": label or name, "layer": layer,
                                    "detail": detail})
        return nid

    def edge(self, src: str, dst: str) -> None:
        if src != dst:
            self.edges.add((src, dst))


def collect_lineage(loaded: LoadedProject) -> dict[str, Any]:
    """The project's lineage graph (see the module's docstring). Raises ProjectError, naming the
    file and line, when a flow or a piece of SQL cannot be read or parsed (never a traceback)."""
    g = _Graph()
    _buckets(loaded, g)  # first: a node keeps the label and detail of its first mention
    relations = _relations(loaded, g)
    _trusted_flows(loaded, g)
    _refined_sql(loaded, g, relations)
    _views(loaded, g, relations)
    ranks = _ranks(g)
    nodes = sorted((dict(n, rank=ranks[n["id"]]) for n in g.nodes.values()), key=lambda n: (n["rank"], n["id"]))
    return {"nodes": nodes, "edges": [{"from": a, "to": b} for a, b in sorted(g.edges)]}


def _buckets(loaded: LoadedProject, g: _Graph) -> None:
    for b in loaded.spec.buckets:
        if b.role != "artifacts":  # funnelops' own objects: no data flows through it
            g.node("bucket", b.name, b.role, f"{b.role} bucket, {b.storage_class}")


def _relations(loaded: LoadedProject, g: _Graph) -> dict[str, str]:
    """Every declared table, external table and view as a node; address -> node id."""
    spec = loaded.spec
    out: dict[str, str] = {}
    for e in spec.external_tables:
        out[e.address] = g.node("table", e.address, "trusted", f"external table over {e.bucket}/{e.prefix}")
        g.edge(g.node("bucket", e.bucket, _role(loaded, e.bucket), "bucket"), out[e.address])
    for t in spec.tables:
        out[t.address] = g.node("table", t.address, _dataset_layer(loaded, t.dataset), t.description)
    for v in spec.views:
        where = v.query_file or "inline query"
        out[v.address] = g.node("view", v.address, _dataset_layer(loaded, v.dataset), f"view ({where})")
    return out


def _role(loaded: LoadedProject, bucket: str) -> str:
    return next((b.role for b in loaded.spec.buckets if b.name == bucket), "other")


def _dataset_layer(loaded: LoadedProject, dataset: str) -> str:
    """A dataset's `layer` label when it has one, else its id (funnel_refined -> refined)."""
    d = next((d for d in loaded.spec.datasets if d.id == dataset), None)
    if d is not None and d.labels.get("layer"):
        return d.labels["layer"]
    return dataset.rsplit("_", 1)[-1]


def _trusted_flows(loaded: LoadedProject, g: _Graph) -> None:
    """raw bucket -> flow (its FILES) -> the external table over its TARGET prefix (or the trusted
    bucket when no external table reads that prefix)."""
    from funnelops.spec.flow_checks import flow_paths, read_flow

    spec = loaded.spec
    raw, trusted = spec.bucket_for("raw"), spec.bucket_for("trusted")
    c = ProblemCollector()
    for path in flow_paths(loaded.base_dir):
        src = read_flow(path, c)
        if src is None:
            continue
        files, target = src.values.get("FILES"), src.values.get("TARGET")
        files_text = files if isinstance(files, str) else "files computed at run time"
        flow = g.node("flow", src.name, "trusted", f"reads {files_text}; writes "
                      + (f"{target}/" if isinstance(target, str) else "a table computed at run time"))
        if raw is not None:
            g.edge(g.node("bucket", raw.name, raw.role, ""), flow)
        if not isinstance(target, str):
            continue
        readers = [e for e in spec.external_tables if e.prefix.strip("/") == target
                   and (trusted is None or e.bucket == trusted.name)]
        for e in readers:
            g.edge(flow, f"table:{e.address}")
        if not readers and trusted is not None:
            g.edge(flow, g.node("bucket", trusted.name, trusted.role, ""))
    if c.problems:
        raise ProjectError(c.problems, "fix the trusted flow named above, then run `funnelops lineage` again")


def _refined_sql(loaded: LoadedProject, g: _Graph, relations: dict[str, str]) -> None:
    """table read -> refined SQL file -> each table its `-- target:` names (one per granularity)."""
    from funnelops.spec.refined_checks import refined_sources

    for src in refined_sources(loaded.base_dir):
        rel = _rel(loaded, src.path)
        node = g.node("sql", src.name, "refined", f"{rel}, replace {src.replace}")
        for ref in _refs(src.sql, src.path, 0, f"refined flow {src.name}.query"):
            g.edge(_relation(g, relations, ref), node)
        for address in sorted(set(src.targets().values())):
            g.edge(node, _relation(g, relations, address))


def _views(loaded: LoadedProject, g: _Graph, relations: dict[str, str]) -> None:
    """table or view read -> view."""
    for i, v in enumerate(loaded.spec.views):
        sql = loaded.view_sql.get(v.address)
        if sql is None:
            continue
        if v.query_file:
            file, offset = loaded.base_dir / v.query_file, 0
        else:
            file, offset = loaded.path, (loaded.line_of(("views", i, "query")) or 1) - 1
        for ref in _refs(sql, file, offset, f"views[{v.name}].query"):
            g.edge(_relation(g, relations, ref), relations[v.address])


def _refs(sql: str, file: Path, offset: int, where: str) -> tuple[str, ...]:
    """The tables `sql` reads; SQL that does not parse (or is not one read-only query) is a
    ProjectError naming the file and line, as `validate` reports it."""
    from funnelops.spec.sql_safety import problem_message
    from funnelops.spec.sqlrefs import SqlError, table_refs

    try:
        return table_refs(sql)
    except SqlError as exc:
        line = getattr(exc, "line", None)
        raise ProjectError([Problem(str(file), (line + offset) if line else (offset or None), where,
                                    problem_message(exc, with_line=False),
                                    "project SQL is one SELECT (WITH ... allowed) over dataset.table names")],
                           "fix the SQL named above (`funnelops validate` checks it), then run "
                           "`funnelops lineage` again") from None


def _relation(g: _Graph, relations: dict[str, str], address: str) -> str:
    """The node of a table or view; one the project does not declare is shown as such, not hidden."""
    if address in relations:
        return relations[address]
    relations[address] = g.node("table", address, "undeclared", "not declared by the project")
    return relations[address]


def _rel(loaded: LoadedProject, path: Path) -> str:
    try:
        return path.relative_to(loaded.base_dir).as_posix()
    except ValueError:
        return str(path)


def _ranks(g: _Graph) -> dict[str, int]:
    """Longest path to each node, never below its kind's column (bucket 0, flow 1, trusted table 2,
    SQL 3, refined table 4, view 5), so a SQL file that reads nothing still sits with the SQL.
    Bounded by the node count, so a cycle (which validate refuses for views) cannot loop forever."""
    floor = {"bucket": 0, "flow": 1, "table": 4, "sql": 3, "view": 5}
    rank = {nid: 2 if n["kind"] == "table" and n["layer"] in ("trusted", "undeclared") else floor[n["kind"]]
            for nid, n in g.nodes.items()}
    for _ in range(len(g.nodes)):
        changed = False
        for a, b in sorted(g.edges):
            if rank[b] < rank[a] + 1:
                rank[b] = rank[a] + 1
                changed = True
        if not changed:
            break
    return rank
