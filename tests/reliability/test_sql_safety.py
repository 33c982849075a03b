"""Hostile SQL and colliding names: nothing a project's SQL says may drop, write or read outside.

Attacks (issue #9, items 1, 2 and 17): a view that is really two statements (`SELECT 1; DROP
TABLE`), `COPY ... TO` anywhere, `read_csv('/etc/passwd')`, `SELECT ... INTO`, a refined SQL file
doing the same, a table whose name differs from a protected one only by case, and a view that
does not bind half-applying a plan. Each apply-time attack checks that the protected table
still holds its rows.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import duckdb
import pytest

from funnelops.backends.local import LocalBackend
from funnelops.backends.local.warehouse_conn import confined_memory, home_dirs, warehouse
from funnelops.errors import BackendError, ProjectError
from funnelops.lifecycle.infra import create_infra
from funnelops.plan.apply import apply_plan
from funnelops.plan.diff import build_plan
from funnelops.resources import Resource
from funnelops.spec import sqlrefs
from funnelops.spec.loader import load_project
from funnelops.spec.sql_safety import UnsafeSql, parse_query

pytestmark = pytest.mark.reliability

ATTACK = "SELECT 1 AS a; DROP TABLE refined.keepme"

PROJECT = """\
project:
  id: demo-project
buckets:
  - name: demo-trusted
datasets:
  - id: refined
  - id: reporting
tables:
  - dataset: refined
    name: keepme
    schema: [{name: day, type: DATE}, {name: n, type: INT64}]
    deletion_protection: true
%(tables)s
views:
  - dataset: reporting
    name: v_keep
    query: %(query)s
