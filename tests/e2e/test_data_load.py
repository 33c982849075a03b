"""`funnelops data load` as a user runs it: a subprocess over a copy of the example project with
two flows of its own (one dated by day, one snapshot), on the local backend, then a run that
reads what was loaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

DATED = '''
from funnelops.flows import dq
from funnelops.flows.engine import F

FILES = "crm/deals/{yyyy}/{mm}/deals_{yyyymmdd}.csv"
COLUMNS = ("deal_id", "won_date", "amount")
DATE_COLUMN = "won_date"
CSV = {"delimiter": ";"}
TARGET = "crm_deals"
PARTITION = "event_date"
OUTPUT = ("deal_id", "amount", "event_date")


def transform(raw):
    typed = raw.select(dq.text("deal_id").alias("deal_id"), dq.text("amount").alias("amount"),
                       F.to_date(F.col("won_date")).alias("event_date"), *dq.lineage(COLUMNS))
    return dq.finish(typed.withColumn("dq_rule", dq.first_failing([("id_not_null", F.col("deal_id").isNull())])),
                     OUTPUT)
'''

SNAPSHOT = DATED.replace('FILES = "crm/deals/{yyyy}/{mm}/deals_{yyyymmdd}.csv"', 'FILES = "crm/leads.csv"') \
    .replace('CSV = {"delimiter": ";"}\n', "").replace('"crm_deals"', '"crm_leads"')

DEALS = ("deal_id;won_date;amount\n"
         "1;2024-03-04;10\n"
         "2;2024-03-05;20\n"
         "3;2024-03-05;\"3\n0\"\n"          # a quoted value over two lines stays one record
         "4;2024-03-07;40\n")


@pytest.fixture
def cli(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(REPO / "projects" / "funnel", project, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (project / "flows" / "trusted" / "crm_deals.py").write_text(DATED, encoding="utf-8")
    (project / "flows" / "trusted" / "crm_leads.py").write_text(SNAPSHOT, encoding="utf-8")
    home = tmp_path / "home"
    env = {**os.environ, "FUNNELOPS_PROJECT": str(project / "funnel.yaml"), "FUNNELOPS_HOME": str(home),
           "PYTHONPATH": str(REPO / "src"), "NO_COLOR": "1"}

    def run(*args: str, code: int = 0, module: str = "funnelops") -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", module, *args], env=env, capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)
        assert proc.returncode == code, proc.stdout + proc.stderr
        return proc

    (home / "buckets" / "analitica-funnel-raw").mkdir(parents=True)
    run.raw = home / "buckets" / "analitica-funnel-raw"          # type: ignore[attr-defined]
    run.home, run.tmp = home, tmp_path                           # type: ignore[attr-defined]
    return run


def test_dated_layout_is_split_by_day_and_reported(cli):
    src = cli.tmp / "deals.csv"
    src.write_text(DEALS, encoding="utf-8")
    doc = json.loads(cli("data", "load", str(src), "--flow", "crm_deals", "--json").stdout)
    assert doc["layout"] == "dated (one file per day)" and doc["rows"] == 4
    assert [(f["target"], f["rows"], f["state"]) for f in doc["files"]] == [
        ("crm/deals/2024/03/deals_20240304.csv", 1, "new"),
        ("crm/deals/2024/03/deals_20240305.csv", 2, "new"),
        ("crm/deals/2024/03/deals_20240307.csv", 1, "new")]
    day = (cli.raw / "crm/deals/2024/03/deals_20240305.csv").read_text(encoding="utf-8")
    assert day == 'deal_id;won_date;amount\n2;2024-03-05;20\n3;2024-03-05;"3\n0"\n'
    text = cli("data", "load", str(src), "--flow", "crm_deals").stdout
    assert "deals_20240305.csv" in text and "unchanged" in text
    # the loaded day runs: 2 rows read, both kept
    out = cli("--granularity=DAY", "--period=2024-03-05", "--trusted_flows=crm_deals", "--refined_flows=false",
              module="funnelops.flows").stdout
    assert "read=2 kept=2" in out


def test_snapshot_is_copied_and_overwrite_needs_replace(cli):
    src = cli.tmp / "leads.csv"
    src.write_text(DEALS.replace(";", ","), encoding="utf-8")
    doc = json.loads(cli("data", "load", str(src), "--flow", "crm_leads", "--json").stdout)
    assert [(f["target"], f["rows"]) for f in doc["files"]] == [("crm/leads.csv", 5)]   # physical records
    assert (cli.raw / "crm/leads.csv").read_bytes() == src.read_bytes()
    src.write_text(DEALS.replace(";", ",") + "5,2024-03-08,50\n", encoding="utf-8")
    refused = cli("data", "load", str(src), "--flow", "crm_leads", code=2)
    assert "crm/leads.csv" in refused.stderr and "--replace" in refused.stderr
    assert (cli.raw / "crm/leads.csv").read_text().count("\n") == 6          # untouched
    cli("data", "load", str(src), "--flow", "crm_leads", "--replace")
    assert (cli.raw / "crm/leads.csv").read_bytes() == src.read_bytes()
    assert not [p for p in (cli.raw / "crm").iterdir() if p.name.startswith(".")]   # no temp file left


def test_bad_input_is_named_and_nothing_is_written(cli):
    src = cli.tmp / "deals.csv"
    src.write_text("deal_id;closed;amount\n1;2024-03-04;10\n", encoding="utf-8")
    err = cli("data", "load", str(src), "--flow", "crm_deals", "--date-column", "won", code=2).stderr
    assert "no column 'won'" in err and "deal_id, closed, amount" in err
    src.write_text("deal_id;won_date;amount\n1;2024-03-04;10\n2;yesterday;20\n", encoding="utf-8")
    err = cli("data", "load", str(src), "--flow", "crm_deals", code=2).stderr
    assert f"{src}:3" in err and "'yesterday'" in err
    err = cli("data", "load", str(src), "--flow", "crm_deal", code=2).stderr
    assert "did you mean 'crm_deals'" in err
    assert not any(cli.raw.rglob("*.csv"))
