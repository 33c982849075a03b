"""Seeing the results on the local backend (issue 13, "See the results"): after a small demo,
`query`, `tables`, `status`, `runs` and the demo's own footer, through the console script.

One demo (3,000 rows) prepares a home for the whole module; every check then runs the real
`funnelops` in a subprocess against it, with the terminal width set through COLUMNS.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, UTC
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.slow

FUNNELOPS = str(Path(sys.executable).with_name("funnelops"))
REFINED = ("funnel_daily", "funnel_monthly", "funnel_yearly", "attainment", "dim_indicators")


class Demo:
    def __init__(self, base: Path, proc: subprocess.CompletedProcess) -> None:
        self.dir = base / "demo"
        self.home = self.dir / ".funnelops"
        self.project = self.dir / "project" / "funnel.yaml"
        self.proc = proc

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELOPS_")}
        env.update(NO_COLOR="1", FUNNELOPS_PROJECT=str(self.project), FUNNELOPS_HOME=str(self.home), **extra)
        return env

    def __call__(self, *args: str, code: int = 0, **env: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([FUNNELOPS, *args], env=self.env(**env), capture_output=True, text=True, timeout=120)
        assert proc.returncode == code, f"{args}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr
        return proc

    def duck(self, sql: str) -> list[tuple]:
        con = duckdb.connect(str(self.home / "warehouse.duckdb"), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Demo:
    base = tmp_path_factory.mktemp("results")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELOPS_")}
    env.update(NO_COLOR="1", COLUMNS="60")
    proc = subprocess.run([FUNNELOPS, "demo", "--dir", str(base / "demo"), "--rows", "3000"], cwd=base, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Demo(base, proc)


def test_the_demo_footer_says_where_the_data_is_and_its_chart_fits(demo: Demo) -> None:
    out = demo.proc.stdout
    assert "Where the data is" in out
    assert f"warehouse:      {demo.home / 'warehouse.duckdb'}" in out
    assert str(demo.home / "buckets" / "analitica-funnel-trusted" / "_quarantine") + "/" in out
    assert 'funnelops query "SELECT * FROM funnel_refined.funnel_daily LIMIT 10"' in out
    bars = [line for line in out.splitlines() if "█" in line or "··" in line]
    assert bars and all(len(line) <= 60 for line in bars), bars  # COLUMNS=60: the chart follows the terminal


def test_status_names_project_home_warehouse_and_shows_next_fires_in_their_zone(demo: Demo) -> None:
    from funnelops.scheduler.cron import next_fire
    from funnelops.timefmt import local_text

    out = demo("status", TZ="Europe/Paris").stdout  # the machine's zone is not the schedulers'
    assert f"project file: {demo.project}" in out and f"home:         {demo.home}" in out
    assert str(demo.home / "warehouse.duckdb") in out and "funnel_refined.funnel_daily" in out
    assert "_quarantine/" in out and 'funnelops query "SELECT * FROM' in out
    nxt = next_fire("0 6 * * *", "America/Bogota", datetime.now(UTC))
    shown = re.search(r"Día \(dia\) -> funnel-dia: 0 6 \* \* \*, next (.+) \(America/Bogota\)", out)
    assert shown, out
    assert shown.group(1) == local_text(nxt, "America/Bogota")  # 06:00 UTC-05, not Paris' 12:00
    assert shown.group(1).endswith("06:00:00 UTC-05")
    st = json.loads(demo("--json", "status").stdout)
    assert st["home"] == str(demo.home) and st["where"]["quarantine"].endswith("/_quarantine/")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$", st["schedulers"][0]["next_fire"])


@pytest.mark.parametrize("width", [60, 80])
def test_runs_fit_the_terminal_and_keep_the_id_and_whole_numbers(demo: Demo, width: int) -> None:
    runs = json.loads(demo("--json", "runs").stdout)
    out = demo("runs", COLUMNS=str(width)).stdout
    lines = out.splitlines()
    assert all(len(line) <= width for line in lines), lines
    assert lines[0].split()[0] == "run"
    for r in runs:  # every run's row starts with its id, its read count is shown whole
        row = next(line for line in lines[1:] if line.split()[0] == str(r["id"]))
        assert f"{r['rows']['read']:,}" in row.split(), row
    assert "…" not in out


def test_tables_lists_layers_with_exact_rows_and_last_periods(demo: Demo) -> None:
    layers = {d["dataset"]: d for d in json.loads(demo("tables", "--json").stdout)}
    assert list(layers) == ["funnel_trusted", "funnel_refined", "funnel_reporting"]
    refined = {r["name"]: r for r in layers["funnel_refined"]["relations"]}
    for t in REFINED:
        r = refined[f"funnel_refined.{t}"]
        assert r["exists"] and r["kind"] == "table"
        assert r["rows"] == demo.duck(f"SELECT count(*) FROM funnel_refined.{t}")[0][0]
    daily_max = demo.duck("SELECT max(period_start) FROM funnel_refined.funnel_daily")[0][0]
    assert refined["funnel_refined.funnel_daily"]["last_period"] == daily_max.isoformat()
    assert refined["funnel_refined.funnel_monthly"]["last_period"] == \
        demo.duck("SELECT max(period_start) FROM funnel_refined.funnel_monthly")[0][0].isoformat()[:7]
    assert refined["funnel_refined.dim_indicators"]["last_period"] is None
    leads = next(r for r in layers["funnel_trusted"]["relations"] if r["name"] == "funnel_trusted.leads")
    assert leads["kind"] == "external_table" and leads["period_column"] == "event_date"
    assert leads["rows"] == demo.duck("SELECT count(*) FROM funnel_trusted.leads")[0][0]
    assert leads["last_period"] == str(demo.duck("SELECT max(event_date) FROM funnel_trusted.leads")[0][0])
    views = layers["funnel_reporting"]["relations"]
    assert {r["kind"] for r in views} == {"view"} and all(r["exists"] and r["rows"] >= 0 for r in views)
    text = demo("tables", COLUMNS="80").stdout
    assert "funnel_refined (refined layer)" in text and "funnel_daily" in text


def test_query_prints_table_csv_and_json(demo: Demo) -> None:
    sql = "SELECT channel, SUM(volume) AS v FROM funnel_refined.funnel_yearly WHERE stage = 'lead' GROUP BY 1 ORDER BY 1"
    want = demo.duck(sql.replace("funnel_refined.", "funnel_refined."))
    got = json.loads(demo("query", sql, "--json").stdout)
    assert got["columns"] == ["channel", "v"] and not got["truncated"]
    assert [(r["channel"], r["v"]) for r in got["rows"]] == [(c, int(v)) for c, v in want]
    csv_out = demo("query", sql, "--format", "csv").stdout.splitlines()
    assert csv_out[0] == "channel,v" and len(csv_out) == len(want) + 1
    table = demo("query", sql, COLUMNS="60").stdout
    assert all(c in table for c, _ in want)
    limited = json.loads(demo("--json", "query", "SELECT * FROM funnel_refined.funnel_daily", "--limit", "3").stdout)
    assert limited["row_count"] == 3 and limited["truncated"]


@pytest.mark.parametrize("sql, line", [
    ("DROP TABLE funnel_refined.funnel_daily", 1),
    ("INSERT INTO funnel_refined.dim_indicators SELECT * FROM funnel_refined.dim_indicators", 1),
    ("SELECT 1;\nDELETE FROM funnel_refined.funnel_daily WHERE true", 2),
    ("SHOW TABLES", 1),
])
def test_query_refuses_anything_but_one_read(demo: Demo, sql: str, line: int) -> None:
    before = demo.duck("SELECT count(*) FROM funnel_refined.funnel_daily")
    err = json.loads(demo("--json", "query", sql, code=2).stdout)
    assert err["exit_code"] == 2 and f"line {line}" in err["message"] and err["hint"]
    assert demo.duck("SELECT count(*) FROM funnel_refined.funnel_daily") == before


def test_a_query_naming_what_is_not_there_is_exit_2_with_duckdbs_pointer(demo: Demo) -> None:
    err = json.loads(demo("--json", "query", "SELECT nope FROM funnel_refined.funnel_daily", code=2).stdout)
    assert '"nope" not found' in err["message"] and "LINE 1" in err["message"]
    assert "funnelops tables" in err["hint"]


HOLD = """
import sys, time
from pathlib import Path
from funnelops.backends.local.warehouse_conn import file_lock
home, release = Path(sys.argv[1]), Path(sys.argv[2])
if sys.argv[3] == "flock":  # what funnelops' own writers hold
    with file_lock(home / "warehouse.duckdb.lock", exclusive=True):
        print("held", flush=True)
        while not release.exists():
            time.sleep(0.05)
