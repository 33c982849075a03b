"""Acceptance test of issue #12: a team's own data, from `funnelops init` to refined figures.

A new project from `init`, edited as the README's walkthrough says for a marketing-funnel dataset
(two plain CSV exports: leads as a snapshot, closed deals split into a dated daily layout by
`data load`), the whole lifecycle through the real `funnelops` console script on the local
backend (IaC, "Initial data", the monthly scheduler forced for a past month), and the refined
figures checked against an independent computation over the CSV files in plain Python.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest

from bench.own_project import FORCED_PERIOD, customize, walkthrough_commands, write_dataset

pytestmark = [pytest.mark.slow]

FUNNELOPS = str(Path(sys.executable).with_name("funnelops"))
LEADS = 3000
NAME, SLUG, IDENT = "Marketing Funnel", "marketing-funnel", "marketing_funnel"


def _cli(cwd: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    env.pop("FUNNELOPS_PROJECT", None)
    env.pop("FUNNELOPS_HOME", None)
    proc = subprocess.run([FUNNELOPS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == code, (f"funnelops {' '.join(args)}: exit {proc.returncode}, expected {code}\n"
                                     f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def _amount(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return None
    return value if value.as_tuple().exponent >= -2 else None


def expected_monthly(leads_csv: Path, deals_csv: Path) -> dict[date, tuple[int, int, Decimal]]:
    """Per month: leads by first contact (valid id and date, first delivery of an id wins), won
    deals and their amount by won date (valid id, date and amount) -- computed without funnelops."""
    leads: Counter[date] = Counter()
    seen: set[str] = set()
    with leads_csv.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            lead_id, first = row["lead_id"].strip(), _date(row["first_contact_date"])
            if not lead_id or first is None or lead_id in seen:
                continue
            seen.add(lead_id)
            leads[first.replace(day=1)] += 1
    won: Counter[date] = Counter()
    amounts: defaultdict[date, Decimal] = defaultdict(Decimal)
    with deals_csv.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            won_date, amount = _date(row["won_date"]), _amount(row["amount"])
            if not row["deal_id"].strip() or not row["lead_id"].strip() or won_date is None or amount is None:
                continue
            won[won_date.replace(day=1)] += 1
            amounts[won_date.replace(day=1)] += amount
    months = sorted(set(leads) | set(won))
    return {m: (leads[m], won[m], amounts[m]) for m in months}


def _refined(home: Path, sql: str) -> list[tuple]:
    import duckdb

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _monthly(home: Path) -> dict[date, tuple[int, int, Decimal]]:
    rows = _refined(home, f"SELECT period_start, leads, won_deals, won_amount FROM {IDENT}_refined.funnel_monthly "
                          "WHERE granularity = 'MONTH' ORDER BY period_start")
    return {p: (leads, won, Decimal(str(amount))) for p, leads, won, amount in rows}


def test_own_project_from_init_to_refined_figures(tmp_path: Path) -> None:
    leads_csv, deals_csv = write_dataset(tmp_path / "exports", LEADS)
    expected = expected_monthly(leads_csv, deals_csv)
    assert len(expected) == 6 and all(v[0] and v[1] for v in expected.values())

    report = json.loads(_cli(tmp_path, "--json", "init", "mkt", "--name", NAME).stdout)
    assert report["slug"] == SLUG
    project_dir = tmp_path / "mkt"
    customize(project_dir, IDENT, SLUG)

    outputs = {}
    for name, argv in walkthrough_commands(leads_csv, deals_csv):
        outputs[name] = _cli(project_dir, *argv)
    home = project_dir / ".funnelops"

    # the dated layout: one file per day with deals, each with the header
    deal_files = sorted((home / "buckets" / f"{SLUG}-raw" / "crm" / "deals").rglob("deals_*.csv"))
    assert len(deal_files) == 182 and deal_files[0].name == "deals_20240101.csv"
    assert (home / "buckets" / f"{SLUG}-raw" / "crm" / "leads.csv").is_file()

    # the refined figures, every month, against the independent computation
    assert _monthly(home) == expected
    # the template's own refined flow agrees on leads, at every granularity
    per_gran = dict(_refined(home, f"SELECT granularity, SUM(leads) FROM {IDENT}_refined.leads_per_period "
                                   "GROUP BY granularity"))
    total = sum(v[0] for v in expected.values())
    assert per_gran == {"DAY": total, "MONTH": total, "YEAR": total}

    # the forced monthly run processed the asked month, and only it
    runs = json.loads(_cli(project_dir, "--json", "runs").stdout)
    last = max((r for r in runs if r["workflow"] == f"{SLUG}-monthly"), key=lambda r: r["id"])
    assert last["state"] == "DONE" and last["trigger"] != "initial-load", last
    forced = date.fromisoformat(FORCED_PERIOD + "-01")
    loaded = dict(_refined(home, f"SELECT period_start, loaded_at FROM {IDENT}_refined.funnel_monthly "
                                 "WHERE granularity = 'MONTH'"))
    assert loaded[forced] == max(loaded.values()) and sum(v == loaded[forced] for v in loaded.values()) == 1

    # status speaks of this project's schedulers, never the example's
    status = _cli(project_dir, "status").stdout
    assert "monthly" in status and "Día" not in status
