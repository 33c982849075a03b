"""generate -> trusted -> refined on the local backend, for DAY, MONTH and YEAR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from funnelops.flows.cli import main
from funnelops.lifecycle.sample_data import generate_raw
from funnelops.backends.local import LocalBackend
from funnelops.plan.apply import apply_plan
from funnelops.plan.diff import build_plan
from funnelops.spec.loader import load_project

PROJECT = Path(__file__).resolve().parents[3] / "projects" / "funnel" / "funnel.yaml"
START, END = date(2024, 1, 25), date(2024, 2, 29)


@pytest.fixture(scope="module")
def loaded():
    return load_project(PROJECT)


@pytest.fixture
def env(tmp_path, loaded, monkeypatch):
    report = generate_raw(loaded, tmp_path, 3000, START, END, seed=11)
    backend = LocalBackend.for_project(loaded, tmp_path)
    assert apply_plan(build_plan(loaded, backend, "iac"), backend).ok  # the real create-infra path
    monkeypatch.setenv("FUNNELOPS_PROJECT", str(PROJECT))
    monkeypatch.setenv("FUNNELOPS_HOME", str(tmp_path))
    monkeypatch.setenv("FUNNELOPS_METRICS_FILE", str(tmp_path / "metrics.json"))
    return tmp_path, report


def _metrics(home: Path) -> dict:
    return json.loads((home / "metrics.json").read_text())


def _counts(home: Path) -> dict[str, int]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM funnel_refined.{t}").fetchone()[0]
                for t in ("funnel_daily", "funnel_monthly", "funnel_yearly", "attainment", "dim_indicators")}
    finally:
        con.close()


def test_initial_load_all_granularities_and_quarantine_matches_generator(env):
    home, report = env
    for gran in ("DAY", "MONTH", "YEAR"):
        assert main([f"--granularity={gran}", "--execution_type=delta", "--refined_flows=false",
                     "--execution_type=full", "--project_id=analitica-funnel"]) == 0
    flows = {f["flow"]: f for f in _metrics(home)["flows"]}
    expected = report.expected_quarantine()
    for name, f in flows.items():
        assert f["read"] == f["kept"] + f["quarantined"]
        assert f["rules"] == expected[name], name
        assert f["quarantined"] == sum(expected[name].values())
    total_read = sum(f["read"] for name, f in flows.items() if name != "targets")
    assert total_read == report.rows
    for gran in ("DAY", "MONTH", "YEAR"):
        assert main([f"--granularity={gran}", "--trusted_flows=false", "--execution_type=full"]) == 0
    counts = _counts(home)
    assert counts["dim_indicators"] == 5
    assert all(counts[t] > 0 for t in ("funnel_daily", "funnel_monthly", "funnel_yearly", "attainment"))
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        # every lead appears once in the 'lead' stage of the yearly funnel
        leads = con.execute("SELECT sum(volume) FROM funnel_refined.funnel_yearly WHERE stage = 'lead'").fetchone()[0]
        kept_leads = flows["leads"]["kept"]
        assert leads == kept_leads
        months = con.execute("SELECT DISTINCT granularity FROM funnel_refined.attainment ORDER BY 1").fetchall()
        assert months == [("MONTH",), ("YEAR",)]
        # conversion is the ratio to the previous stage of the same group
        bad = con.execute("""
            SELECT count(*) FROM funnel_refined.funnel_monthly f JOIN funnel_refined.funnel_monthly p
              ON p.period_start = f.period_start AND p.channel = f.channel AND p.segment = f.segment
             AND p.stage_order = f.stage_order - 1
            WHERE abs(f.conversion_rate - f.volume / p.volume) > 1e-9""").fetchone()[0]
        assert bad == 0
    finally:
        con.close()
    # running everything again leaves exactly the same rows
    for gran in ("DAY", "MONTH", "YEAR"):
        assert main([f"--granularity={gran}", "--execution_type=full"]) == 0
    assert _counts(home) == counts


def test_delta_periods_are_idempotent(env):
    home, report = env
    assert main(["--granularity=MONTH", "--execution_type=full"]) == 0
    before = _counts(home)
    for _ in range(2):
        assert main(["--granularity=DAY", "--period=2024-02-14"]) == 0
        assert main(["--granularity=MONTH", "--period=2024-02"]) == 0
    after = _counts(home)
    assert after["funnel_monthly"] == before["funnel_monthly"]
    assert after["attainment"] == before["attainment"]
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        dup = con.execute("""SELECT count(*) FROM (SELECT period_start, channel, segment, stage, count(*) n
                             FROM funnel_refined.funnel_daily GROUP BY ALL HAVING n > 1)""").fetchone()[0]
        assert dup == 0
    finally:
        con.close()
    m = _metrics(home)
    assert m["granularity"] == "MONTH" and m["period"] == "2024-02-01"


def test_concurrent_full_runs_never_duplicate(env):
    home, report = env
    procs = [subprocess.Popen([sys.executable, "-m", "funnelops.flows", f"--granularity={g}",
                               "--execution_type=full", "--refined_flows=false"], env=dict(os.environ),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for g in ("DAY", "MONTH", "YEAR")]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    trusted = home / "buckets" / "analitica-funnel-trusted"
    con = duckdb.connect()
    n, distinct = con.execute(f"SELECT count(*), count(DISTINCT lead_id) FROM "
                              f"read_parquet('{trusted}/leads/**/*.parquet', hive_partitioning = true)").fetchone()
    assert n == distinct > 0
    assert all(len(list(p.glob("*.parquet"))) == 1 for p in (trusted / "leads").iterdir())


def test_errors_and_exit_codes(env, capsys):
    home, report = env
    assert main(["--granularity=DAY", "--trusted_flows=leads,nope"]) == 2
    assert "known trusted flows: leads, opportunities, stage_changes, targets, won_deals" in capsys.readouterr().err
    assert main(["--granularity=DAY", "--period=2030-01-01", "--refined_flows=false"]) == 1
    assert "leads/2030/01/leads_20300101.csv" in capsys.readouterr().err
    victim = home / "buckets" / "analitica-funnel-raw" / "FUNNEL/TERADATA/won_deals/2024/02/won_deals_20240210.csv"
    victim.chmod(0)
    try:
        if os.access(victim, os.R_OK):
            pytest.skip("running as a user who can read any file")
        assert main(["--granularity=DAY", "--period=2024-02-10", "--trusted_flows=won_deals",
                     "--refined_flows=false"]) == 1
        assert "won_deals_20240210.csv" in capsys.readouterr().err
    finally:
        victim.chmod(0o644)
    assert main(["--granularity=DAY", "--period=2024-02-10", "--refined_flows=funnel", "--trusted_flows=false"]) == 1
    assert "no trusted data" in capsys.readouterr().err
