"""The gcp path's trusted layer (Spark staging + dynamic partition overwrite) against the local one.

One generated raw dataset; the DuckDB path writes trusted Parquet into the local buckets, the
Spark path reads the same raw bucket as a `file://` URI root (as it reads `gs://` on Dataproc)
and writes into another root. Kept rows, quarantined rows (rule, source file, line, raw text)
and the per-rule counts must be equal, row for row (EXCEPT ALL both ways, so duplicates count),
and re-running periods on Spark must leave exactly the same rows.
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

from funnelops.backends.local.flows_runtime import LocalFolders  # noqa: E402
from funnelops.flows import spark_io  # noqa: E402
from funnelops.flows.args import resolve_period  # noqa: E402
from funnelops.flows.context import RunContext  # noqa: E402
from funnelops.flows.engine import SparkEngine  # noqa: E402
from funnelops.flows.engines.duckdb_trusted import DuckTrusted  # noqa: E402
from funnelops.flows.engines.spark_trusted import SparkTrusted  # noqa: E402
from funnelops.flows.trusted_runner import QUARANTINE, run_trusted  # noqa: E402
from funnelops.lifecycle.sample_data import generate_raw  # noqa: E402
from funnelops.flows.registry import load_trusted, trusted_names  # noqa: E402
from funnelops.spec.loader import load_project  # noqa: E402

PROJECT = Path(__file__).resolve().parents[2] / "projects" / "funnel" / "funnel.yaml"
TZ = "America/Bogota"


@pytest.fixture(scope="module")
def spark():
    engine = SparkEngine(TZ, master="local[2]", app="funnelops-spark-io")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def loaded():
    return load_project(PROJECT)


def _ctx(loaded, granularity: str, execution_type: str, period: str = "2024") -> RunContext:
    """A run's context; a `full` run ignores the period, so any valid one does."""
    if execution_type == "full":
        granularity, period = "YEAR", "2024"
    return RunContext(loaded=loaded, granularity=granularity, execution_type=execution_type,
                      period=resolve_period(granularity, period, TZ))


def _duck_run(ctx: RunContext, home: Path, names: list[str]):
    """The local path: DuckDB over the home's buckets."""
    with DuckTrusted.open(ctx, LocalFolders(home)) as engine:
        return run_trusted(ctx, names, engine)


def _spark_run(ctx: RunContext, names: list[str], spark, raw_root: str, trusted_root: str):
    """The gcp path's engine on the test's session, over file:// roots."""
    with SparkTrusted.open(ctx, spark.session, raw_root=raw_root, trusted_root=trusted_root) as engine:
        return run_trusted(ctx, names, engine)


@pytest.fixture(scope="module")
def world(tmp_path_factory, loaded):
    """Raw data, the DuckDB path's full build, and the roots the Spark path uses."""
    home = tmp_path_factory.mktemp("spark-io")
    report = generate_raw(loaded, home, 8000, date(2024, 1, 20), date(2024, 2, 12), seed=17)
    names = trusted_names(loaded.base_dir)
    duck = {r.flow: r for r in _duck_run(_ctx(loaded, "DAY", "full"), home, names)}
    raw = home / "buckets" / loaded.spec.bucket_for("raw").name
    return {"home": home, "report": report, "names": names, "duck": duck,
            "duck_trusted": home / "buckets" / loaded.spec.bucket_for("trusted").name,
            "raw_uri": raw.as_uri(), "spark_trusted": home / "spark-trusted"}


def _rel(root: Path, sub: str) -> str:
    return f"read_parquet('{root / sub}/**/*.parquet', hive_partitioning = true)"


def _same_rows(a: str, b: str, what: str) -> int:
    """Row count of `a` after asserting it holds exactly the rows of `b` (0: neither has files)."""
    exists = [any(Path(x.split("'")[1].split("/**")[0]).glob("**/*.parquet")) for x in (a, b)]
    assert exists[0] == exists[1], (what, exists)
    if not exists[0]:
        return 0
    con = duckdb.connect()
    try:
        n_a, n_b = (con.execute(f"SELECT count(*) FROM {x}").fetchone()[0] for x in (a, b))
        assert n_a == n_b, (what, n_a, n_b)
        cols_a = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {a}").fetchall()]
        cols_b = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {b}").fetchall()]
        assert sorted(cols_a) == sorted(cols_b), what
        cols = ", ".join(f'"{c}"' for c in sorted(cols_a))
        for x, y in ((a, b), (b, a)):
            diff = con.execute(f"SELECT {cols} FROM {x} EXCEPT ALL SELECT {cols} FROM {y} LIMIT 3").fetchall()
            assert diff == [], (what, diff)
        return n_a
    finally:
        con.close()


def _compare_all(loaded, world, spark_root: Path) -> None:
    for name in world["names"]:
        target = load_trusted(loaded.base_dir, name).TARGET
        assert _same_rows(_rel(spark_root, target), _rel(world["duck_trusted"], target), name) > 0
        q = f"{QUARANTINE}/{name}"
        assert _same_rows(_rel(spark_root, q), _rel(world["duck_trusted"], q), q) == world["duck"][name].quarantined


