"""create-infra, plan and destroy on the real local backend (folders, DuckDB, SQLite ledger) in tmp_path."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import duckdb
import pytest

from funnelops.backends.local import LocalBackend
from funnelops.errors import DataLossRefused, StageOrderError
from funnelops.lifecycle.infra import create_infra, destroy
from funnelops.plan.diff import build_plan
from funnelops.spec.loader import load_project

SCHEMA = '[{"name": "day", "type": "DATE", "mode": "REQUIRED"}, {"name": "n", "type": "INT64"}]'

PROJECT = """\
project:
  id: demo-project
  region: us-east1
variables:
  env: dev
buckets:
  - name: demo-trusted
    labels: {layer: trusted}
  - name: demo-artifacts
    deletion_protection: true
datasets:
  - id: trusted
  - id: refined
  - id: reporting
tables:
  - dataset: refined
    name: daily
    schema_file: schemas/daily.json
    partitioning: {field: day}
  - dataset: refined
    name: keepme
    schema: [{name: day, type: DATE}]
    deletion_protection: true
%(extra_table)s
external_tables:
  - {dataset: trusted, name: leads, bucket: demo-trusted, prefix: leads/}
views:
  - {dataset: reporting, name: v_daily, query: "SELECT day, n FROM `demo-project.refined.daily`"}
  - {dataset: reporting, name: v_leads, query: "SELECT COUNT(*) AS leads FROM trusted.leads"}
workflows:
  - name: wf-day
    granularity: DAY
    initial_load: true
    args: ["--granularity=DAY"]
    jobs: [{step_id: flows}]
schedulers:
  - {name: Día, id: dia, cron: "0 6 * * *", workflow: wf-day, time_zone: America/Bogota}
"""
SCRATCH = """\
  - dataset: refined
    name: scratch
    schema: [{name: x, type: STRING}]
