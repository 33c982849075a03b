"""The configurable `dq` helpers and the quarantine limit give the same answers on real PySpark.

The helper cases are the unit test's (tests/unit/flows/test_dq_helpers.py): each value goes
through every helper on both engines, and both must match the hand-worked expectations. Then the
quarantine limit on the Spark engine: the same message (rules, sample lines) as on DuckDB, and
nothing written.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.spark
pyspark = pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Java is not installed", allow_module_level=True)

from funnelops.flows.args import resolve_period  # noqa: E402
from funnelops.flows.context import RunContext  # noqa: E402
from funnelops.flows.engine import SparkEngine, activate  # noqa: E402
from funnelops.flows.engines.spark_trusted import SparkTrusted  # noqa: E402
from funnelops.flows.quality import QuarantineLimitExceeded  # noqa: E402
from funnelops.flows.trusted_runner import run_trusted  # noqa: E402
from funnelops.spec.loader import load_project  # noqa: E402
from funnelops.spec.models import Quality  # noqa: E402

PROJECT = Path(__file__).resolve().parents[2] / "projects" / "funnel" / "funnel.yaml"
LEADS = "FUNNEL/TERADATA/leads/2024/03/leads_20240305.csv"
HEADER = "ID_LEAD,FECHA_CREACION,CANAL,SEGMENTO,REGION,CIUDAD,ASESOR,EMPRESA,MONTO_ESTIMADO_COP\n"


def _cases():
    path = Path(__file__).resolve().parents[1] / "unit" / "flows" / "test_dq_helpers.py"
    spec = importlib.util.spec_from_file_location("dq_helper_cases", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def spark():
    engine = SparkEngine("America/Bogota", master="local[1]", app="funnelops-dq-parity")
    yield engine
    engine.close()


def test_helpers_give_identical_values_on_spark_and_duckdb(spark):
    cases = _cases()
    duck = cases.duck_rows()
    activate("spark")
    try:
        df = spark.session.createDataFrame(list(enumerate(cases.VALUES)), "i INT, v STRING")
        out = df.select(df["v"], *[c.alias(n) for n, c in cases.helper_columns()])
        got = {r["v"]: r.asDict() for r in out.collect()}
    finally:
        activate("duckdb")
    for value in cases.VALUES:
        assert got[value] == duck[value] == cases.expected_row(value), value


def test_the_limit_fails_on_spark_with_the_same_message_and_writes_nothing(spark, tmp_path):
    loaded = load_project(PROJECT)
    raw, trusted = tmp_path / "raw", tmp_path / "trusted"
    (raw / LEADS).parent.mkdir(parents=True)

    def go(max_share: float | None = None):
        project = loaded if max_share is None else dataclasses.replace(
            loaded, spec=loaded.spec.model_copy(update={"quality": Quality(max_quarantine_share=max_share)}))
        ctx = RunContext(project, "DAY", "delta", resolve_period("DAY", "2024-03-05", "America/Bogota"))
        with SparkTrusted.open(ctx, spark.session, raw_root=raw.as_uri(), trusted_root=trusted.as_uri()) as engine:
            [r] = run_trusted(ctx, ["leads"], engine)
        return r

    def table(prefix: str) -> list[tuple]:
        return duckdb.connect().execute("SELECT * FROM read_parquet(?, hive_partitioning = true) ORDER BY ALL",
                                        [str(trusted / prefix / "**" / "*.parquet")]).fetchall()

    (raw / LEADS).write_text(HEADER + "G1,2024-03-05,Web,Pyme,Andina,Cali,Ana,Uno,1\n"
                                      "G2,2024-03-05T09:00:00,Web,Pyme,Andina,Cali,Ana,Dos,2\n"
                                      "G3,05/03/2024 09:00:00,Web,Pyme,Andina,Cali,Ana,Tres,3\n", encoding="utf-8")
    assert go().kept == 2   # plain and ISO-T dates are timestamps on Spark too
    before = table("leads"), table("_quarantine/leads")
    (raw / LEADS).write_text(HEADER + "".join(f"B{i},05/03/2024,Web,Pyme,Andina,Cali,Ana,Malo {i},1\n" for i in range(3))
                             + "N1,2024-03-05,Web,Pyme,Andina,Cali,Ana,Negativo,-1\n"
                             + "K1,2024-03-05,Web,Pyme,Andina,Cali,Ana,Bueno,1\n", encoding="utf-8")
    with pytest.raises(QuarantineLimitExceeded) as e:
        go()
    msg = e.value.message
    assert "trusted flow leads quarantined 4 of the 5 rows it read (80.0%)" in msg
    assert "top rules: parsable_date 3, amount_non_negative 1" in msg
    assert f"{LEADS}:2 [parsable_date] B0,05/03/2024,Web,Pyme,Andina,Cali,Ana,Malo 0,1" in msg
    assert f"{LEADS}:3 [parsable_date] B1," in msg and f"{LEADS}:4 [parsable_date]" not in msg
    assert f"{LEADS}:5 [amount_non_negative] N1,2024-03-05," in msg
    assert (table("leads"), table("_quarantine/leads")) == before
    r = go(max_share=0.8)
    assert (r.read, r.kept, r.quarantined) == (5, 1, 4)
