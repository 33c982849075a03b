"""Raw layouts on the Spark path give what they give on DuckDB (tests/integration/local/
test_raw_layouts.py): a snapshot filtered by DATE_COLUMN with the same counts and lines, a
`;`-delimited latin-1 CSV, a headerless CSV, yearly `{yyyy}` files."""

from __future__ import annotations

import shutil

import duckdb
import pytest

pytestmark = pytest.mark.spark
pyspark = pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Java is not installed", allow_module_level=True)

from funnelops.flows.args import resolve_period  # noqa: E402
from funnelops.flows.context import RunContext  # noqa: E402
from funnelops.flows.engine import SparkEngine  # noqa: E402
from funnelops.flows.engines.spark_trusted import SparkTrusted  # noqa: E402
from funnelops.flows.trusted_runner import run_trusted  # noqa: E402
from funnelops.spec.loader import load_project  # noqa: E402
from tests.integration.local.test_raw_layouts import FLOW, FUNNEL, ISO_DATE, LEADS  # noqa: E402


@pytest.fixture(scope="module")
def spark():
    engine = SparkEngine("UTC", master="local[1]", app="funnelops-spark-layouts")
    yield engine
    engine.close()


@pytest.fixture
def world(spark, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(FUNNEL, project, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    raw, trusted = tmp_path / "raw", tmp_path / "trusted"

    class World:
        def flow(self, files: str, extra: str = "") -> None:
            (project / "flows" / "trusted" / "crm.py").write_text(
                FLOW.format(files=files, extra=extra, to_date=ISO_DATE), encoding="utf-8")

        def raw(self, rel: str, content: str | bytes) -> None:
            p = raw / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)

        def run(self, granularity: str = "DAY", period: str = "2024-03-05", execution_type: str = "delta"):
            loaded = load_project(project / "funnel.yaml")
            ctx = RunContext(loaded, granularity, execution_type, resolve_period(granularity, period, "UTC"))
            with SparkTrusted.open(ctx, spark.session, raw_root=raw.as_uri(), trusted_root=trusted.as_uri()) as eng:
                [r] = run_trusted(ctx, ["crm"], eng)
            return r

        def rows(self, table: str, order: str) -> list[dict]:
            cur = duckdb.connect().execute(
                f"SELECT * FROM read_parquet('{trusted / table}/**/*.parquet', hive_partitioning = true) "
                f"ORDER BY {order}")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

    return World()


def test_snapshot_filtered_like_duckdb(world):
    world.flow("crm/leads.csv", 'DATE_COLUMN = "first_contact_date"')
    world.raw("crm/leads.csv", LEADS)
    day = world.run()
    assert (day.read, day.kept, day.quarantined, day.out_of_period) == (3, 2, 1, 3)
    [q] = world.rows("_quarantine/crm", "source_line")
    assert (q["source_file"], q["source_line"], q["raw_record"]) == ("crm/leads.csv", 4, ",2024-03-05,web")
    full = world.run(execution_type="full")
    assert (full.read, full.kept, full.out_of_period) == (6, 4, 0)


def test_semicolon_latin1_and_headerless(world):
    world.flow("crm/{yyyymmdd}.csv", 'CSV = {"delimiter": ";", "encoding": "latin-1"}')
    world.raw("crm/20240305.csv", "lead_id;first_contact_date;origin\n1;2024-03-05;\"Bogotá; centro\"\n"
                                  "2;2024-03-05;Medellín\n".encode("latin-1"))
    assert world.run().kept == 2
    assert [x["origin"] for x in world.rows("crm_leads", "lead_id")] == ["Bogotá; centro", "Medellín"]
    world.flow("crm/{yyyymmdd}.csv", 'CSV = {"header": False}')
    world.raw("crm/20240305.csv", "1,2024-03-05,web\n,2024-03-05,web\n")
    r = world.run()
    assert (r.read, r.kept, r.quarantined) == (2, 1, 1)


def test_yearly_files(world):
    world.flow("crm/{yyyy}/leads.csv")
    world.raw("crm/2024/leads.csv", LEADS)
    assert world.run(execution_type="full").read == 6
