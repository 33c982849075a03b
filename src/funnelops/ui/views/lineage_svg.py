"""Where each lineage node and edge goes in the page's SVG (drawn by `lineage.html`, escaped there).

Top to bottom, one row per step of the data (buckets -> flows -> tables -> SQL -> tables -> views):
a project has few steps and several nodes per step, so rows fit a screen where columns ran off its
right edge. A node's row is its `rank` (the longest path reaching it, from
`funnelops.lifecycle.lineage`), else its kind's place; a source node (nothing reaches it) sits just
above the nearest row it feeds, so the trusted bucket is drawn between the flows and the tables
it holds instead of above the flows its edges would cross. Within a row, nodes follow the mean
place of what feeds them (fewer crossings). The layout only tolerates what it is given: a node
without an id is left out, a missing label shows the id, an unknown kind goes last, an edge to an
unknown node is dropped, so a partial document still draws.
"""

from __future__ import annotations

from typing import Any

KINDS = ("bucket", "flow", "table", "sql", "view")
TITLES = {"bucket": "buckets", "flow": "flows", "table": "tables", "sql": "SQL", "view": "views"}
NODE_W, NODE_H, GAP_X, GAP_Y, PAD, HEAD_W = 206, 34, 12, 44, 16, 122
MAX_LABEL = 30


def layout(doc: dict[str, Any] | None) -> dict[str, Any]:
    """Boxes, curves and the canvas size for the lineage document `doc` ({"nodes", "edges"})."""
    nodes = [n for n in (doc or {}).get("nodes") or [] if isinstance(n, dict) and n.get("id") not in (None, "")]
    ids = {str(n["id"]) for n in nodes}
    links = [(str(e.get("from")), str(e.get("to"))) for e in (doc or {}).get("edges") or []
             if isinstance(e, dict) and str(e.get("from")) in ids and str(e.get("to")) in ids]
    row_of = _rows(nodes, links)
    rows: dict[int, list[dict[str, Any]]] = {}
    for n in nodes:
        rows.setdefault(row_of[str(n["id"])], []).append(n)
    placed: dict[str, dict[str, Any]] = {}
    heads = []
    for ri, r in enumerate(sorted(rows)):
        y = PAD + ri * (NODE_H + GAP_Y)
        kinds = sorted({str(n.get("kind") or "other") for n in rows[r]}, key=_kind_index)
        heads.append({"x": PAD, "y": y + NODE_H // 2 + 4, "title": " / ".join(TITLES.get(k, k) for k in kinds)})
        for ci, n in enumerate(_ordered(rows[r], links, placed)):
            label = str(n.get("label") or n["id"])
            placed[str(n["id"])] = {
                "id": str(n["id"]), "kind": str(n.get("kind") or "other"), "label": label,
                "short": label if len(label) <= MAX_LABEL else label[:MAX_LABEL - 1] + "…",
                "detail": str(n.get("detail") or ""), "layer": str(n.get("layer") or ""),
                "x": PAD + HEAD_W + ci * (NODE_W + GAP_X), "y": y, "w": NODE_W, "h": NODE_H}
    edges = []
    for a_id, b_id in links:
        a, b = placed[a_id], placed[b_id]
        x1, y1 = a["x"] + a["w"] / 2, a["y"] + a["h"]
        x2, y2 = b["x"] + b["w"] / 2, b["y"]
        bend = max(abs(y2 - y1) / 2, 18)
        edges.append({"from": a_id, "to": b_id,
                      "d": f"M{x1:.0f},{y1:.0f} C{x1:.0f},{y1 + bend:.0f} {x2:.0f},{y2 - bend:.0f} {x2:.0f},{y2:.0f}"})
    widest = max((len(r) for r in rows.values()), default=1)
    width = PAD * 2 + HEAD_W + widest * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max(len(rows), 1) * (NODE_H + GAP_Y) - GAP_Y
    return {"width": width, "height": height, "heads": heads, "nodes": list(placed.values()), "edges": edges}


def _rows(nodes: list[dict[str, Any]], links: list[tuple[str, str]]) -> dict[str, int]:
    """Each node's row: its rank (else its kind's place); a source node just above its nearest target."""
    row = {str(n["id"]): _rank(n) for n in nodes}
    fed = {b for _, b in links}
    for n in nodes:
        nid = str(n["id"])
        targets = [row[b] for a, b in links if a == nid]
        if nid not in fed and targets:
            row[nid] = max(row[nid], min(targets) - 1)
    return row


def _ordered(row: list[dict[str, Any]], links: list[tuple[str, str]],
             placed: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The row's nodes by the mean x of what feeds them (nodes fed by nothing placed keep their order, last)."""
    def key(item: tuple[int, dict[str, Any]]) -> tuple[float, int]:
        i, n = item
        xs = [placed[a]["x"] for a, b in links if b == str(n["id"]) and a in placed]
        return (sum(xs) / len(xs) if xs else float("inf"), i)

    return [n for _, n in sorted(enumerate(row), key=key)]


def _kind_index(kind: str) -> int:
    return KINDS.index(kind) if kind in KINDS else len(KINDS)


def _rank(node: dict[str, Any]) -> int:
    rank = node.get("rank")
    if isinstance(rank, int) and not isinstance(rank, bool) and rank >= 0:
        return rank
    return _kind_index(str(node.get("kind") or "other"))
