"""`funnelops lineage`: the example project's declared sources and parsed SQL as one graph.

Each test reads the shipped example (or a copy with one thing changed) and checks the graph says
what the files say: every source declared appears, an edge exists exactly where SQL reads a table,
and SQL or a flow that cannot be read is an error naming the file, never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from funnelops.errors import ProjectError
from funnelops.lifecycle.lineage import collect_lineage
from funnelops.spec.loader import load_project

EXAMPLE = Path(__file__).resolve().parents[2] / "projects" / "funnel"
FUNNELOPS = str(Path(sys.executable).with_name("funnelops"))


@pytest.fixture(scope="module")
def doc() -> dict:
    return collect_lineage(load_project(EXAMPLE / "funnel.yaml"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLE, tmp_path / "p", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "p"


def _inputs(doc: dict, node: str) -> set[str]:
    return {e["from"] for e in doc["edges"] if e["to"] == node}


def _outputs(doc: dict, node: str) -> set[str]:
    return {e["to"] for e in doc["edges"] if e["from"] == node}


def test_every_declared_source_appears(doc: dict) -> None:
    spec = load_project(EXAMPLE / "funnel.yaml").spec
    ids = {n["id"] for n in doc["nodes"]}
    expected = {f"bucket:{b.name}" for b in spec.buckets if b.role != "artifacts"}
    expected |= {f"flow:{p.stem}" for p in (EXAMPLE / "flows" / "trusted").glob("*.py") if not p.name.startswith("_")}
    expected |= {f"table:{t.address}" for t in (*spec.tables, *spec.external_tables)}
    expected |= {f"view:{v.address}" for v in spec.views}
    expected |= {f"sql:{p.stem}" for p in (EXAMPLE / "sql" / "refined").glob("*.sql")}
    assert len(expected) == 24  # 3 buckets, 5 flows, 5 external + 5 refined tables, 3 SQL files, 3 views
    assert ids == expected
    assert {n["kind"] for n in doc["nodes"]} == {"bucket", "flow", "table", "sql", "view"}
    for n in doc["nodes"]:
        assert n["id"] == f"{n['kind']}:{n['label']}" and isinstance(n["rank"], int)
    for e in doc["edges"]:  # no edge to a node the document lacks
        assert e["from"] in ids and e["to"] in ids


def test_trusted_flows_read_the_raw_bucket_and_feed_their_external_table(doc: dict) -> None:
    assert _inputs(doc, "flow:leads") == {"bucket:analitica-funnel-raw"}
    assert _outputs(doc, "flow:leads") == {"table:funnel_trusted.leads"}
    assert _inputs(doc, "table:funnel_trusted.targets") == {"flow:targets", "bucket:analitica-funnel-trusted"}


def test_refined_sql_reads_the_tables_its_query_names_and_writes_its_targets(doc: dict) -> None:
    # attainment.sql: FROM funnel_trusted.won_deals JOIN funnel_trusted.leads ... FROM funnel_trusted.targets
    assert _inputs(doc, "sql:attainment") == {"table:funnel_trusted.won_deals", "table:funnel_trusted.leads",
                                              "table:funnel_trusted.targets"}
    assert _outputs(doc, "sql:attainment") == {"table:funnel_refined.attainment"}
    # `-- target: funnel_refined.funnel_{granularity}`: one table per granularity
    assert _outputs(doc, "sql:funnel") == {f"table:funnel_refined.funnel_{g}" for g in ("daily", "monthly", "yearly")}
    assert _inputs(doc, "sql:dim_indicators") == set()  # a literal SELECT reads nothing


def test_views_depend_on_what_their_sql_reads(doc: dict) -> None:
    assert _inputs(doc, "view:funnel_reporting.v_funnel_monthly") == {"table:funnel_refined.funnel_monthly"}
    # a view over a view (the CTE `by_stage` is not a table)
    assert _inputs(doc, "view:funnel_reporting.v_conversion_by_channel") == {"view:funnel_reporting.v_funnel_monthly"}
    ranks = {n["id"]: n["rank"] for n in doc["nodes"]}
    assert ranks["view:funnel_reporting.v_conversion_by_channel"] > ranks["view:funnel_reporting.v_funnel_monthly"]
    assert all(ranks[e["from"]] < ranks[e["to"]] for e in doc["edges"])


def test_a_new_refined_file_is_followed_and_its_cte_names_are_not_tables(project: Path) -> None:
    (project / "sql" / "refined" / "leads_only.sql").write_text(
        "-- target: funnel_refined.attainment\n-- replace: all\n"
        "WITH won_deals AS (SELECT lead_id FROM funnel_trusted.leads)\nSELECT lead_id FROM won_deals\n",
        encoding="utf-8")
    doc = collect_lineage(load_project(project / "funnel.yaml"))
    assert _inputs(doc, "sql:leads_only") == {"table:funnel_trusted.leads"}
    assert _outputs(doc, "sql:leads_only") == {"table:funnel_refined.attainment"}


def test_the_document_is_deterministic(project: Path, doc: dict) -> None:
    again = collect_lineage(load_project(project / "funnel.yaml"))
    assert json.dumps(again) == json.dumps(doc)
    assert [(n["rank"], n["id"]) for n in doc["nodes"]] == sorted((n["rank"], n["id"]) for n in doc["nodes"])
    assert [(e["from"], e["to"]) for e in doc["edges"]] == sorted((e["from"], e["to"]) for e in doc["edges"])


@pytest.mark.parametrize("sql", [
    "SELECT 1 AS a; DROP TABLE funnel_refined.attainment",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELEC lead_id FROM funnel_trusted.leads WHERE (",
])
def test_hostile_or_invalid_refined_sql_is_an_error_naming_the_file(project: Path, sql: str) -> None:
    loaded = load_project(project / "funnel.yaml")  # valid when loaded; the file changes after
    target = project / "sql" / "refined" / "attainment.sql"
    target.write_text("-- target: funnel_refined.attainment\n-- replace: all\n" + sql + "\n", encoding="utf-8")
    with pytest.raises(ProjectError) as err:
        collect_lineage(loaded)
    assert str(target) in err.value.message
    assert [p.file for p in err.value.problems] == [str(target)]


def test_hostile_view_sql_is_an_error_naming_the_view_file(project: Path) -> None:
    loaded = load_project(project / "funnel.yaml")
    loaded.view_sql["funnel_reporting.v_funnel_monthly"] = "SELECT 1 AS a;\nCOPY t TO '/tmp/x'"
    with pytest.raises(ProjectError) as err:
        collect_lineage(loaded)
    assert err.value.problems[0].file == str(project / "sql" / "views" / "v_funnel_monthly.sql")
    assert "v_funnel_monthly" in err.value.problems[0].field


def test_a_broken_trusted_flow_is_an_error_naming_the_file(project: Path) -> None:
    loaded = load_project(project / "funnel.yaml")
    flow = project / "flows" / "trusted" / "leads.py"
    flow.write_text(flow.read_text(encoding="utf-8") + "\ndef broken(:\n", encoding="utf-8")
    with pytest.raises(ProjectError) as err:
        collect_lineage(loaded)
    assert err.value.problems[0].file == str(flow) and err.value.problems[0].line


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELOPS_")}
    env.update(FUNNELOPS_PROJECT=str(project / "funnel.yaml"), FUNNELOPS_HOME=str(project.parent / "home"),
               COLUMNS="200", NO_COLOR="1")
    return subprocess.run([FUNNELOPS, "lineage", *args], env=env, capture_output=True, text=True, timeout=120,
                          cwd=project.parent)


def test_cli_prints_the_tree_and_the_json_document(project: Path) -> None:
    text = _cli(project)
    assert text.returncode == 0, text.stderr
    assert "bucket analitica-funnel-raw" in text.stdout and "└── view funnel_reporting.v_conversion_by_channel" in text.stdout
    assert "sql funnel (see above)" in text.stdout
    as_json = _cli(project, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == collect_lineage(load_project(project / "funnel.yaml"))
    assert not (project.parent / "home").exists()  # read from the project alone: no home made


def test_cli_refuses_hostile_sql_with_the_file_and_no_traceback(project: Path) -> None:
    target = project / "sql" / "refined" / "funnel.sql"
    target.write_text("-- target: funnel_refined.funnel_{granularity}\n-- replace: all\nSELECT 1 AS a; DELETE FROM x\n",
                      encoding="utf-8")
    proc = _cli(project, "--json")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    err = json.loads(proc.stdout)
    assert any(p["file"] == str(target) for p in err["problems"])
