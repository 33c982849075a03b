"""Check a plan against the live warehouse before apply touches anything.

Two things only the live catalog can tell, found here so that an apply never half-applies:

* a create whose name is already taken in DuckDB (names ignore case there, and the object may be
  one funnelops does not manage): the create would fail midway (it never drops anything);
* a view that does not bind (an unknown column, a table of the wrong shape): `CREATE VIEW`
  would fail midway, after the changes before it were made.

The views are bound in a private, confined in-memory DuckDB that mirrors the catalog: every
live table and view becomes an empty table with its columns, then the plan's changes are played
in plan order (tables with their new schema, external tables over their Parquet, views with
their transpiled SQL). Nothing is written to the warehouse; only its catalog is read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from funnelops.backends.local.warehouse import SYSTEM_SCHEMAS, ExternalTableHandler, column_ddl, q, rel
from funnelops.backends.local.warehouse_conn import confined_memory, home_dirs
from funnelops.errors import BackendError

if TYPE_CHECKING:
    from funnelops.backends.local.warehouse import LocalWarehouse
    from funnelops.plan.model import Change, Plan

RELATIONS = ("table", "external_table", "view")
WAREHOUSE_KINDS = ("dataset",) + RELATIONS


def check_plan(wh: LocalWarehouse, plan: Plan) -> None:
    """Raise BackendError naming every create or view the warehouse would refuse; else nothing."""
    todo = [c for c in plan.mutating() if c.kind in WAREHOUSE_KINDS and c.action != "delete"]
    if not todo:
        return
    snap = wh.snapshot()
    problems = name_collisions(snap, plan)
    if not problems and any(c.kind == "view" for c in todo):
        problems = bind_views(wh, snap, plan)
    if problems:
        raise BackendError("the plan cannot be applied; nothing was changed:\n  " + "\n  ".join(problems),
                           "fix the project (or the warehouse object named) and plan again")


def name_collisions(snap: dict[str, Any], plan: Plan) -> list[str]:
    """Creates whose name DuckDB already holds (compared without case), unless the plan drops it first."""
    dropped = {c.name.lower() for c in plan.mutating() if c.action == "delete" and c.kind in WAREHOUSE_KINDS}
    live = {a.lower(): (a, "table") for a in snap["tables"]}
    live.update({a.lower(): (a, "view") for a in snap["views"]})
    schemas = {s.lower(): s for s in snap["schemas"]}
    out = []
    for c in plan.mutating():
        if c.action != "create" or c.name.lower() in dropped:
            continue
        if c.kind == "dataset":
            have = schemas.get(c.name.lower())
            if have is not None and have != c.name:
                out.append(f"dataset {c.name}: the warehouse already holds the schema '{have}' "
                           "(DuckDB names ignore case); rename the dataset")
        elif c.kind in RELATIONS and c.name.lower() in live:
            have, what = live[c.name.lower()]
            same = " (DuckDB names ignore case)" if have != c.name else ""
            out.append(f"{c.kind} {c.name}: the warehouse already holds the {what} '{have}'{same}, which "
                       f"funnelops does not manage here; a create never replaces it: rename one of them")
    return out


def bind_views(wh: LocalWarehouse, snap: dict[str, Any], plan: Plan) -> list[str]:
    """Play the plan on a mirror of the catalog; the problems of the views that do not bind."""
    import duckdb

    con = confined_memory(home_dirs(wh.path.parent), wh.time_zone)
    try:
        _mirror(con, snap)
        # what the mirror holds, lower-cased: a create of a new name needs no catalog lookup
        present = {a.lower() for a in snap["columns"]}
        failed: set[str] = set()
        problems: list[str] = []
        for c in plan.changes:
            if c.action not in ("create", "update", "replace", "delete"):
                continue
            if any(d in failed for d in c.depends_on):
                failed.add(c.address)  # reported through what it reads
                continue
            try:
                _play(con, wh, c, present)
            except duckdb.Error as exc:
                failed.add(c.address)
                first = (str(exc).splitlines() or [type(exc).__name__])[0]
                problems.append(f"{c.kind} {c.name} does not bind: {first}")
            except BackendError as exc:  # a view's SQL refused by the safety check
                failed.add(c.address)
                problems.append(exc.message)
        return problems
    finally:
        con.close()


def _mirror(con, snap: dict[str, Any]) -> None:
    """Every live schema; every live table and view as an empty table with the same columns."""
    for schema in sorted(snap["schemas"]):
        if schema not in SYSTEM_SCHEMAS:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {q(schema)}")
    for address, cols in sorted(snap["columns"].items()):
        if address.split(".", 1)[0] in SYSTEM_SCHEMAS or not cols:
            continue
        typed = ", ".join(f"{q(c['name'])} {c['type']}" for c in cols)
        try:
            con.execute(f"CREATE TABLE {rel(address)} ({typed})")
        except Exception:
            con.execute(f"CREATE TABLE {rel(address)} ({', '.join(q(c['name']) + ' VARCHAR' for c in cols)})")


def _drop_any(con, address: str) -> None:
    schema, name = address.split(".", 1)
    row = con.execute("SELECT 'TABLE' FROM duckdb_tables() WHERE lower(schema_name) = lower(?) AND "
                      "lower(table_name) = lower(?) UNION ALL SELECT 'VIEW' FROM duckdb_views() WHERE NOT internal "
                      "AND lower(schema_name) = lower(?) AND lower(view_name) = lower(?)",
                      [schema, name, schema, name]).fetchone()
    if row:
        con.execute(f"DROP {row[0]} {rel(address)}")


def _play(con, wh: LocalWarehouse, c: Change, present: set[str]) -> None:
    """One change, as the handlers would make it, on the mirror (`present`: its names, kept current)."""
    from funnelops.backends.local.warehouse import ViewHandler

    if c.kind == "dataset":
        if c.action == "delete":
            con.execute(f"DROP SCHEMA IF EXISTS {q(c.name)} CASCADE")
            present.difference_update({a for a in present if a.split(".", 1)[0] == c.name.lower()})
        else:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {q(c.name)}")
        return
    if c.kind not in RELATIONS:
        return
    if c.name.lower() in present:
        _drop_any(con, c.name)
        present.discard(c.name.lower())
    if c.action == "delete" or c.resource is None:
        return
    present.add(c.name.lower())
    if c.kind == "table":
        cols = ", ".join(column_ddl(col) for col in c.resource.config["schema"])
        con.execute(f"CREATE TABLE {rel(c.name)} ({cols})")
    elif c.kind == "external_table":
        con.execute(f"CREATE VIEW {rel(c.name)} AS {ExternalTableHandler(wh).select_sql(c.resource)}")
    else:
        con.execute(f"CREATE VIEW {rel(c.name)} AS {ViewHandler(wh).select_sql(c.resource)}")
