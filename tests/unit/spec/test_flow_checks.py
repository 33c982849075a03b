"""`validate` loads the flows: what a run would trip on is a located error before any run.

Each test copies the example project, breaks one thing a user would break, and checks the
problem names the flow or SQL file and the line. Loading the project (every command) judges the
files as written; `funnelops validate` also executes the trusted flows and parses the SQL for
what it writes (the CLI tests at the end).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from funnelops.errors import ProjectError
from funnelops.spec.loader import load_project

EXAMPLE = Path(__file__).resolve().parents[3] / "projects" / "funnel"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLE, tmp_path / "p", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "p"


def _edit(path: Path, pattern: str, repl: str) -> None:
    text = path.read_text(encoding="utf-8")
    new, n = re.subn(pattern, repl, text, count=1, flags=re.M)
    assert n == 1, pattern
    path.write_text(new, encoding="utf-8")


def _line(path: Path, startswith: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(startswith))


def _problems(project: Path) -> list:
    with pytest.raises(ProjectError) as e:
        load_project(project / "funnel.yaml")
    return e.value.problems


def _validate(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FUNNELOPS_NO_CACHE": "1"}
    return subprocess.run([sys.executable, "-m", "funnelops", "--project", str(project / "funnel.yaml"), *args,
                           "--json", "validate"], capture_output=True, text=True, env=env, timeout=120)


def flow(project: Path, name: str) -> Path:
    return project / "flows" / "trusted" / f"{name}.py"


def test_the_example_is_valid_with_no_warning(project):
    r = _validate(project)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["warnings"] == [] and out["flows"] == {"trusted": 5, "refined": 3}


def test_a_flow_without_target_is_located(project):
    path = flow(project, "leads")
    _edit(path, r"^TARGET = .*\n", "")
    [p] = _problems(project)
    assert (p.file, p.line) == (str(path), _line(path, "FILES = "))
    assert p.field == "trusted flow leads.TARGET" and "missing `TARGET`" in p.message


def test_a_flow_with_a_syntax_error_is_located(project):
    path = flow(project, "targets")
    _edit(path, r"^def transform\(raw\):", "def transform(raw:")
    [p] = _problems(project)
    assert (p.file, p.line) == (str(path), _line(path, "def transform(raw:"))
    assert "syntax error" in p.message


def test_a_snapshot_source_needs_a_date_column(project):
    path = flow(project, "leads")
    _edit(path, r"^FILES = .*", 'FILES = "crm/leads.csv"')
    [p] = _problems(project)
    assert (p.file, p.line, p.field) == (str(path), _line(path, "FILES = "), "trusted flow leads.FILES")
    assert "DATE_COLUMN" in p.message and "PERIOD_FILTER" in p.hint
    _edit(path, r"^FILES = .*", 'FILES = "crm/leads.csv"\nDATE_COLUMN = "FECHA_CREACION"')
    load_project(project / "funnel.yaml")
    _edit(path, r"^DATE_COLUMN = .*", "PERIOD_FILTER = False")
    load_project(project / "funnel.yaml")


@pytest.mark.parametrize("files", ["FUNNEL/leads/{mm}/leads.csv", "FUNNEL/leads/{dd}/leads_{mm}.csv",
                                   "FUNNEL/leads/{YYYY}/leads_{yyyymmdd}.csv", "FUNNEL/leads_{yyyymmdd}.txt"])
def test_a_layout_the_runtime_cannot_read_is_located(project, files):
    path = flow(project, "leads")
    _edit(path, r"^FILES = .*", f'FILES = "{files}"')
    [p] = _problems(project)
    assert (p.file, p.line, p.field) == (str(path), _line(path, "FILES = "), "trusted flow leads.FILES")


@pytest.mark.parametrize("files", ["FUNNEL/leads/leads_{yyyy}.csv", "FUNNEL/leads/{yyyy}/{mm}/{dd}.csv"])
def test_a_layout_the_runtime_reads_passes(project, files):
    """One file per year, and a day spelled in folders: the runtime reads both (flows/layout.py)."""
    _edit(flow(project, "leads"), r"^FILES = .*", f'FILES = "{files}"')
    load_project(project / "funnel.yaml")


def test_the_new_optional_fields_are_checked(project):
    path = flow(project, "leads")
    _edit(path, r"^TARGET = ", 'DATE_COLUMN = "CREATED"\nDATE_FORMATS = "%Y-%m-%d"\nCSV = {"delim": ";", '
          '"encoding": "klingon"}\nMAX_QUARANTINE_SHARE = 0\nTARGET = ')
    got = {(p.line, p.field.split(".")[-1]) for p in _problems(project)}
    start = _line(path, "DATE_COLUMN")
    assert got == {(start, "DATE_COLUMN"), (start + 1, "DATE_FORMATS"), (start + 2, "CSV"),
                   (start + 3, "MAX_QUARANTINE_SHARE")}


def test_two_flows_writing_one_table_are_refused(project):
    path = flow(project, "targets")
    _edit(path, r"^TARGET = .*", 'TARGET = "leads"')
    [p] = _problems(project)
    assert (p.file, p.line) == (str(path), _line(path, "TARGET = ")) and "leads.py" in p.message


def test_garbage_after_a_refined_query_is_located_at_its_line(project):
    path = project / "sql" / "refined" / "funnel.sql"
    path.write_text(path.read_text() + "\nthis is garbage\n")
    [p] = _problems(project)
    assert (p.file, p.line) == (str(path), len(path.read_text().splitlines()))


def test_a_view_that_is_no_query_is_located(project):
    (project / "sql" / "views" / "v_funnel_monthly.sql").write_text("SELEC broken\n")
    [p] = _problems(project)
    assert p.file == str(project / "funnel.yaml") and p.field == "views[v_funnel_monthly].query"
    assert "sql/views/v_funnel_monthly.sql:1" in p.message and "does not start with SELECT or WITH" in p.message


def test_refined_header_target_and_reads_are_located(project):
    sql = project / "sql" / "refined"
    _edit(sql / "attainment.sql", r"^-- replace: period", "-- replace: periodo")
    _edit(sql / "funnel.sql", r"^-- target: .*", "-- target: funnel_refined.funel_{granularity}")
    (sql / "dim_indicators.sql").write_text("-- target: funnel_refined.dim_indicators\n-- replace: all\n"
                                            "SELECT *\nFROM funnel_trusted.lead\n")
    got = {(Path(p.file).name, p.line, p.field): p for p in _problems(project)}
    assert set(got) == {("attainment.sql", 2, "refined flow attainment.replace"),
                        ("funnel.sql", 1, "refined flow funnel.target"),
                        ("dim_indicators.sql", 4, "refined flow dim_indicators.query")}
    assert "funnel_refined.funnel_daily" in got[("funnel.sql", 1, "refined flow funnel.target")].hint


# -- what only `funnelops validate` sees: the flow executed, the SQL's output ------------------------
def test_validate_reports_an_import_error_at_its_line(project):
    path = flow(project, "leads")
    _edit(path, r"^from funnelops.flows import dq", "from funnelops.flows import dq\nimport no_such_module")
    r = _validate(project)
    assert r.returncode == 2, r.stdout
    [p] = json.loads(r.stdout)["problems"]
    assert (p["file"], p["line"]) == (str(path), _line(path, "import no_such_module"))
    assert "No module named 'no_such_module'" in p["message"] and "Traceback" not in r.stderr


def test_validate_judges_computed_constants_and_transform(project):
    path = flow(project, "targets")
    _edit(path, r"^COLUMNS = ", "COLUMNS = tuple(['A', 1]) or ")
    _edit(path, r"^def transform\(raw\):", "def transform():")
    load_project(project / "funnel.yaml")   # not literals: only executing the flow tells
    r = _validate(project)
    got = {(p["line"], p["field"]) for p in json.loads(r.stdout)["problems"]}
    assert got == {(_line(path, "COLUMNS = "), "trusted flow targets.COLUMNS"),
                   (_line(path, "def transform"), "trusted flow targets.transform")}


def test_validate_refuses_replace_period_without_period_start(project):
    path = project / "sql" / "refined" / "attainment.sql"
    path.write_text("-- target: funnel_refined.attainment\n-- replace: period\n-- granularities: MONTH\n"
                    "SELECT channel, segment FROM funnel_trusted.leads\n")
    load_project(project / "funnel.yaml")
    r = _validate(project)
    assert r.returncode == 2
    got = {(p["line"], p["field"]): p["message"] for p in json.loads(r.stdout)["problems"]}
    assert set(got) == {(2, "refined flow attainment.replace")}


def test_validate_warns_about_a_trusted_table_nothing_reads(project):
    _edit(project / "funnel.yaml", r"^  - \{dataset: funnel_trusted, name: targets.*\n", "")
    path = project / "sql" / "refined" / "attainment.sql"
    path.write_text("-- target: funnel_refined.attainment\n-- replace: all\nSELECT DATE '2024-01-01' AS period_start, "
                    "'MONTH' AS granularity FROM funnel_trusted.leads\n")
    r = _validate(project)
    assert r.returncode == 0, r.stdout
    [w] = json.loads(r.stdout)["warnings"]
    assert (w["file"], w["field"]) == (str(flow(project, "targets")), "trusted flow targets.TARGET")
