"""Hostile raw input: each attack builds a small raw tree with one bad file and checks that the run
fails naming the file (or quarantines, with counts that add up) and that the trusted partition
keeps the rows of the previous good run. Issue #9, items 3, 4, 5, 13 and 17 (a, b, c)."""

from __future__ import annotations

import os
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from funnelops.errors import ProjectError
from funnelops.flows.args import resolve_period
from funnelops.backends.local.flows_runtime import LocalFolders
from funnelops.flows.context import RunContext
from funnelops.flows.engines.duckdb_trusted import DuckTrusted
from funnelops.flows.raw import FlowSourceError
from funnelops.flows.registry import FlowDefinitionError, trusted_names
from funnelops.flows.trusted_runner import run_trusted
from funnelops.spec.loader import load_project

pytestmark = pytest.mark.reliability

PROJECT = Path(__file__).resolve().parents[2] / "projects" / "funnel" / "funnel.yaml"
LEADS = "FUNNEL/TERADATA/leads/2024/03/leads_20240305.csv"
WON = "FUNNEL/TERADATA/won_deals/2024/03/won_deals_20240305.csv"
TARGETS = "FUNNEL/EXCEL/metas/2024/metas_202403.xlsx"
COLS = ("ID_LEAD", "FECHA_CREACION", "CANAL", "SEGMENTO", "REGION", "CIUDAD", "ASESOR", "EMPRESA",
        "MONTO_ESTIMADO_COP")
TARGET_COLS = ("MES", "CANAL", "SEGMENTO", "META_NEGOCIOS", "META_MONTO_COP")


def lead(i: int, canal: str = "Web", segmento: str = "Pyme") -> dict:
    return {"ID_LEAD": f"L{i}", "FECHA_CREACION": "2024-03-05 08:00:00", "CANAL": canal, "SEGMENTO": segmento,
            "REGION": "Andina", "CIUDAD": "Cali", "ASESOR": "Ana", "EMPRESA": f"Empresa {i}",
            "MONTO_ESTIMADO_COP": str(1000 + i)}


def csv_text(rows: list[dict], header=COLS) -> str:
    return ",".join(header) + "\n" + "".join(",".join(r[c] for c in header) + "\n" for r in rows)


@pytest.fixture(scope="module")
def funnel():
    return load_project(PROJECT)


class Raw:
    """A home with the Funnel project's buckets; write raw files, run flows, read trusted rows."""

    def __init__(self, home: Path, loaded):
        self.home, self.loaded = home, loaded
        self.raw = home / "buckets" / loaded.spec.bucket_for("raw").name
        self.trusted = home / "buckets" / loaded.spec.bucket_for("trusted").name

    def write(self, rel: str, content: str | bytes) -> Path:
        p = self.raw / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return p

    def run(self, name: str, period: str = "2024-03-05", granularity: str = "DAY", execution_type: str = "delta"):
        ctx = RunContext(self.loaded, granularity, execution_type, resolve_period(granularity, period, "America/Bogota"))
        with DuckTrusted.open(ctx, LocalFolders(self.home)) as engine:
            [result] = run_trusted(ctx, [name], engine)
        return result

    def rows(self, prefix: str, order_by: str) -> list[dict]:
        folder = self.trusted / prefix
        if not any(folder.glob("**/*.parquet")):
            return []
        con = duckdb.connect()
        try:
            cur = con.execute("SELECT * FROM read_parquet(?, hive_partitioning = true) ORDER BY " + order_by,
                              [str(folder / "**" / "*.parquet")])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]
        finally:
            con.close()


@pytest.fixture
def raw(tmp_path, funnel):
    return Raw(tmp_path, funnel)


def _good_leads(raw: Raw) -> list[dict]:
    """A first good delivery of the day; returns its trusted rows (what a bad one must not lose)."""
    raw.write(LEADS, csv_text([lead(i) for i in range(1, 21)]))
    assert raw.run("leads").kept == 20
    before = raw.rows("leads", "lead_id")
    assert len(before) == 20
    return before


# -- item 3: an unterminated quote swallows the rest of the file ---------------------------------
def test_unterminated_quote_fails_naming_file_and_line(raw):
    before = _good_leads(raw)
    rows = [csv_text([lead(i)], COLS).splitlines()[1] for i in range(1, 1001)]
    rows[2] = rows[2].replace("Empresa 3", '"Empresa 3')           # data row 3 = physical line 4
    raw.write(LEADS, ",".join(COLS) + "\n" + "\n".join(rows) + "\n")
    with pytest.raises(FlowSourceError) as e:
        raw.run("leads")
    msg = e.value.message
    assert LEADS in msg and "line 4" in msg and "997" in msg, msg
    assert raw.rows("leads", "lead_id") == before