def test_full_build_equals_the_duckdb_path(spark, loaded, world):
    ctx = _ctx(loaded, "DAY", "full")
    results = _spark_run(ctx, world["names"], spark, world["raw_uri"], world["spark_trusted"].as_uri())
    expected = world["report"].expected_quarantine()
    for r in results:
        d = world["duck"][r.flow]
        assert (r.read, r.kept, r.quarantined, r.rules) == (d.read, d.kept, d.quarantined, d.rules), r.flow
        assert r.read == r.kept + r.quarantined
        assert r.rules == expected[r.flow], r.flow      # what the generator says it made dirty
    # the input exercises staging rejects and flow rules alike, not only clean rows
    assert {"column_count", "duplicate", "parsable_date", "known_stage"} <= {k for r in results for k in r.rules}
    assert all(r.kept > 0 for r in results)
    _compare_all(loaded, world, world["spark_trusted"])


def test_rerunning_periods_replaces_exactly_their_partitions(spark, loaded, world):
    root = world["spark_trusted"]
    if not (root / "leads").is_dir():
        _spark_run(_ctx(loaded, "DAY", "full"), world["names"], spark, world["raw_uri"], root.as_uri())
    for gran, period in (("DAY", "2024-02-03"), ("MONTH", "2024-02"), ("DAY", "2024-02-03")):
        ctx = _ctx(loaded, gran, "delta", period)
        got = _spark_run(ctx, world["names"], spark, world["raw_uri"], root.as_uri())
        assert all(r.read == r.kept + r.quarantined for r in got) and sum(r.read for r in got) > 0, gran
    # A partition of the period that the new output lacks is removed; one outside it is kept.
    leads = root / "leads"
    some = next((leads / "event_date=2024-02-03").glob("*.parquet"))
    for planted in ("event_date=2024-02-20", "event_date=2024-03-01"):
        (leads / planted).mkdir()
        shutil.copy(some, leads / planted / some.name)
    _spark_run(_ctx(loaded, "MONTH", "delta", "2024-02"), ["leads"], spark, world["raw_uri"], root.as_uri())
    assert not (leads / "event_date=2024-02-20").exists()
    assert (leads / "event_date=2024-03-01").is_dir()
    shutil.rmtree(leads / "event_date=2024-03-01")
    _compare_all(loaded, world, root)
    con = duckdb.connect()
    n, distinct = con.execute(f"SELECT count(*), count(DISTINCT lead_id) FROM {_rel(root, 'leads')}").fetchone()
    assert n == distinct > 0


def test_period_counts_equal_the_duckdb_path(spark, loaded, world, tmp_path):
    ctx = _ctx(loaded, "DAY", "delta", "2024-02-01")
    duck = {r.flow: r for r in _duck_run(ctx, world["home"], world["names"])}
    got = _spark_run(ctx, world["names"], spark, world["raw_uri"], (tmp_path / "t").as_uri())
    for r in got:
        d = duck[r.flow]
        assert (r.read, r.kept, r.quarantined, r.rules) == (d.read, d.kept, d.quarantined, d.rules), r.flow


def test_source_files_and_csv_lines(spark, loaded, world):
    module = load_trusted(loaded.base_dir, "leads")
    period = resolve_period("DAY", "2024-02-01", TZ)
    files = spark_io.source_files(spark.session, world["raw_uri"], module.FILES, period)
    assert files == [(date(2024, 2, 1), "FUNNEL/TERADATA/leads/2024/02/leads_20240201.csv")]
    every = spark_io.source_files(spark.session, str(Path(world["raw_uri"][len("file://"):])), module.FILES, None)
    assert len(every) == 24 and every[0][0] == date(2024, 1, 20)
    assert spark_io.parse_line('a,"b, c",,d', 4) == (None, ["a", "b, c", None, "d"])
    assert spark_io.parse_line("a,b,c,d,e", 4) == ("column_count", [])
    assert spark_io.parse_line("a,b", 4) == ("column_count", [])


def test_flows_program_takes_the_gcp_path(spark, loaded, world, monkeypatch, tmp_path):
    """`python -m funnelops.flows` as the Dataproc launcher runs it (FUNNELOPS_BACKEND=gcp),
    with the buckets under a file:// root instead of gs://: Spark trusted, metrics file."""
    import json

    from funnelops.flows.cli import main

    buckets = tmp_path / "buckets"
    shutil.copytree(Path(world["raw_uri"][len("file://"):]), buckets / loaded.spec.bucket_for("raw").name)
    monkeypatch.setenv("FUNNELOPS_BACKEND", "gcp")
    monkeypatch.setenv("FUNNELOPS_ENGINE", "spark")
    monkeypatch.setenv("FUNNELOPS_BUCKETS_URI", buckets.as_uri())
    monkeypatch.setenv("FUNNELOPS_PROJECT", str(PROJECT))
    monkeypatch.setenv("FUNNELOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FUNNELOPS_METRICS_FILE", str(tmp_path / "metrics.json"))
    assert main(["--granularity=DAY", "--period=2024-02-01", "--trusted_flows=leads,targets",
                 "--refined_flows=false"]) == 0
    flows = {f["flow"]: f for f in json.loads((tmp_path / "metrics.json").read_text())["flows"]}
    assert sorted(flows) == ["leads", "targets"] and flows["leads"]["kept"] > 0
    trusted_dir = buckets / loaded.spec.bucket_for("trusted").name
    assert [p.name for p in (trusted_dir / "leads").iterdir() if p.is_dir()] == ["event_date=2024-02-01"]
    assert (trusted_dir / "targets" / "event_date=2024-02-01").is_dir()
    assert not (tmp_path / "home" / "warehouse.duckdb").exists()   # nothing went to the local path
    assert spark.session.range(1).count() == 1                      # the caller's session is still up