else:  # a DuckDB write connection of a process that does not take the lock
    import duckdb
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    print("held", flush=True)
    while not release.exists():
        time.sleep(0.05)
    con.close()
"""


def _hold(demo: Demo, tmp_path: Path, how: str) -> tuple[subprocess.Popen, Path]:
    release = tmp_path / f"release-{how}"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(demo.home), str(release), how], env=demo.env(),
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder, release


def test_query_waits_for_a_writer_then_answers(demo: Demo, tmp_path: Path) -> None:
    holder, release = _hold(demo, tmp_path, "flock")
    try:
        query = subprocess.Popen([FUNNELOPS, "--json", "query", "SELECT COUNT(*) AS n FROM funnel_refined.funnel_daily",
                                  "--timeout", "120"], env=demo.env(), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        assert query.stderr is not None
        note = query.stderr.readline()
        assert "the warehouse is busy" in note and query.poll() is None  # waiting, said why
    finally:
        release.touch()
        holder.wait(timeout=30)
    out, err = query.communicate(timeout=60)
    assert query.returncode == 0, err
    assert json.loads(out)["rows"] == [{"n": demo.duck("SELECT count(*) FROM funnel_refined.funnel_daily")[0][0]}]


@pytest.mark.parametrize("how", ["flock", "duckdb"])
def test_query_gives_up_after_its_timeout_with_a_clear_error(demo: Demo, tmp_path: Path, how: str) -> None:
    holder, release = _hold(demo, tmp_path, how)
    try:
        proc = demo("query", "SELECT 1 AS one FROM funnel_refined.dim_indicators", "--timeout", "0.5", code=1)
    finally:
        release.touch()
        holder.wait(timeout=30)
    assert "stayed busy for 0.5s" in proc.stderr and "--timeout" in proc.stderr, proc.stderr
