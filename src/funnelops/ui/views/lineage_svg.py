"""Where each lineage node and edge goes in the page's SVG (drawn by `lineage.html`, escaped there).

Columns follow the data: a node's `rank` (the longest path reaching it, from
`funnelops.lifecycle.lineage`) when it has one, else its kind's place in buckets -> flows ->
tables -> SQL -> views. The layout only tolerates what it is given: a node without an id is left
out, a missing label shows the id, an unknown kind goes last, an edge to an unknown node is
dropped, so a partial document still draws.
"""

from __future__ import annotations

from typing import Any

KINDS = ("bucket", "flow", "table", "sql", "view")
TITLES = {"bucket": "buckets", "flow": "flows", "table": "tables", "sql": "SQL", "view": "views"}
NODE_W, NODE_H, GAP_X, GAP_Y, PAD, HEAD = 210, 34, 70, 12, 16, 28
MAX_LABEL = 30


def layout(doc: dict[str, Any] | None) -> dict[str, Any]:
    """Boxes, curves and the canvas size for the lineage document `doc` ({"nodes", "edges"})."""
    nodes = [n for n in (doc or {}).get("nodes") or [] if isinstance(n, dict) and n.get("id") not in (None, "")]
    columns: dict[int, list[dict[str, Any]]] = {}
    for n in nodes:
        columns.setdefault(_column(n), []).append(n)
    placed: dict[str, dict[str, Any]] = {}
    heads = []
    for ci, col in enumerate(sorted(columns)):
        x = PAD + ci * (NODE_W + GAP_X)
        kinds = sorted({str(n.get("kind") or "other") for n in columns[col]}, key=_kind_index)
        heads.append({"x": x, "title": " / ".join(TITLES.get(k, k) for k in kinds)})
        for ri, n in enumerate(columns[col]):
            label = str(n.get("label") or n["id"])
            placed[str(n["id"])] = {
                "id": str(n["id"]), "kind": str(n.get("kind") or "other"), "label": label,
                "short": label if len(label) <= MAX_LABEL else label[:MAX_LABEL - 1] + "…",
                "detail": str(n.get("detail") or ""), "layer": str(n.get("layer") or ""),
                "x": x, "y": PAD + HEAD + ri * (NODE_H + GAP_Y), "w": NODE_W, "h": NODE_H}
    edges = []
    for e in (doc or {}).get("edges") or []:
        if not isinstance(e, dict):
            continue
        a, b = placed.get(str(e.get("from"))), placed.get(str(e.get("to")))
        if a is None or b is None:
            continue
        x1, y1 = a["x"] + a["w"], a["y"] + a["h"] / 2
        x2, y2 = b["x"], b["y"] + b["h"] / 2
        bend = max(abs(x2 - x1) / 2, 40)
        edges.append({"from": a["id"], "to": b["id"],
                      "d": f"M{x1:.0f},{y1:.0f} C{x1 + bend:.0f},{y1:.0f} {x2 - bend:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"})
    rows = max((len(c) for c in columns.values()), default=0)
    width = PAD * 2 + max(len(columns), 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + HEAD + max(rows, 1) * (NODE_H + GAP_Y)
    return {"width": width, "height": height, "heads": heads, "nodes": list(placed.values()), "edges": edges}


def _kind_index(kind: str) -> int:
    return KINDS.index(kind) if kind in KINDS else len(KINDS)


def _column(node: dict[str, Any]) -> int:
    rank = node.get("rank")
    if isinstance(rank, int) and not isinstance(rank, bool) and rank >= 0:
        return rank
    return _kind_index(str(node.get("kind") or "other"))
