"""`funnelops query` and `funnelops tables` on gcp: BigQuery jobs and table metadata, against the
contract double (which answers queries with the rows a test registers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gcp

bigquery = pytest.importorskip("google.cloud.bigquery")

REPO = Path(__file__).resolve().parents[3]
PROJECT = REPO / "projects" / "funnel" / "funnel.yaml"
P = "funnel-test"  # the double's project (tests/gcp_double/plugin.py)


@pytest.fixture
def backend(monkeypatch, gcp_double, tmp_path):
    from funnelops.backends.gcp import GcpBackend

    monkeypatch.setenv("FUNNELOPS_BIGQUERY_ENDPOINT", gcp_double.url)
    monkeypatch.setenv("FUNNELOPS_GCP_RETRY_INITIAL_S", "0.01")
    b = GcpBackend(P, "us-central1", artifacts_bucket=f"{P}-funnelops", home=tmp_path)
    yield b
    b.close()


def test_read_query_table_gives_columns_rows_and_truncation(backend, gcp_double) -> None:
    gcp_double.bigquery.add_answer(r"FROM\s+funnel_refined\.funnel_daily", rows=[["web", 3], ["app", 5], ["tv", 1]],
                                   schema=[("channel", "STRING"), ("n", "INTEGER")])
    sql = "SELECT channel, COUNT(*) AS n FROM funnel_refined.funnel_daily GROUP BY 1"
    whole = backend.read_query_table(sql)
    assert whole.columns == ("channel", "n") and whole.rows == (("web", 3), ("app", 5), ("tv", 1))
    assert not whole.truncated
    two = backend.read_query_table(sql, max_rows=2)
    assert two.rows == (("web", 3), ("app", 5)) and two.truncated
    assert gcp_double.bigquery.jobs.queries[-1] == sql  # sent as written: BigQuery's own dialect


def test_relation_stats_read_metadata_and_the_newest_partition(backend, gcp_double) -> None:
    bq = backend.clients.bigquery
    bq.create_dataset(f"{P}.funnel_refined")
    table = bigquery.Table(f"{P}.funnel_refined.funnel_daily", schema=[
        bigquery.SchemaField("period_start", "DATE", mode="REQUIRED"), bigquery.SchemaField("volume", "INTEGER")])
    table.time_partitioning = bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY, field="period_start")
    bq.create_table(table)
    view = bigquery.Table(f"{P}.funnel_refined.v_daily")
    view.view_query = f"SELECT * FROM `{P}.funnel_refined.funnel_daily`"
    bq.create_table(view)
    gcp_double.bigquery.set_num_rows(P, "funnel_refined", "funnel_daily", 42)
    gcp_double.bigquery.add_answer(r"INFORMATION_SCHEMA\.PARTITIONS", rows=[["20240131"]],
                                   schema=[("last", "STRING")])
    stats = backend.relation_stats("funnel_refined.funnel_daily", "table", "period_start")
    assert (stats.rows, stats.last_period) == (42, "2024-01-31")
    assert "table_name = 'funnel_daily'" in gcp_double.bigquery.jobs.queries[-1]
    before = len(gcp_double.bigquery.jobs.queries)
    assert backend.relation_stats("funnel_refined.v_daily", "view").rows is None  # never scanned to count
    assert backend.relation_stats("funnel_refined.nothing", "table", "period_start").rows is None
    assert len(gcp_double.bigquery.jobs.queries) == before  # metadata only: no query job
    assert backend.warehouse_location() == f"BigQuery project {P}"
    assert backend.data_uri("b-trusted", "_quarantine/") == "gs://b-trusted/_quarantine/"


def _cli(gcp_double, tmp_path: Path, *args: str, code: int = 0, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELOPS_") and k != "STORAGE_EMULATOR_HOST"}
    env.update(FUNNELOPS_BIGQUERY_ENDPOINT=gcp_double.url, FUNNELOPS_GCP_RETRY_INITIAL_S="0.01", NO_COLOR="1",
               **extra)
    text = PROJECT.read_text(encoding="utf-8").replace("id: analitica-funnel\n", f"id: {P}\n", 1)
    project = tmp_path / "funnel.yaml"
    if not project.exists():
        import shutil

        shutil.copytree(PROJECT.parent, tmp_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        project.write_text(text, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "funnelops", "--backend", "gcp", "--project", str(project),
                           "--home", str(tmp_path / "home"), *args], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == code, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def test_the_query_command_runs_on_bigquery(gcp_double, tmp_path: Path) -> None:
    gcp_double.bigquery.add_answer(r"FROM\s+funnel_refined\.funnel_monthly",
                                   rows=[["2024-01-01", "Web", 7]],
                                   schema=[("period_start", "DATE"), ("channel", "STRING"), ("volume", "INTEGER")])
    sql = "SELECT period_start, channel, volume FROM funnel_refined.funnel_monthly LIMIT 5"
    out = json.loads(_cli(gcp_double, tmp_path, "query", sql, "--json").stdout)
    assert out["columns"] == ["period_start", "channel", "volume"]
    assert out["rows"] == [{"period_start": "2024-01-01", "channel": "Web", "volume": 7}]
    csv_out = _cli(gcp_double, tmp_path, "query", sql, "--format", "csv").stdout
    assert csv_out.splitlines() == ["period_start,channel,volume", "2024-01-01,Web,7"]
    sent = len(gcp_double.bigquery.jobs.queries)
    err = json.loads(_cli(gcp_double, tmp_path, "--json", "query",
                          "DELETE FROM funnel_refined.funnel_monthly WHERE true", code=2).stdout)
    assert err["exit_code"] == 2 and "line 1" in err["message"]
    assert len(gcp_double.bigquery.jobs.queries) == sent  # refused before BigQuery saw it
    gcp_double.bigquery.add_answer(r"nope", error="Unrecognized name: nope at [1:8]")
    bad = json.loads(_cli(gcp_double, tmp_path, "--json", "query", "SELECT nope FROM funnel_refined.funnel_monthly",
                          code=2).stdout)
    assert "Unrecognized name: nope" in bad["message"] and "funnelops tables" in bad["hint"]


def test_status_on_gcp_never_suggests_serve_and_names_bigquery(gcp_double, fake_gcs, tmp_path: Path) -> None:
    pytest.importorskip("google.cloud.scheduler_v1")
    st = json.loads(_cli(gcp_double, tmp_path, "--json", "status", FUNNELOPS_STORAGE_ENDPOINT=fake_gcs.url,
                         FUNNELOPS_DATAPROC_ENDPOINT=gcp_double.url, FUNNELOPS_SCHEDULER_ENDPOINT=gcp_double.url).stdout)
    assert st["where"]["warehouse"] == f"BigQuery project {P}"
    assert st["where"]["quarantine"] == "gs://analitica-funnel-trusted/_quarantine/"
    assert "scheduler serve" not in st["next"]
