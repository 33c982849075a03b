"""Raw layouts a team's extracts really have, run on the DuckDB engine over real files.

A copy of the example project gets one extra trusted flow per test (its FILES, DATE_COLUMN, CSV
as the test says); the flow runs through the real runner and the trusted/quarantine Parquet
it writes is read back.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from funnelops.backends.local.flows_runtime import LocalFolders
from funnelops.flows.args import resolve_period
from funnelops.flows.context import RunContext
from funnelops.flows.engines.duckdb_trusted import DuckTrusted
from funnelops.flows.registry import FlowDefinitionError, load_trusted
from funnelops.flows.trusted_runner import run_trusted
from funnelops.errors import ProjectError
from funnelops.spec.loader import load_project

FUNNEL = Path(__file__).resolve().parents[3] / "projects" / "funnel"

FLOW = '''
from funnelops.flows import dq
from funnelops.flows.engine import F

FILES = {files!r}
COLUMNS = ("lead_id", "first_contact_date", "origin")
TARGET = "crm_leads"
PARTITION = "event_date"
OUTPUT = ("lead_id", "origin", "event_date")
{extra}

def transform(raw):
    typed = raw.select(
        dq.text("lead_id").alias("lead_id"),
        dq.text("origin").alias("origin"),
        {to_date}.alias("event_date"),
        *dq.lineage(COLUMNS),
    )
    checked = typed.withColumn("dq_rule", dq.first_failing([("id_not_null", F.col("lead_id").isNull())]))
    return dq.finish(checked, OUTPUT)
'''
ISO_DATE = 'F.to_date(F.substring(F.col("first_contact_date"), 1, 10))'


@pytest.fixture
def world(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(FUNNEL, project, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    home = tmp_path / "home"
    state = {}

    def flow(files: str, extra: str = "", to_date: str = ISO_DATE) -> Path:
        path = project / "flows" / "trusted" / "crm.py"
        path.write_text(FLOW.format(files=files, extra=extra, to_date=to_date), encoding="utf-8")
        try:  # validate refuses a broken layout too (spec/flow_checks.py); the runtime is tested below it
            state["loaded"], state["refused"] = load_project(project / "funnel.yaml"), None
        except ProjectError as exc:
            state["loaded"], state["refused"] = None, exc
        return path

    def raw(rel: str, content: str | bytes) -> Path:
        loaded = state.get("loaded") or load_project(project / "funnel.yaml")
        p = home / "buckets" / loaded.spec.bucket_for("raw").name / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return p

    def run(granularity: str = "DAY", period: str = "2024-03-05", execution_type: str = "delta"):
        loaded = state["loaded"]
        ctx = RunContext(loaded, granularity, execution_type, resolve_period(granularity, period, "UTC"))
        with DuckTrusted.open(ctx, LocalFolders(home)) as engine:
            [result] = run_trusted(ctx, ["crm"], engine)
        return result

    def rows(table: str, order_by: str) -> list[dict]:
        folder = home / "buckets" / state["loaded"].spec.bucket_for("trusted").name / table
        if not any(folder.glob("**/*.parquet")):
            return []
        con = duckdb.connect()
        cur = con.execute(f"SELECT * FROM read_parquet('{folder}/**/*.parquet', hive_partitioning = true) "
                          f"ORDER BY {order_by}")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    class World:
        pass

    world = World()
    world.flow, world.raw, world.run, world.rows = flow, raw, run, rows  # type: ignore[attr-defined]
    world.project, world.home = project, home  # type: ignore[attr-defined]
    type(world).refused = property(lambda _self: state.get("refused"))  # type: ignore[attr-defined]
    return world


LEADS = ("lead_id,first_contact_date,origin\n"
         "1,2024-03-04,web\n"
         "2,2024-03-05,email\n"
         ",2024-03-05,web\n"                 # line 4: in the period, quarantined (no id)
         "4,2024-03-05 10:30:00,paid\n"
         ",2024-03-06,web\n"                 # another period's bad row: not this run's business
         "6,2024-04-01,web\n")


def test_yearly_files_with_yyyy_only_run_delta_and_full(world):
    """`{yyyy}` alone passed the check and then crashed with `IndexError: no such group` on a full
    run (main); now it names one file per year."""
    world.flow("crm/{yyyy}/leads.csv")
    world.raw("crm/2024/leads.csv", LEADS)
    world.raw("crm/2023/leads.csv", "lead_id,first_contact_date,origin\n9,2023-12-31,web\n")
    full = world.run(execution_type="full")
    assert (full.read, full.kept, full.quarantined) == (7, 5, 2)
    delta = world.run("MONTH", "2024-03")          # reads the 2024 file, replaces 2024's partitions
    assert delta.read == 6 and delta.kept == 4
    assert {r["lead_id"] for r in world.rows("crm_leads", "lead_id")} == {"1", "2", "4", "6", "9"}


@pytest.mark.parametrize("files", ["crm/{mm}/leads.csv", "crm/{yyyy}/{dd}.csv", "crm/{dd}.csv", "crm/{YYYY}.csv"])
def test_placeholders_that_name_no_period_are_refused_naming_the_file(world, files):
    path = world.flow(files)
    with pytest.raises(FlowDefinitionError) as exc:
        load_trusted(world.project, "crm")
    assert str(path) in str(exc.value) and "FILES" in str(exc.value)
    [problem] = world.refused.problems  # and `validate` says it first, at the flow's FILES line
    assert problem.file == str(path) and problem.field.endswith("FILES")


def test_daily_files_with_separate_placeholders(world):
    """`{yyyy}/{mm}/{dd}` (no `{yyyymmdd}`) also crashed on a full run on main."""
    world.flow("crm/{yyyy}/{mm}/{dd}.csv")
    world.raw("crm/2024/03/05.csv", "lead_id,first_contact_date,origin\n2,2024-03-05,email\n")
    world.raw("crm/2024/03/06.csv", "lead_id,first_contact_date,origin\n3,2024-03-06,email\n")
    assert world.run(execution_type="full").kept == 2
    assert world.run().kept == 1


def test_snapshot_is_filtered_to_the_period_and_counts_close(world):
    """A whole-history file read every run: refused on main ("FILES needs date placeholders")."""
    world.flow("crm/leads.csv", 'DATE_COLUMN = "first_contact_date"')
    world.raw("crm/leads.csv", LEADS)
    day = world.run()
    assert (day.read, day.kept, day.quarantined, day.out_of_period) == (3, 2, 1, 3)
    assert day.rules == {"id_not_null": 1}
    [q] = world.rows("_quarantine/crm", "source_line")
    assert (q["source_file"], q["source_line"], q["raw_record"]) == ("crm/leads.csv", 4, ",2024-03-05,web")
    assert [r["lead_id"] for r in world.rows("crm_leads", "lead_id")] == ["2", "4"]
    month = world.run("MONTH", "2024-03")
    assert (month.read, month.out_of_period) == (5, 1)
    assert len(world.rows("_quarantine/crm", "source_line")) == 2     # the day's partition was replaced
    full = world.run(execution_type="full")
    assert (full.read, full.kept, full.quarantined, full.out_of_period) == (6, 4, 2, 0)


def test_snapshot_date_formats(world):
    world.flow("crm/leads.csv", 'DATE_COLUMN = "first_contact_date"\nDATE_FORMATS = ("%d/%m/%Y",)',
               to_date='F.to_date(F.col("first_contact_date"), "dd/MM/yyyy")')
    world.raw("crm/leads.csv", "lead_id,first_contact_date,origin\n1,05/03/2024,web\n2,06/03/2024,web\n")
    r = world.run()
    assert (r.read, r.out_of_period) == (1, 1)


def test_snapshot_without_period_filter_is_read_whole(world):
    world.flow("ref/origins.csv", "PERIOD_FILTER = False")
    world.raw("ref/origins.csv", LEADS)
    r = world.run()
    assert (r.read, r.kept, r.out_of_period) == (6, 4, 0)
    assert len(world.rows("crm_leads", "lead_id")) == 4


def test_snapshot_without_date_column_is_refused_naming_the_file(world):
    path = world.flow("crm/leads.csv")
    with pytest.raises(FlowDefinitionError) as exc:
        load_trusted(world.project, "crm")
    assert str(path) in str(exc.value) and "DATE_COLUMN" in str(exc.value)


def test_semicolon_latin1_csv_is_read_right(world):
    world.flow("crm/{yyyymmdd}.csv", 'CSV = {"delimiter": ";", "encoding": "latin-1"}')
    world.raw("crm/20240305.csv", "lead_id;first_contact_date;origin\n1;2024-03-05;\"Bogotá; centro\"\n"
                                  "2;2024-03-05;Medellín\n".encode("latin-1"))
    r = world.run()
    assert (r.read, r.kept) == (2, 2)
    assert [x["origin"] for x in world.rows("crm_leads", "lead_id")] == ["Bogotá; centro", "Medellín"]


def test_headerless_csv_reads_every_line_and_names_lines(world):
    world.flow("crm/{yyyymmdd}.csv", 'CSV = {"header": False}')
    world.raw("crm/20240305.csv", "1,2024-03-05,web\n,2024-03-05,web\n")
    r = world.run()
    assert (r.read, r.kept, r.quarantined) == (2, 1, 1)
    [q] = world.rows("_quarantine/crm", "source_line")
    assert q["source_line"] == 2


def test_bad_csv_options_are_refused_naming_the_file(world):
    path = world.flow("crm/{yyyymmdd}.csv", 'CSV = {"delimiter": ";;", "encoding": "utf-16"}')
    with pytest.raises(FlowDefinitionError) as exc:
        load_trusted(world.project, "crm")
    assert str(path) in str(exc.value) and "delimiter" in str(exc.value)
