"""The gcp path's refined layer: each refined flow is one BigQuery job, a transaction that
replaces exactly the period, sent through the official client to the contract double.

The flows program runs as Dataproc runs it (FUNNELOPS_BACKEND=gcp, the launcher's setting) with
`--trusted_flows=false`; the double validates every request against the BigQuery discovery
document and records the query configurations, which are checked here statement by statement.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

pytestmark = pytest.mark.gcp
sqlglot = pytest.importorskip("sqlglot")
pytest.importorskip("google.cloud.bigquery", reason="needs the gcp extra")

from sqlglot import exp  # noqa: E402

from funnelops.flows.cli import main  # noqa: E402
from funnelops.flows.registry import load_refined, refined_names  # noqa: E402
from funnelops.spec.loader import load_project  # noqa: E402
from funnelops.spec.sqlrefs import table_refs  # noqa: E402

PROJECT = Path(__file__).resolve().parents[3] / "projects" / "funnel" / "funnel.yaml"
GCP_PROJECT = "analitica-funnel"  # the project id of funnel.yaml: what the flows qualify names with
CASES = {"DAY": ("2024-02-14", date(2024, 2, 14), date(2024, 2, 15)),
         "MONTH": ("2024-02", date(2024, 2, 1), date(2024, 3, 1)),
         "YEAR": ("2024", date(2024, 1, 1), date(2025, 1, 1))}
DUCKDB_ONLY = ("read_parquet", "BY NAME", "::", "$period", "$granularity", '"', "INSERT OR", "QUALIFY ROW")


@pytest.fixture
def loaded():
    return load_project(PROJECT)


@pytest.fixture
def gcp_env(gcp_double, monkeypatch, tmp_path):
    monkeypatch.setenv("FUNNELOPS_BIGQUERY_ENDPOINT", gcp_double.url)
    monkeypatch.setenv("FUNNELOPS_BACKEND", "gcp")
    monkeypatch.delenv("FUNNELOPS_ENGINE", raising=False)
    monkeypatch.setenv("FUNNELOPS_PROJECT", str(PROJECT))
    monkeypatch.setenv("FUNNELOPS_HOME", str(tmp_path))
    monkeypatch.setenv("FUNNELOPS_METRICS_FILE", str(tmp_path / "metrics.json"))
    return tmp_path


def _params(config: dict) -> dict[str, tuple[str, str]]:
    return {p["name"]: (p["parameterType"]["type"], p["parameterValue"]["value"])
            for p in config.get("queryParameters", [])}


def _strip_project(tree: exp.Expression) -> str:
    def strip(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table):
            node.set("catalog", None)
        return node
    return tree.transform(strip).sql(dialect="bigquery", comments=False)


@pytest.mark.parametrize("granularity", ["DAY", "MONTH", "YEAR"])
def test_each_refined_flow_is_one_transaction_replacing_the_period(gcp_double, gcp_env, loaded, granularity):
    label, start, end = CASES[granularity]
    gcp_double.bigquery.add_answer(r"SELECT inserted AS inserted_rows\s*;?\s*$", rows=[[7]],
                                   schema=[("inserted_rows", "INTEGER")])
    assert main([f"--granularity={granularity}", f"--period={label}", "--trusted_flows=false",
                 "--raw_bucket=ignored-by-the-flows"]) == 0
    gcp_double.assert_clean()

    flows = {name: load_refined(loaded.base_dir, name) for name in refined_names(loaded.base_dir)}
    expected = [n for n, f in flows.items() if granularity in f.granularities]
    assert "attainment" not in expected if granularity == "DAY" else "attainment" in expected
    configs = gcp_double.bigquery.jobs.configs
    assert len(configs) == len(expected)          # one query job per refined flow that runs
    metrics = json.loads((gcp_env / "metrics.json").read_text())
    assert metrics["ok"] and metrics["period"] == start.isoformat()
    ran = {f["flow"]: f for f in metrics["flows"] if not f.get("skipped")}
    assert sorted(ran) == sorted(expected)
    assert all(f["read"] == f["kept"] == 7 and f["quarantined"] == 0 for f in ran.values())

    externals = {f"{e.dataset}.{e.name}" for e in loaded.spec.external_tables}
    for name, config in zip(expected, configs):
        flow = flows[name]
        script = config["query"]
        assert config.get("useLegacySql") is False
        assert not any(bad in script for bad in DUCKDB_ONLY), (name, script)
        stmts = sqlglot.parse(script, read="bigquery")
        kinds = [type(s).__name__ for s in stmts]
        assert kinds == ["Declare", "Transaction", "Delete", "Insert", "Set", "Commit", "Select"], (name, kinds)
        dataset, table = flow.table_for(granularity)
        target = f"{GCP_PROJECT}.{dataset}.{table}"
        delete, insert = stmts[2], stmts[3]
        assert delete.this.sql(dialect="bigquery") == f"`{target}`"
        assert insert.this.this.sql(dialect="bigquery") == f"`{target}`"
        where = delete.args["where"].this.sql(dialect="bigquery")
        params = _params(config)
        if flow.replace == "period":
            assert where == ("period_start >= @period_start AND period_start < @period_end "
                             "AND granularity = @granularity")
            assert params == {"granularity": ("STRING", granularity),
                              "period_start": ("DATE", start.isoformat()),
                              "period_end": ("DATE", end.isoformat())}
        else:
            assert where == "TRUE"
            assert params == {}
        # Inserts exactly the flow's SQL, with every table it reads fully qualified.
        query = insert.expression
        ctes = {c.alias_or_name for c in query.find_all(exp.CTE)}
        tables = list(query.find_all(exp.Table))
        assert all(t.db or t.name in ctes for t in tables), name        # bare names are CTEs only
        read = {(t.catalog, f"{t.db}.{t.name}") for t in tables if t.db}
        assert all(cat == GCP_PROJECT and ref in externals for cat, ref in read), (name, read)
        assert {ref for _, ref in read} == set(table_refs(flow.sql)), name   # dim_indicators reads none
        assert _strip_project(query.copy()) == _strip_project(sqlglot.parse_one(flow.sql, read="bigquery"))
        assert [c.name for c in insert.this.expressions] == list(query.named_selects)
        assert "@@row_count" in stmts[4].sql(dialect="bigquery")


def test_full_run_replaces_the_whole_calendar(gcp_double, gcp_env):
    assert main(["--granularity=MONTH", "--execution_type=full", "--trusted_flows=false",
                 "--refined_flows=funnel"]) == 0
    (config,) = gcp_double.bigquery.jobs.configs
    assert _params(config) == {"granularity": ("STRING", "MONTH"), "period_start": ("DATE", "0001-01-01"),
                               "period_end": ("DATE", "9999-12-31")}
    gcp_double.assert_clean()


def test_a_failing_query_fails_the_run_naming_flow_and_table(gcp_double, gcp_env, capsys):
    gcp_double.bigquery.add_answer(r"funnel_monthly", error="Not found: Table analitica-funnel:funnel_trusted.leads")
    assert main(["--granularity=MONTH", "--period=2024-02", "--trusted_flows=false",
                 "--refined_flows=funnel"]) == 1
    err = capsys.readouterr().err
    assert "refined flow funnel" in err and "analitica-funnel.funnel_refined.funnel_monthly" in err
    assert json.loads((gcp_env / "metrics.json").read_text())["ok"] is False


def test_gcp_path_refuses_a_non_spark_engine(gcp_env, monkeypatch, capsys):
    monkeypatch.setenv("FUNNELOPS_ENGINE", "duckdb")
    assert main(["--granularity=DAY", "--period=2024-02-14", "--trusted_flows=false"]) == 2
    assert "FUNNELOPS_ENGINE=duckdb" in capsys.readouterr().err


def test_launcher_selects_the_gcp_path_and_stays_reproducible(loaded):
    """The launcher Dataproc runs sets the gcp path before the flows main starts (a template can
    still override it), and its bytes are stable, so the upload stays skipped when unchanged."""
    from funnelops.backends.gcp.artifacts import Artifacts

    files = Artifacts(None, "analitica-funnel-artifacts", loaded).files()
    launcher = files["mains/funnelops.flows.py"].decode()
    compile(launcher, "main.py", "exec")
    setup, run = launcher.index('os.environ.setdefault("FUNNELOPS_BACKEND", "gcp")'), launcher.index("runpy.run_module(")
    assert setup < run and 'os.environ.setdefault("FUNNELOPS_ENGINE", "spark")' in launcher[:run]
    assert Artifacts(None, "analitica-funnel-artifacts", loaded).files() == files


def test_excel_sources_are_downloaded_from_gcs(fake_gcs, monkeypatch):
    """On gcp the Spark path reads targets workbooks on the driver: bytes come from GCS through
    the backend's storage client (FUNNELOPS_STORAGE_ENDPOINT honoured), and a missing object
    fails naming the file."""
    from funnelops.backends.gcp.flows_runtime import read_object

    monkeypatch.setenv("FUNNELOPS_STORAGE_ENDPOINT", fake_gcs.url)
    bucket = fake_gcs.new_bucket("raw")
    data = bytes(range(256)) * 4
    bucket.blob("FUNNEL/EXCEL/metas/2024/metas_202402.xlsx").upload_from_string(data)
    assert read_object(f"gs://{bucket.name}/FUNNEL/EXCEL/metas/2024/metas_202402.xlsx", "p") == data
    with pytest.raises(Exception, match="metas_202403"):
        read_object(f"gs://{bucket.name}/FUNNEL/EXCEL/metas/2024/metas_202403.xlsx", "p")
