"""The gcp path (Spark staging) under the same hostile raw input as tests/reliability/test_raw_input.py:
headers are read by name or refused, empty sources fail unless ALLOW_EMPTY, links are refused,
a quote that never closes costs its own line only (Spark reads line by line) and period-rule
quarantine keeps the raw record."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import duckdb
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.reliability]
pyspark = pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Java is not installed", allow_module_level=True)

from funnelops.flows.args import resolve_period  # noqa: E402
from funnelops.flows.context import RunContext  # noqa: E402
from funnelops.flows.engine import SparkEngine  # noqa: E402
from funnelops.flows.engines.spark_trusted import SparkTrusted  # noqa: E402
from funnelops.flows.raw import FlowSourceError  # noqa: E402
from funnelops.flows.trusted_runner import run_trusted  # noqa: E402
from funnelops.spec.loader import load_project  # noqa: E402
from funnelops.spec.models import Quality  # noqa: E402

PROJECT = Path(__file__).resolve().parents[2] / "projects" / "funnel" / "funnel.yaml"
LEADS = "FUNNEL/TERADATA/leads/2024/03/leads_20240305.csv"
WON = "FUNNEL/TERADATA/won_deals/2024/03/won_deals_20240305.csv"
HEADER = "ID_LEAD,FECHA_CREACION,CANAL,SEGMENTO,REGION,CIUDAD,ASESOR,EMPRESA,MONTO_ESTIMADO_COP"


@pytest.fixture(scope="module")
def spark():
    engine = SparkEngine("America/Bogota", master="local[1]", app="funnelops-spark-raw-input")
    yield engine
    engine.close()


@pytest.fixture
def run(spark, tmp_path):
    loaded = load_project(PROJECT)
    # hostile input on purpose: most rows are quarantined, which the quarantine limit would refuse
    loaded = dataclasses.replace(loaded, spec=loaded.spec.model_copy(update={"quality": Quality(max_quarantine_share=1)}))
    raw, trusted = tmp_path / "raw", tmp_path / "trusted"
    raw.mkdir()

    def go(name: str):
        ctx = RunContext(loaded, "DAY", "delta", resolve_period("DAY", "2024-03-05", "America/Bogota"))
        with SparkTrusted.open(ctx, spark.session, raw_root=raw.as_uri(), trusted_root=trusted.as_uri()) as engine:
            [r] = run_trusted(ctx, [name], engine)
        return r

    def write(rel: str, text: str) -> Path:
        p = raw / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        return p

    def rows(prefix: str, order: str) -> list[dict]:
        con = duckdb.connect()
        cur = con.execute("SELECT * FROM read_parquet(?, hive_partitioning = true) ORDER BY " + order,
                          [str(trusted / prefix / "**" / "*.parquet")])
        return [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]

    go.write, go.rows, go.raw = write, rows, raw
    return go


def test_spark_reads_swapped_columns_by_name_and_keeps_period_raw_record(run):
    swapped = HEADER.replace("CANAL,SEGMENTO", "SEGMENTO,CANAL")
    other = "L3,2024-03-04 10:00:00,Pyme,Web,Andina,Cali,Ana,Tres,3"
    run.write(LEADS, swapped + "\nL1,2024-03-05 08:00:00,Pyme,Web,Andina,Cali,Ana,Uno,1\n"
                     'L2,2024-03-05 09:00:00,Gobierno,Evento,Andina,Cali,Ana,"Dos,2\n' + other + "\n")
    r = run("leads")
    assert (r.read, r.kept, r.quarantined) == (3, 1, 2)
    assert r.rules == {"date_in_period": 1, "unparsable_line": 1}
    [kept] = run.rows("leads", "lead_id")
    assert (kept["channel"], kept["segment"]) == ("Web", "Pyme")
    q = {x["source_line"]: (x["rule"], x["raw_record"]) for x in run.rows("_quarantine/leads", "source_line")}
    assert q[4] == ("date_in_period", "L3,2024-03-04 10:00:00,Web,Pyme,Andina,Cali,Ana,Tres,3")


def test_spark_refuses_bad_headers_empty_sources_and_links(run, tmp_path):
    run.write(LEADS, HEADER.replace("SEGMENTO", "SEGMENT") + "\nL1,2024-03-05 08:00:00,Web,Pyme,Andina,Cali,Ana,Uno,1\n")
    with pytest.raises(FlowSourceError, match="missing SEGMENTO; unexpected SEGMENT"):
        run("leads")
    run.write(LEADS, HEADER + "\n")
    with pytest.raises(FlowSourceError, match="has a header but no data rows"):
        run("leads")
    run.write(WON, "ID_NEGOCIO,ID_OPORTUNIDAD,ID_LEAD,FECHA_CIERRE,MONTO_COP,ASESOR\n")
    assert run("won_deals").read == 0                       # won_deals declares ALLOW_EMPTY = True
    (run.raw / LEADS).unlink()
    outside = tmp_path / "outside.csv"
    outside.write_text(HEADER + "\nL1,2024-03-05 08:00:00,Web,Pyme,Andina,Cali,Ana,Uno,1\n")
    os.symlink(outside, run.raw / LEADS)
    with pytest.raises(FlowSourceError, match="symbolic link"):
        run("leads")