def test_unterminated_quote_on_the_last_line_is_quarantined(raw):
    rows = [lead(i) for i in range(1, 6)]
    text = csv_text(rows).rstrip("\n").rsplit("\n", 1)
    raw.write(LEADS, text[0] + '\n' + text[1].replace("Empresa 5", '"Empresa 5') + "\n")
    r = raw.run("leads")
    assert (r.read, r.kept, r.quarantined, r.rules) == (5, 4, 1, {"unparsable_line": 1})


def test_quoted_values_spanning_lines_are_kept(raw):
    rows = [lead(i) for i in range(1, 4)]
    rows[1]["EMPRESA"] = '"Dos\nS.A."'                              # a legal quoted newline
    raw.write(LEADS, csv_text(rows))
    r = raw.run("leads")
    assert (r.read, r.kept, r.quarantined) == (3, 3, 0)
    assert [x["company"] for x in raw.rows("leads", "lead_id")] == ["Empresa 1", "Dos\nS.A.", "Empresa 3"]


def test_a_transform_that_filters_rows_fails(raw, tmp_path, funnel):
    """read = kept + quarantined only holds if transform() returns every row it was given."""
    project = tmp_path / "project"
    shutil.copytree(PROJECT.parent, project)
    flow = project / "flows" / "trusted" / "leads.py"
    flow.write_text(flow.read_text().replace("    return dq.finish(",
                                             "    checked = checked.where(F.col('lead_id') != F.lit('L2'))\n"
                                             "    return dq.finish("))
    raw.loaded = load_project(project / "funnel.yaml")
    raw.write(LEADS, csv_text([lead(i) for i in range(1, 4)]))
    with pytest.raises(FlowSourceError) as e:
        raw.run("leads")
    assert "transform() returned 2 of the 3 rows" in e.value.message and LEADS in e.value.message


# -- item 4: swapped columns ---------------------------------------------------------------------
def test_swapped_csv_columns_are_read_by_name(raw):
    swapped = tuple(c for c in COLS)
    swapped = swapped[:2] + ("SEGMENTO", "CANAL") + swapped[4:]
    raw.write(LEADS, csv_text([lead(1, "Web", "Pyme"), lead(2, "Evento", "Gobierno")], swapped))
    r = raw.run("leads")
    assert (r.read, r.kept) == (2, 2)
    got = [(x["lead_id"], x["channel"], x["segment"]) for x in raw.rows("leads", "lead_id")]
    assert got == [("L1", "Web", "Pyme"), ("L2", "Evento", "Gobierno")]


def test_a_month_of_files_in_two_column_orders(raw):
    swapped = COLS[:2] + ("SEGMENTO", "CANAL") + COLS[4:]
    for day, header in ((4, COLS), (5, swapped), (6, COLS)):
        r = lead(day, "Web", "Pyme")
        r["FECHA_CREACION"] = f"2024-03-{day:02d} 08:00:00"
        raw.write(f"FUNNEL/TERADATA/leads/2024/03/leads_202403{day:02d}.csv", csv_text([r], header))
    assert raw.run("leads", "2024-03", "MONTH").kept == 3
    assert {(x["channel"], x["segment"]) for x in raw.rows("leads", "lead_id")} == {("Web", "Pyme")}


def test_header_with_unknown_columns_fails_naming_them(raw):
    before = _good_leads(raw)
    header = ("ID_LEAD", "FECHA_CREACION", "CANAL", "SEGMENT", "REGION", "CIUDAD", "ASESOR", "EMPRESA",
              "MONTO_ESTIMADO_COP")
    raw.write(LEADS, ",".join(header) + "\n" + "L9,2024-03-05 08:00:00,Web,Pyme,Andina,Cali,Ana,X,1\n")
    with pytest.raises(FlowSourceError) as e:
        raw.run("leads")
    assert LEADS in e.value.message and "missing SEGMENTO" in e.value.message
    assert "unexpected SEGMENT" in e.value.message
    assert raw.rows("leads", "lead_id") == before


def _workbook(path: Path, header: tuple, rows: list[dict]) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.append(["Metas comerciales de marzo de 2024"])
    ws.append([])
    ws.append(list(header))
    for r in rows:
        ws.append([r[c] for c in header])
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)


TARGET_ROWS = [{"MES": "2024-03", "CANAL": "Web", "SEGMENTO": "Pyme", "META_NEGOCIOS": 10, "META_MONTO_COP": 5000},
               {"MES": "2024-03", "CANAL": "Evento", "SEGMENTO": "Gobierno", "META_NEGOCIOS": 2,
                "META_MONTO_COP": 900}]