"""


def write(tmp: Path, with_scratch: bool = True) -> Path:
    (tmp / "schemas").mkdir(exist_ok=True)
    (tmp / "schemas" / "daily.json").write_text(SCHEMA, encoding="utf-8")
    path = tmp / "funnel.yaml"
    path.write_text(PROJECT % {"extra_table": SCRATCH if with_scratch else ""}, encoding="utf-8")
    return path


@pytest.fixture
def env(tmp_path: Path):
    proj = tmp_path / "proj"
    proj.mkdir()
    home = tmp_path / "home"
    loaded = load_project(write(proj))
    backend = LocalBackend.for_project(loaded, home)
    return loaded, backend, home, proj


def summary(loaded, backend, stage="iac") -> dict[str, int]:
    return build_plan(loaded, backend, stage).summary()


def acts(loaded, backend, stage="iac") -> dict[str, str]:
    return {c.address: c.action for c in build_plan(loaded, backend, stage).changes}


def duck(home: Path, sql: str, params=None):
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def duck_write(home: Path, *sqls: str) -> None:
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    try:
        for s in sqls:
            con.execute(s)
    finally:
        con.close()


def ledger(home: Path, sql: str, params=()):
    con = sqlite3.connect(home / "ledger.sqlite")
    try:
        rows = con.execute(sql, params).fetchall()
        con.commit()
        return rows
    finally:
        con.close()


def write_parquet(home: Path, rel: str) -> None:
    target = home / "buckets" / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM range(3) t(id)) TO '{target}' (FORMAT PARQUET)")
    con.close()


# 2 buckets, 3 datasets, 3 tables, 1 view, 1 template, 1 scheduler at IaC (v_leads waits for its
# external table, deferred at IaC)
IAC_CREATES = 11


def test_iac_from_empty_creates_everything(env) -> None:
    loaded, backend, home, _ = env
    plan, result = create_infra(loaded, backend, "IaC", actor="test")
    assert result.ok
    assert plan.summary() == {"create": IAC_CREATES, "update": 0, "replace": 0, "delete": 0, "unchanged": 0,
                              "waiting": 1}
    # buckets are folders with their settings beside
    meta = json.loads((home / "buckets" / "demo-trusted" / ".bucket.json").read_text())
    assert meta["labels"] == {"layer": "trusted"} and meta["location"] == "US"
    assert (home / "buckets" / "demo-artifacts" / ".bucket.json").is_file()
    # datasets are schemas, tables tables, views views
    schemas = {r[0] for r in duck(home, "SELECT schema_name FROM duckdb_schemas()")}
    assert {"trusted", "refined", "reporting"} <= schemas
    tables = {(s, t) for s, t in duck(home, "SELECT schema_name, table_name FROM duckdb_tables()")}
    assert {("refined", "daily"), ("refined", "keepme"), ("refined", "scratch")} <= tables
    cols = duck(home, "SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
                      "WHERE schema_name = 'refined' AND table_name = 'daily' ORDER BY column_index")
    assert cols == [("day", "DATE", False), ("n", "BIGINT", True)]
    views = {(s, v) for s, v in duck(home, "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal")}
    assert ("reporting", "v_daily") in views and ("reporting", "v_leads") not in views
    assert duck(home, "SELECT COUNT(*) FROM reporting.v_daily") == [(0,)]
    # the template in Dataproc's shape, the scheduler in Cloud Scheduler's
    (name, body, version), = ledger(home, "SELECT name, body, version FROM templates")
    body = json.loads(body)
    assert name == "wf-day" and version == 1
    assert body["jobs"][0]["stepId"] == "flows"
    assert body["jobs"][0]["pysparkJob"]["args"] == ["--env=dev", "--granularity=DAY", "--refined_flows=false",
                                                     "--execution_type=delta", "--lease=scheduled",  # + run tail
                                                     "--period=current",
                                                     "--workflow=wf-day"]
    assert body["labels"]["funnelops-initial-load"] == "true"
    (sid, sbody, state), = ledger(home, "SELECT id, body, state FROM schedulers")
    sbody = json.loads(sbody)
    assert sid == "dia" and state == "ENABLED"
    assert sbody["name"] == "projects/demo-project/locations/us-east1/jobs/dia"
    assert sbody["httpTarget"]["uri"].endswith("/projects/demo-project/regions/us-east1/workflowTemplates/"
                                               "wf-day:instantiate")
    assert sbody["timeZone"] == "America/Bogota" and sbody["description"].startswith("[Día]")
    assert "iac" in backend.ledger.stages()


def test_reapply_is_a_noop(env) -> None:
    loaded, backend, home, _ = env
    create_infra(loaded, backend, "iac", actor="test")
    assert summary(loaded, backend) == {"create": 0, "update": 0, "replace": 0, "delete": 0,
                                        "unchanged": IAC_CREATES, "waiting": 1}
    _, result = create_infra(loaded, backend, "iac", actor="test")
    assert result.done == [] and result.ok


def test_drift_is_detected_and_repaired(env) -> None:
    loaded, backend, home, _ = env
    create_infra(loaded, backend, "iac", actor="test")
    duck_write(home, "DROP TABLE refined.scratch",
               "CREATE OR REPLACE VIEW reporting.v_daily AS SELECT 42 AS answer")
    meta_path = home / "buckets" / "demo-trusted" / ".bucket.json"
    meta = json.loads(meta_path.read_text())
    meta["labels"] = {"layer": "edited"}
    meta_path.write_text(json.dumps(meta))
    (body,), = ledger(home, "SELECT body FROM templates WHERE name = 'wf-day'")
    body = json.loads(body)
    body["jobs"][0]["pysparkJob"]["args"].append("--hand=edit")
    ledger(home, "UPDATE templates SET body = ? WHERE name = 'wf-day'", (json.dumps(body),))

    plan = build_plan(loaded, backend, "iac")
    by = {c.address: c for c in plan.changes}
    assert by["table.refined.scratch"].action == "create"
    assert by["view.reporting.v_daily"].action == "update"
    assert by["bucket.demo-trusted"].action == "update"
    assert [(f.field, f.before, f.after) for f in by["bucket.demo-trusted"].fields] == [
        ("labels.layer", "edited", "trusted")]
    assert by["workflow_template.wf-day"].action == "update"
    assert [f.field for f in by["workflow_template.wf-day"].fields] == ["jobs[flows].args"]
    assert plan.summary()["unchanged"] == IAC_CREATES - 4

    create_infra(loaded, backend, "iac", actor="test")
    assert summary(loaded, backend)["unchanged"] == IAC_CREATES
    assert duck(home, "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'reporting' "
                      "AND table_name = 'v_daily' ORDER BY column_index") == [("day",), ("n",)]
    assert json.loads(meta_path.read_text())["labels"] == {"layer": "trusted"}


def test_external_tables_wait_for_data(env) -> None:
    loaded, backend, home, _ = env
    create_infra(loaded, backend, "iac", actor="test")
    backend.ledger.record_job("run-workflow-templates", loaded.spec_hash, "test")  # Initial data's first job
    a = acts(loaded, backend, "initial-data")
    assert a["external_table.trusted.leads"] == "waiting" and a["view.reporting.v_leads"] == "waiting"
    write_parquet(home, "demo-trusted/leads/day=2024-01-01/part-0.parquet")
    write_parquet(home, "demo-trusted/leads/day=2024-01-02/part-0.parquet")
    a = acts(loaded, backend, "initial-data")
    assert a["external_table.trusted.leads"] == "create" and a["view.reporting.v_leads"] == "create"
    create_infra(loaded, backend, "initial-data", actor="test")
    assert duck(home, "SELECT COUNT(*), COUNT(DISTINCT day) FROM trusted.leads") == [(6, 2)]
    assert duck(home, "SELECT leads FROM reporting.v_leads") == [(6,)]
    assert summary(loaded, backend, "initial-data")["waiting"] == 0
    assert not build_plan(loaded, backend, "initial-data").has_changes
    # back at IaC the external table is deferred, not deleted
    assert "delete" not in acts(loaded, backend, "iac").values()


def test_template_args_follow_the_stage_updated_in_place(env) -> None:
    loaded, backend, home, _ = env
    create_infra(loaded, backend, "iac", actor="test")
    backend.ledger.record_job("run-workflow-templates", loaded.spec_hash, "test")  # Initial data's first job
    (created, v1), = ledger(home, "SELECT create_time, version FROM templates")
    plan, _ = create_infra(loaded, backend, "Initial data", actor="test")
    by = {c.address: c for c in plan.changes}
    assert by["workflow_template.wf-day"].action == "update"
    (body, created2, v2), = ledger(home, "SELECT body, create_time, version FROM templates")
    args = json.loads(body)["jobs"][0]["pysparkJob"]["args"]
    assert args == ["--env=dev", "--granularity=DAY", "--trusted_flows=false", "--execution_type=delta", "--lease=scheduled",
                    "--period=current",
                    "--workflow=wf-day"]
    assert (v1, v2) == (1, 2)
    assert created2 == created  # updated, not deleted and re-created
    create_infra(loaded, backend, "initial-data", actor="test")
    assert ledger(home, "SELECT version FROM templates") == [(2,)]  # converged: no further bump


def test_removed_table_deleted_only_when_empty(env) -> None:
    loaded, backend, home, proj = env
    create_infra(loaded, backend, "iac", actor="test")
    duck_write(home, "INSERT INTO refined.scratch VALUES ('a'), ('b')")
    smaller = load_project(write(proj, with_scratch=False))
    assert acts(smaller, backend)["table.refined.scratch"] == "delete"
    with pytest.raises(DataLossRefused) as info:
        create_infra(smaller, backend, "iac", actor="test")
    assert "table.refined.scratch" in info.value.message
    assert duck(home, "SELECT COUNT(*) FROM refined.scratch") == [(2,)]
    # emptied, it goes without the flag
    duck_write(home, "DELETE FROM refined.scratch")
    create_infra(smaller, backend, "iac", actor="test")
    assert not duck(home, "SELECT 1 FROM duckdb_tables() WHERE table_name = 'scratch'")


def test_removed_table_with_rows_deleted_with_allow_data_loss(env) -> None:
    loaded, backend, home, proj = env
    create_infra(loaded, backend, "iac", actor="test")
    duck_write(home, "INSERT INTO refined.scratch VALUES ('a')")
    smaller = load_project(write(proj, with_scratch=False))
    create_infra(smaller, backend, "iac", actor="test", allow_data_loss=True)
    assert not duck(home, "SELECT 1 FROM duckdb_tables() WHERE table_name = 'scratch'")
    assert not build_plan(smaller, backend, "iac").has_changes


def test_destroy_keeps_deletion_protected(env) -> None:
    loaded, backend, home, _ = env
    create_infra(loaded, backend, "iac", actor="test")
    plan, result = destroy(loaded, backend, actor="test")
    assert result.ok
    kept = {c.address for c in plan.changes if c.action == "unchanged"}
    assert {"bucket.demo-artifacts", "table.refined.keepme"} <= kept
    assert (home / "buckets" / "demo-artifacts" / ".bucket.json").is_file()
    assert not (home / "buckets" / "demo-trusted").exists()
    assert not duck(home, "SELECT 1 FROM duckdb_tables() WHERE table_name IN ('daily', 'scratch')")
    assert not duck(home, "SELECT 1 FROM duckdb_views() WHERE schema_name = 'reporting'")
    assert ledger(home, "SELECT COUNT(*) FROM templates") == [(0,)]
    assert ledger(home, "SELECT COUNT(*) FROM schedulers") == [(0,)]
    assert backend.ledger.stages() == {}


def test_destroy_keeps_a_protected_table_and_its_dataset(env) -> None:
    loaded, backend, home, _ = env
    create_infra(loaded, backend, "iac", actor="test")
    duck_write(home, "INSERT INTO refined.keepme VALUES (DATE '2024-01-01')")
    destroy(loaded, backend, actor="test")
    assert duck(home, "SELECT COUNT(*) FROM refined.keepme") == [(1,)]


def test_stage_order_is_refused_with_exit_4(env, capsys) -> None:
    loaded, backend, home, proj = env
    with pytest.raises(StageOrderError):
        create_infra(loaded, backend, "initial-data", actor="test")
    from funnelops.cli.main import main

    code = main(["--project", str(proj / "funnel.yaml"), "--home", str(home), "job", "create-infra",
                 "--stage", "Initial data"])
    err = capsys.readouterr().err
    assert code == 4
    assert "IaC" in err and "Traceback" not in err
    assert not (home / "buckets").exists()  # nothing was created
