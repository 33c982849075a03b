"""The trusted flows give identical rows on real PySpark and on SQLFrame/DuckDB.

Both engines get the same staged input (the runtime's DuckDB staging of generated raw files, as
Parquet) and run the same flow file; both outputs are written as Parquet and compared row for row
(EXCEPT ALL both ways, so duplicates count) in DuckDB.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.spark
pyspark = pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Java is not installed", allow_module_level=True)

from funnelops.flows import raw as rawmod  # noqa: E402
from funnelops.flows.engine import DuckEngine, SparkEngine, activate  # noqa: E402
from funnelops.lifecycle.sample_data import generate_raw  # noqa: E402
from funnelops.flows.registry import load_trusted, trusted_names  # noqa: E402
from funnelops.spec.loader import load_project  # noqa: E402

PROJECT = Path(__file__).resolve().parents[2] / "projects" / "funnel" / "funnel.yaml"


@pytest.fixture(scope="module")
def spark():
    engine = SparkEngine("America/Bogota", master="local[2]", app="funnelops-parity")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """name -> Parquet file holding the staged raw input of that flow."""
    loaded = load_project(PROJECT)
    home = tmp_path_factory.mktemp("parity")
    generate_raw(loaded, home, 4000, date(2024, 1, 1), date(2024, 2, 15), seed=5)
    raw_root = home / "buckets" / loaded.spec.bucket_for("raw").name
    out = {}
    con = duckdb.connect()
    for name in trusted_names(loaded.base_dir):
        module = load_trusted(loaded.base_dir, name)
        files = rawmod.source_files(raw_root, module.FILES, None)
        s = rawmod.stage(con, f"stg_{name}", raw_root, files, tuple(module.COLUMNS),
                         allow_empty=getattr(module, "ALLOW_EMPTY", False))
        out[name] = home / f"{name}.parquet"
        con.execute(f"COPY (SELECT * FROM {s.view}) TO '{out[name]}' (FORMAT parquet)")
    con.close()
    return loaded, out


def test_each_trusted_flow_gives_identical_rows(spark, staged, tmp_path):
    loaded, inputs = staged
    for name, parquet in inputs.items():
        activate("spark")
        module = load_trusted(loaded.base_dir, name)
        spark_out = tmp_path / f"{name}-spark"
        module.transform(spark.read_parquet(str(parquet))).write.parquet(str(spark_out))

        activate("duckdb")
        module = load_trusted(loaded.base_dir, name)
        duck = DuckEngine("America/Bogota")
        try:
            duck.con.execute(f"CREATE TABLE stg AS SELECT * FROM read_parquet('{parquet}')")
            sql = duck.to_sql(module.transform(duck.table("stg")))
            duck_out = tmp_path / f"{name}-duck.parquet"
            duck.con.execute(f"COPY ({sql}) TO '{duck_out}' (FORMAT parquet)")
        finally:
            duck.close()

        con = duckdb.connect()
        a = f"read_parquet('{spark_out}/*.parquet')"
        b = f"read_parquet('{duck_out}')"
        n_a, n_b = (con.execute(f"SELECT count(*) FROM {x}").fetchone()[0] for x in (a, b))
        assert n_a == n_b > 0, name
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {b}").fetchall()]
        assert cols == [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {a}").fetchall()], name
        for x, y in ((a, b), (b, a)):
            diff = con.execute(f"SELECT * FROM {x} EXCEPT ALL SELECT * FROM {y} LIMIT 3").fetchall()
            assert diff == [], (name, diff)
        rules = con.execute(f"SELECT count(DISTINCT dq_rule) FROM {b}").fetchone()[0]
        assert rules >= 1, name  # the generated input exercises the rules, not only clean rows