def test_reordered_xlsx_columns_are_read_by_name(raw):
    reordered = ("MES", "META_MONTO_COP", "SEGMENTO", "META_NEGOCIOS", "CANAL")   # columns 2-5 moved
    _workbook(raw.raw / TARGETS, reordered, TARGET_ROWS)
    r = raw.run("targets", "2024-03-17")
    assert (r.read, r.kept) == (2, 2)
    got = [(x["channel"], x["segment"], x["target_won_count"], int(x["target_amount_cop"]))
           for x in raw.rows("targets", "channel")]
    assert got == [("Evento", "Gobierno", 2, 900), ("Web", "Pyme", 10, 5000)]


def test_xlsx_with_a_missing_column_fails(raw):
    _workbook(raw.raw / TARGETS, TARGET_COLS, TARGET_ROWS)
    assert raw.run("targets", "2024-03-17").kept == 2
    before = raw.rows("targets", "channel")
    _workbook(raw.raw / TARGETS, ("MES", "CANAL", "SEGMENTO", "META_MONTO_COP"),
              [{k: v for k, v in r.items() if k != "META_NEGOCIOS"} for r in TARGET_ROWS])
    with pytest.raises(FlowSourceError) as e:
        raw.run("targets", "2024-03-17")
    assert TARGETS in e.value.message and "missing META_NEGOCIOS" in e.value.message
    assert raw.rows("targets", "channel") == before


# -- item 5: empty sources ----------------------------------------------------------------------
@pytest.mark.parametrize("content", [b"", (",".join(COLS) + "\n").encode(), b"\xef\xbb\xbf" + ",".join(COLS).encode()],
                         ids=["zero-bytes", "header-only", "bom-header-no-newline"])
def test_empty_csv_keeps_the_partition(raw, content):
    before = _good_leads(raw)
    raw.write(LEADS, content)
    with pytest.raises(FlowSourceError) as e:
        raw.run("leads")
    assert LEADS in e.value.message and "ALLOW_EMPTY" in (e.value.hint or "")
    assert ("0 bytes" in e.value.message) == (content == b"")
    assert raw.rows("leads", "lead_id") == before


def test_one_empty_day_fails_a_month_run(raw):
    before = _good_leads(raw)
    raw.write("FUNNEL/TERADATA/leads/2024/03/leads_20240306.csv", ",".join(COLS) + "\n")
    with pytest.raises(FlowSourceError) as e:
        raw.run("leads", "2024-03", "MONTH")
    assert "leads_20240306.csv has a header but no data rows" in e.value.message
    assert raw.rows("leads", "lead_id") == before


def test_empty_workbook_keeps_the_partition(raw):
    _workbook(raw.raw / TARGETS, TARGET_COLS, TARGET_ROWS)
    raw.run("targets", "2024-03-17")
    before = raw.rows("targets", "channel")
    _workbook(raw.raw / TARGETS, TARGET_COLS, [])
    with pytest.raises(FlowSourceError) as e:
        raw.run("targets", "2024-03-17")
    assert TARGETS in e.value.message
    assert raw.rows("targets", "channel") == before


def test_allow_empty_flows_accept_a_header_only_day_but_not_zero_bytes(raw):
    header = "ID_NEGOCIO,ID_OPORTUNIDAD,ID_LEAD,FECHA_CIERRE,MONTO_COP,ASESOR\n"
    raw.write(WON, header + "N1,O1,L1,2024-03-05 08:00:00,100,Ana\n")
    assert raw.run("won_deals").kept == 1
    before = raw.rows("won_deals", "deal_id")
    raw.write(WON, b"")                                           # a failed transfer, ALLOW_EMPTY or not
    with pytest.raises(FlowSourceError, match="0 bytes"):
        raw.run("won_deals")
    assert raw.rows("won_deals", "deal_id") == before
    raw.write(WON, header)                                        # won_deals declares ALLOW_EMPTY = True
    r = raw.run("won_deals")
    assert (r.read, r.kept, r.quarantined) == (0, 0, 0)
    assert raw.rows("won_deals", "deal_id") == []


