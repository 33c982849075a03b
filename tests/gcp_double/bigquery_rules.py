"""BigQuery rules the discovery schemas cannot express: what the real service refuses.

Kept apart from the handlers in :mod:`.bigquery` so each stays small. Every rule here is one
funnelops must plan around (a non-additive schema change or a new partitioning spec means a
replace; views may only read tables that exist).
"""

from __future__ import annotations

import copy
import re
from typing import Any
from collections.abc import Callable

from .common import bad_request

_TYPES = {"STRING", "BYTES", "INTEGER", "INT64", "FLOAT", "FLOAT64", "NUMERIC", "BIGNUMERIC",
          "BOOLEAN", "BOOL", "TIMESTAMP", "DATE", "TIME", "DATETIME", "GEOGRAPHY", "RECORD",
          "STRUCT", "JSON", "RANGE", "INTERVAL", "DECIMAL", "BIGDECIMAL"}
_ALIASES = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD",
            "DECIMAL": "NUMERIC", "BIGDECIMAL": "BIGNUMERIC"}

def norm(kind: str) -> str:
    return _ALIASES.get(kind.upper(), kind.upper())


def check_fields(fields: list[dict[str, Any]], where: str) -> None:
    seen: set[str] = set()
    for f in fields:
        name = f.get("name", "")
        if name.lower() in seen:
            raise bad_request(f"Duplicate column name {where}{name}")
        seen.add(name.lower())
        if f.get("type", "").upper() not in _TYPES:
            raise bad_request(f"Invalid type {f.get('type')!r} for field {where}{name}")
        if f.get("mode", "NULLABLE") not in ("NULLABLE", "REQUIRED", "REPEATED"):
            raise bad_request(f"Invalid mode {f.get('mode')!r} for field {where}{name}")
        if norm(f["type"]) == "RECORD":
            if not f.get("fields"):
                raise bad_request(f"Field {where}{name} is a RECORD without fields")
            check_fields(f["fields"], f"{where}{name}.")


def check_evolution(old: dict[str, Any], new: dict[str, Any]) -> None:
    """Only additive schema changes are allowed in place; anything else needs a replace."""
    def walk(before: list[dict[str, Any]], after: list[dict[str, Any]], where: str) -> None:
        now = {f["name"].lower(): f for f in after}
        for f in before:
            g = now.get(f["name"].lower())
            label = f"{where}{f['name']}"
            if g is None:
                raise bad_request(f"Provided Schema does not match Table. Field {label} is missing "
                                  "in new schema")
            if norm(f["type"]) != norm(g["type"]):
                raise bad_request(f"Provided Schema does not match Table. Field {label} has "
                                  f"changed type from {f['type']} to {g['type']}")
            m1, m2 = f.get("mode", "NULLABLE"), g.get("mode", "NULLABLE")
            if m1 != m2 and not (m1 == "REQUIRED" and m2 == "NULLABLE"):
                raise bad_request(f"Provided Schema does not match Table. Field {label} has "
                                  f"changed mode from {m1} to {m2}")
            if norm(f["type"]) == "RECORD":
                walk(f.get("fields") or [], g.get("fields") or [], label + ".")
        known = {f["name"].lower() for f in before}
        for g in after:
            if g["name"].lower() not in known and g.get("mode") == "REQUIRED":
                raise bad_request(f"Provided Schema does not match Table. Cannot add required "
                                  f"field {where}{g['name']}")

    if "schema" in new and old.get("schema"):
        walk(old["schema"].get("fields") or [], (new.get("schema") or {}).get("fields") or [], "")
    p1, p2 = old.get("timePartitioning"), new.get("timePartitioning")
    spec = (lambda p: None if not p else (p.get("type"), p.get("field")))
    if spec(p1) != spec(p2):
        raise bad_request("Cannot change partitioning spec of an existing table "
                          f"(from {spec(p1)} to {spec(p2)}); it needs a replace")


def merge(cur: dict[str, Any], body: dict[str, Any], immutable: tuple[str, ...], *,
           replace: bool) -> dict[str, Any]:
    """PATCH: sent fields replace, labels merge (null deletes one), null clears a field.
    PUT: every mutable field not sent is cleared."""
    new = copy.deepcopy(cur)
    if replace:
        for key in list(new):
            if key not in immutable and key not in body and key not in ("etag", "lastModifiedTime",
                                                                         "numRows", "numBytes"):
                del new[key]
    for key, val in body.items():
        if key in immutable:
            continue
        if key == "labels" and val is not None and not replace:
            labels = dict(new.get("labels") or {})
            for lk, lv in val.items():
                if lv is None:
                    labels.pop(lk, None)
                else:
                    labels[lk] = lv
            new["labels"] = labels
        elif val is None:
            new.pop(key, None)
        else:
            new[key] = copy.deepcopy(val)
    return new


def label_filter(text: str | None) -> Callable[[dict[str, str]], bool]:
    """datasets.list ``filter``: ``labels.KEY[:VALUE]`` terms, space separated (all must hold)."""
    terms = []
    for term in (text or "").split():
        m = re.fullmatch(r"labels\.([^:]+)(?::(.*))?", term)
        if not m:
            raise bad_request(f"Invalid filter {text!r}: use labels.KEY[:VALUE]")
        terms.append((m.group(1), m.group(2)))
    return lambda labels: all(k in labels and (v is None or labels[k] == v) for k, v in terms)


def referenced_tables(sql: str) -> list[str]:
    """Tables a GoogleSQL query reads (CTEs excluded), via sqlglot when it is installed."""
    try:
        import sqlglot
        from sqlglot import exp
    except ImportError:
        return []
    try:
        tree = sqlglot.parse_one(sql, read="bigquery")
    except sqlglot.errors.ParseError:
        return []  # sqlglot is not BigQuery: do not invent syntax errors
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    out = []
    for t in tree.find_all(exp.Table):
        name = t.name
        if not name or "*" in name or (not t.db and name.lower() in ctes):
            continue
        parts = [p for p in (t.catalog, t.db, name) if p]
        if any(p.upper() == "INFORMATION_SCHEMA" for p in parts):
            continue
        out.append(".".join(parts))
    return out
