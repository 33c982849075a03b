"""`funnelops lineage`: where each table's and view's data comes from, as the project declares it."""

from __future__ import annotations

from typing import Any

import typer

from funnelops.cli.context import esc, get_ctx

HELP = """Show the project's lineage: buckets -> trusted flows -> tables -> refined SQL -> views.

Read from the project alone (nothing runs, no backend is opened): the raw bucket each trusted flow
reads (its FILES), the external table over the trusted prefix it writes (its TARGET), the tables
each refined SQL file reads (its query, parsed) and writes (its `-- target:`), and the tables and
views each view reads. Shown as a tree from the sources; a node met again is marked "(see above)".

\b
--json: {nodes: [{id, kind, label, layer, rank, detail}], edges: [{from, to}]}; kind is bucket,
flow, table, sql or view; id is KIND:NAME. The same document as the dashboard's /api/lineage.
Exit codes: 0 ok, 2 invalid project (a flow or SQL that cannot be read, named with its line).
"""


def register(app: typer.Typer) -> None:
    app.command("lineage", help=HELP)(lineage)


def lineage(ctx: typer.Context) -> None:
    from funnelops.lifecycle.lineage import collect_lineage

    app = get_ctx(ctx)
    doc = collect_lineage(app.project)
    if app.as_json:
        app.console.emit(doc)
        return
    app.console.print(*lineage_lines(doc))


def lineage_lines(doc: dict[str, Any]) -> list[str]:
    """The graph as a tree from its sources (rich markup; every name escaped)."""
    nodes = {n["id"]: n for n in doc["nodes"]}
    children: dict[str, list[str]] = {nid: [] for nid in nodes}
    has_parent: set[str] = set()
    for e in doc["edges"]:
        children[e["from"]].append(e["to"])
        has_parent.add(e["to"])
    lines = [f"[bold]Lineage[/]: {len(nodes)} nodes, {len(doc['edges'])} edges"]
    seen: set[str] = set()

    def walk(nid: str, prefix: str, last: bool, top: bool) -> None:
        n = nodes[nid]
        branch = "" if top else ("└── " if last else "├── ")
        again = nid in seen
        text = f"[dim]{n['kind']}[/] {esc(n['label'])}"
        if again:
            lines.append(f"{prefix}{branch}{text} [dim](see above)[/]")
            return
        detail = f"  [dim]{esc(n['detail'])}[/]" if n.get("detail") else ""
        lines.append(f"{prefix}{branch}{text}{detail}")
        seen.add(nid)
        inner = prefix if top else prefix + ("    " if last else "│   ")
        kids = children[nid]
        for i, kid in enumerate(kids):
            walk(kid, inner, i == len(kids) - 1, False)

    for nid in nodes:  # sources first, in the document's order (rank, then id)
        if nid not in has_parent:
            walk(nid, "", True, True)
    for nid in nodes:  # a cycle has no source: show what is left rather than hide it
        if nid not in seen:
            walk(nid, "", True, True)
    return lines