def test_allow_empty_must_be_a_bool(raw, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(PROJECT.parent, project)
    flow = project / "flows" / "trusted" / "leads.py"
    raw.loaded = load_project(project / "funnel.yaml")
    flow.write_text(flow.read_text() + '\nALLOW_EMPTY = "yes"\n')
    # loading the project reports it at the flow's line, before any run ...
    with pytest.raises(ProjectError) as e:
        load_project(project / "funnel.yaml")
    [p] = e.value.problems
    assert (p.file, p.line) == (str(flow), len(flow.read_text().splitlines())) and "ALLOW_EMPTY" in p.message
    # ... and a run started from a project loaded earlier still refuses it
    with pytest.raises(FlowDefinitionError, match="ALLOW_EMPTY must be True or False"):
        raw.run("leads")


# -- item 17a: the period rule keeps the raw record ------------------------------------------------
def test_period_rule_quarantine_keeps_raw_record(raw):
    other_day = "L2,2024-03-04 23:59:59,Web,Pyme,Andina,Cali,Ana,Dos,7"
    raw.write(LEADS, ",".join(COLS) + "\nL1,2024-03-05 08:00:00,Web,Pyme,Andina,Cali,Ana,Uno,1\n" + other_day + "\n")
    r = raw.run("leads")
    assert r.rules == {"date_in_period": 1}
    [q] = raw.rows("_quarantine/leads", "source_line")
    assert (q["rule"], q["source_line"], q["raw_record"]) == ("date_in_period", 3, other_day)


# -- item 17b: symbolic links in the raw bucket ---------------------------------------------------
def test_symlinked_source_file_is_refused(raw, tmp_path):
    before = _good_leads(raw)
    outside = tmp_path / "outside.csv"
    outside.write_text(csv_text([lead(99)]))
    (raw.raw / LEADS).unlink()
    os.symlink(outside, raw.raw / LEADS)
    for args in ((), ("2024", "YEAR", "full")):
        with pytest.raises(FlowSourceError) as e:
            raw.run("leads", *args)
        assert "symbolic link" in e.value.message and LEADS in e.value.message
    assert raw.rows("leads", "lead_id") == before


def test_symlinked_folder_and_dangling_link_are_refused(raw, tmp_path):
    elsewhere = tmp_path / "elsewhere" / "03"
    elsewhere.mkdir(parents=True)
    (elsewhere / "leads_20240305.csv").write_text(csv_text([lead(1)]))
    (raw.raw / "FUNNEL/TERADATA/leads/2024").mkdir(parents=True)
    os.symlink(elsewhere, raw.raw / "FUNNEL/TERADATA/leads/2024/03")
    with pytest.raises(FlowSourceError, match="source folder FUNNEL/TERADATA/leads/2024/03 .* symbolic link"):
        raw.run("leads")
    os.unlink(raw.raw / "FUNNEL/TERADATA/leads/2024/03")
    raw.write("FUNNEL/TERADATA/leads/2024/03/.keep", "")
    os.symlink("/etc/passwd-does-not-exist", raw.raw / LEADS)
    with pytest.raises(FlowSourceError, match="symbolic link"):
        raw.run("leads")
    assert not (raw.trusted / "leads").exists()


# -- item 17c: flow file names are identifiers ----------------------------------------------------
@pytest.mark.parametrize("bad", ["my-flow.py", "1x.py"])
def test_flow_file_names_must_be_identifiers(tmp_path, bad, capsys, monkeypatch):
    from funnelops.flows.cli import main

    project = tmp_path / "project"
    shutil.copytree(PROJECT.parent, project)
    shutil.copy(project / "flows" / "trusted" / "leads.py", project / "flows" / "trusted" / bad)
    with pytest.raises(FlowDefinitionError) as e:
        trusted_names(project)
    assert bad in e.value.message and "identifier" in e.value.message
    monkeypatch.setenv("FUNNELOPS_HOME", str(tmp_path / "home"))
    assert main([f"--project={project / 'funnel.yaml'}", "--granularity=DAY", "--period=2024-03-05"]) == 2
    err = capsys.readouterr().err
    assert bad in err and "Traceback" not in err


# -- item 13: a home path with a quote ------------------------------------------------------------
def test_home_path_with_a_quote_runs_trusted_and_refined(tmp_path, funnel, monkeypatch, capsys):
    from funnelops.backends.local import LocalBackend
    from funnelops.flows.cli import main
    from funnelops.lifecycle.sample_data import generate_raw
    from funnelops.plan.apply import apply_plan
    from funnelops.plan.diff import build_plan

    home = tmp_path / "o'brien home"
    generate_raw(funnel, home, 1500, date(2024, 2, 10), date(2024, 3, 3), seed=5)
    backend = LocalBackend.for_project(funnel, home)
    assert apply_plan(build_plan(funnel, backend, "iac"), backend).ok
    monkeypatch.setenv("FUNNELOPS_PROJECT", str(PROJECT))
    monkeypatch.setenv("FUNNELOPS_HOME", str(home))
    assert main(["--granularity=DAY", "--execution_type=full"]) == 0, capsys.readouterr().err
    assert main(["--granularity=DAY", "--period=2024-03-02", "--refined_flows=false"]) == 0
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM funnel_refined.funnel_daily").fetchone()[0] > 0
    finally:
        con.close()