%(views)s
"""


def project_text(query: str = "SELECT day, n FROM refined.keepme", tables: str = "", views: str = "") -> str:
    return PROJECT % {"query": json.dumps(query), "tables": tables, "views": views}


def write(proj: Path, text: str, files: dict[str, str] | None = None) -> Path:
    proj.mkdir(parents=True, exist_ok=True)
    for rel, body in (files or {}).items():
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / rel).write_text(body, encoding="utf-8")
    path = proj / "funnel.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str) -> int:
    return next(i + 1 for i, line in enumerate(text.splitlines()) if needle in line)


def problems_of(path: Path) -> list:
    with pytest.raises(ProjectError) as info:
        load_project(path)
    return info.value.problems


@pytest.fixture
def applied(tmp_path: Path):
    """A home where the project is applied and the protected table holds 5 rows."""
    path = write(tmp_path / "proj", project_text())
    loaded = load_project(path)
    home = tmp_path / "home"
    backend = LocalBackend.for_project(loaded, home)
    create_infra(loaded, backend, "IaC", actor="test")
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("INSERT INTO refined.keepme SELECT DATE '2024-01-01' + i::INT, i FROM range(5) t(i)")
    con.close()
    return loaded, backend, home, tmp_path


def keepme_rows(home: Path) -> int:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM refined.keepme").fetchone()[0]
    finally:
        con.close()


# -- item 1: validate refuses anything but one query, located -----------------------------------
@pytest.mark.parametrize("query, says", [
    (ATTACK, "2 statements"),
    ("COPY (SELECT 1) TO '/tmp/escape.csv'", "not a query"),
    ("SELECT * FROM read_csv('/etc/passwd')", "table function"),
    ("SELECT * FROM refined.keepme WHERE n IN (SELECT 1 FROM read_parquet('/x/*.parquet'))", "table function"),
    ("SELECT * FROM EXTERNAL_QUERY('conn', 'SELECT 1')", "table function"),
    ("SELECT 1 AS a INTO refined.stolen", "INTO"),
    ("SELECT * FROM `/etc/passwd`", "dataset.table"),
])
def test_validate_refuses_a_view_that_is_not_one_query(tmp_path: Path, query: str, says: str) -> None:
    text = project_text(query)
    (p,) = problems_of(write(tmp_path, text))
    assert p.field == "views[v_keep].query"
    assert p.line == line_of(text, "query:")
    assert says in p.message


def test_validate_names_the_file_and_line_of_a_query_file(tmp_path: Path) -> None:
    text = project_text().replace('query: "SELECT day, n FROM refined.keepme"', "query_file: sql/v.sql")
    sql = "-- a harmless view\nSELECT day FROM refined.keepme;\nCOPY refined.keepme TO '/tmp/out.csv'\n"
    (p,) = problems_of(write(tmp_path, text, {"sql/v.sql": sql}))
    assert p.line == line_of(text, "query_file:") and p.field == "views[v_keep].query"
    assert "sql/v.sql:3: the SQL holds 2 statements" in p.message


def test_validate_refuses_a_refined_sql_file_that_is_not_one_query(tmp_path: Path) -> None:
    refined = ("-- target: refined.keepme\n-- replace: all\nSELECT DATE '2024-01-01' AS day, 1 AS n;\n"
               "DELETE FROM refined.keepme WHERE TRUE\n")
    (p,) = problems_of(write(tmp_path, project_text(), {"sql/refined/evil.sql": refined}))
    assert p.file == str(tmp_path / "sql" / "refined" / "evil.sql")
    assert p.line == 4 and p.field == "refined flow evil" and "2 statements" in p.message


def test_validate_refuses_a_refined_sql_file_reading_a_file(tmp_path: Path) -> None:
    refined = "-- target: refined.keepme\nSELECT * FROM\n  read_csv('/etc/passwd')\n"
    (p,) = problems_of(write(tmp_path, project_text(), {"sql/refined/evil.sql": refined}))
    assert p.line == 3 and "table function" in p.message


def test_a_stale_cache_entry_cannot_vouch_for_an_attack(tmp_path: Path, monkeypatch) -> None:
    """The references cache of the old format said the attack was fine: it is never read now."""
    from importlib.metadata import version

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"sqlrefs-{version('sqlglot')}.json").write_text(
        json.dumps({sqlrefs._RefsCache.key(ATTACK): ["refined.keepme"]}))
    monkeypatch.setenv("FUNNELOPS_CACHE_DIR", str(cache))
    monkeypatch.delenv("FUNNELOPS_NO_CACHE", raising=False)
    monkeypatch.setattr(sqlrefs, "_cache", sqlrefs._RefsCache())
    sqlrefs.table_refs.cache_clear()
    (p,) = problems_of(write(tmp_path / "proj", project_text(ATTACK)))
    assert "2 statements" in p.message


def test_the_shipped_project_sql_passes() -> None:
    root = Path(__file__).resolve().parents[2] / "projects" / "funnel"
    for path in sorted(root.glob("sql/*/*.sql")):
        parse_query(path.read_text(encoding="utf-8"))
        sqlrefs.to_duckdb(path.read_text(encoding="utf-8"))


# -- item 1: the execution-time guards -------------------------------------------------------------
def test_view_handler_refuses_the_attack_and_the_table_keeps_its_rows(applied) -> None:
    loaded, backend, home, _ = applied
    evil = Resource("view", "reporting.v_evil", {"query": ATTACK, "description": "", "labels": {}},
                    ("dataset.reporting",))
    with pytest.raises(BackendError, match="2 statements"):
        backend.handler("view").create(evil)
    assert keepme_rows(home) == 5


def test_a_plan_carrying_the_attack_is_refused_before_any_change(applied) -> None:
    """Validate was bypassed (the plan was tampered with): pre-flight refuses it, nothing runs."""
    loaded, backend, home, tmp = applied
    plan = build_plan(loaded, backend, "iac")
    view = next(c for c in plan.changes if c.kind == "view")
    bad = dataclasses.replace(view, action="update", resource=dataclasses.replace(
        view.resource, config={**view.resource.config, "query": ATTACK}))
    plan = dataclasses.replace(plan, changes=tuple(bad if c is view else c for c in plan.changes))
    with pytest.raises(BackendError, match="2 statements"):
        apply_plan(plan, backend)
    assert keepme_rows(home) == 5


@pytest.mark.parametrize("sql", ["SELECT 1 AS a;\n-- the end\n", "WITH w AS (SELECT 1 AS a) SELECT a FROM w;",
                                 "SELECT x FROM UNNEST([1, 2]) AS x", "SELECT a FROM d.t, LATERAL (SELECT 1 AS b)",
                                 "(SELECT 1 AS a) UNION ALL (SELECT 2)", "SELECT * FROM (VALUES (1)) AS v(a)"])
def test_one_query_with_comments_ctes_unnest_and_unions_passes(sql: str) -> None:
    parse_query(sql)
    sqlrefs.to_duckdb(sql)


def test_to_duckdb_refuses_what_parses_as_two_statements() -> None:
    for sql in (ATTACK, "COPY (SELECT 1) TO '/tmp/x.csv'", "SELECT * FROM read_text('/etc/hostname')"):
        with pytest.raises(UnsafeSql):
            sqlrefs.to_duckdb(sql)


def test_warehouse_connections_cannot_reach_outside_the_home(applied) -> None:
    _, _, home, tmp = applied
    outside = tmp / "escape.csv"
    (home / "buckets" / "demo-trusted").mkdir(parents=True, exist_ok=True)
    inside = home / "buckets" / "demo-trusted" / "ok.parquet"
    with warehouse(home / "warehouse.duckdb", write=True) as con:
        for sql in (f"COPY (SELECT 1) TO '{outside}'", "SELECT * FROM read_csv('/etc/passwd')",
                    f"ATTACH '{tmp / 'other.duckdb'}' AS other", "SET enable_external_access = true",
                    "SET allowed_directories = ['/']", "INSTALL httpfs", "LOAD httpfs"):
            with pytest.raises(duckdb.Error):
                con.execute(sql)
        con.execute(f"COPY (SELECT 1 AS x) TO '{inside}' (FORMAT parquet)")  # the buckets stay usable
        assert con.execute(f"SELECT x FROM read_parquet('{inside}')").fetchall() == [(1,)]
        assert con.execute("SELECT count(*) FROM refined.keepme").fetchone()[0] == 5
    with warehouse(home / "warehouse.duckdb", write=False) as con:
        with pytest.raises(duckdb.Error):
            con.execute("SELECT * FROM read_text('/etc/hostname')")
    assert not outside.exists() and not (tmp / "other.duckdb").exists()


def test_refined_flows_memory_connection_is_confined(tmp_path: Path) -> None:
    home = tmp_path / "home"
    con = confined_memory(home_dirs(home), "America/Bogota")
    try:
        with pytest.raises(duckdb.Error):
            con.execute(f"COPY (SELECT 1) TO '{tmp_path / 'escape.csv'}'")
        with pytest.raises(duckdb.Error):
            con.execute("SELECT * FROM read_csv('/etc/passwd')")
        (home / "tmp").mkdir(parents=True)
        con.execute(f"COPY (SELECT 1 AS x) TO '{home / 'tmp' / 'staged.parquet'}' (FORMAT parquet)")
    finally:
        con.close()
    assert not (tmp_path / "escape.csv").exists()


# -- item 2: names equal but for case -------------------------------------------------------------
CASE_TABLE = "  - dataset: refined\n    name: KeepMe\n    schema: [{name: x, type: STRING}]\n"


def test_validate_refuses_a_table_differing_only_by_case(tmp_path: Path) -> None:
    text = project_text(tables=CASE_TABLE)
    (p,) = problems_of(write(tmp_path, text))
    assert p.field == "tables[KeepMe]" and p.line == line_of(text, "name: KeepMe")
    assert "only by case" in p.message and "refined.keepme" in p.message


def test_validate_refuses_case_collisions_across_kinds_and_datasets(tmp_path: Path) -> None:
    text = project_text(views="  - {dataset: Refined, name: x, query: SELECT 1 AS a}\n"
                              "  - {dataset: reporting, name: V_KEEP, query: SELECT 1 AS a}\n"
                              ).replace("  - id: reporting\n", "  - id: reporting\n  - id: Refined\n  - id: main\n")
    problems = problems_of(write(tmp_path, text))
    got = {(p.field, "only by case" in p.message or "reserves" in p.message) for p in problems}
    assert got == {("datasets[Refined]", True), ("datasets[main]", True), ("views[V_KEEP]", True)}


def test_a_create_never_drops_an_object_it_does_not_manage(applied) -> None:
    """A hand-made table with a name the project now declares (in another case): refused at
    plan time, and the table create itself would fail rather than drop it."""
    loaded, backend, home, tmp = applied
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("CREATE TABLE refined.Hand AS SELECT range AS id FROM range(7)")
    con.close()
    path = write(tmp / "proj2", project_text(tables="  - dataset: refined\n    name: hand\n"
                                                    "    schema: [{name: x, type: STRING}]\n"))
    loaded2 = load_project(path)
    plan = build_plan(loaded2, backend, "iac")
    with pytest.raises(BackendError, match="already holds the table 'refined.Hand'"):
        apply_plan(plan, backend)
    create = next(c for c in plan.changes if c.address == "table.refined.hand")
    with pytest.raises(Exception, match="already exists"):
        backend.handler("table").create(create.resource)
    protected = Resource("table", "refined.KEEPME", create.resource.config, ("dataset.refined",))
    with pytest.raises(Exception, match="already exists"):
        backend.handler("table").create(protected)
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM refined.Hand").fetchone()[0] == 7
    con.close()
    assert keepme_rows(home) == 5


# -- item 17: a view that does not bind is found before anything changes -------------------------
NEW_TABLE = "  - dataset: refined\n    name: fresh\n    schema: [{name: x, type: STRING}]\n"


def test_a_view_that_does_not_bind_fails_plan_and_apply_before_any_change(applied, capsys) -> None:
    from funnelops.cli.main import main

    loaded, backend, home, tmp = applied
    views = "  - {dataset: reporting, name: v_new, query: SELECT x FROM refined.fresh}\n"
    text = project_text("SELECT day, nope FROM refined.keepme", tables=NEW_TABLE, views=views)
    path = write(tmp / "proj2", text)
    loaded2 = load_project(path)  # the column is unknown to validate: only the warehouse knows
    plan = build_plan(loaded2, backend, "iac")
    assert {c.address: c.action for c in plan.mutating()} == {
        "table.refined.fresh": "create", "view.reporting.v_keep": "update", "view.reporting.v_new": "create"}
    with pytest.raises(BackendError) as info:
        apply_plan(plan, backend)
    assert "view reporting.v_keep does not bind" in info.value.message and "nope" in info.value.message
    assert "v_new" not in info.value.message  # it binds: the new table is played first
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:  # nothing changed: no new table, no new view, the old view intact
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'fresh'").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = 'v_new'").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM reporting.v_keep").fetchone()[0] == 5
    finally:
        con.close()
    code = main(["--project", str(path), "--home", str(home), "plan", "--stage", "iac"])
    out = capsys.readouterr()
    assert code == 1 and "does not bind" in out.err and "Traceback" not in out.err


def test_a_plan_that_binds_still_applies(applied) -> None:
    loaded, backend, home, tmp = applied
    views = "  - {dataset: reporting, name: v_new, query: SELECT x FROM refined.fresh}\n"
    loaded2 = load_project(write(tmp / "proj2", project_text(tables=NEW_TABLE, views=views)))
    plan = build_plan(loaded2, backend, "iac")
    result = apply_plan(plan, backend)
    assert result.ok and {c.address for c, _ in result.done} == {"table.refined.fresh", "view.reporting.v_new"}
    assert keepme_rows(home) == 5
