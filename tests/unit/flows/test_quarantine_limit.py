"""A run that quarantines too much fails before writing; a team's own formats and rule names fit.

Real files, the real DuckDB engine, and the flows program as a subprocess for the exit code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from funnelops.flows.quality import QuarantineLimitExceeded
from funnelops.spec.loader import load_project

LEADS = "FUNNEL/TERADATA/leads/2024/03/leads_20240305.csv"
HEADER = "ID_LEAD,FECHA_CREACION,CANAL,SEGMENTO,REGION,CIUDAD,ASESOR,EMPRESA,MONTO_ESTIMADO_COP\n"
FUNNEL = Path(__file__).resolve().parents[3] / "projects" / "funnel"


def test_plain_dates_are_kept_by_the_default_timestamp_formats(flow_runner):
    """On main every plain-date lead was quarantined as `parsable_date` (and the run went on)."""
    flow_runner.write(LEADS, HEADER + "".join(
        f"L{i},2024-03-05,Web,Pyme,Andina,Cali,Ana,Empresa {i},{i}00\n" for i in range(1, 9)))
    r = flow_runner("leads")
    assert (r.read, r.kept, r.quarantined) == (8, 8, 0)
    rows = flow_runner.rows("leads", "lead_id")
    assert {(x["created_at"], x["event_date"]) for x in rows} == {(datetime(2024, 3, 5), date(2024, 3, 5))}


def _good_then_bad(flow_runner) -> tuple[list, list]:
    """A good day is published, then its file is replaced by one whose rows are 80% bad."""
    flow_runner.write(LEADS, HEADER + "G1,2024-03-05 08:00:00,Web,Pyme,Andina,Cali,Ana,Uno,1\n"
                                      "G2,2024-03-05 09:00:00,Web,Pyme,Andina,Cali,Ana,Dos,2\n"
                                      "G3,05/03/2024 09:00:00,Web,Pyme,Andina,Cali,Ana,Tres,3\n")
    assert flow_runner("leads").kept == 2
    before = (flow_runner.rows("leads", "lead_id"), flow_runner.rows("_quarantine/leads", "source_line"))
    flow_runner.write(LEADS, HEADER +
                      "".join(f"B{i},05/03/2024 09:00:00,Web,Pyme,Andina,Cali,Ana,Malo {i},1\n" for i in range(5))
                      + "N1,2024-03-05 09:00:00,Web,Pyme,Andina,Cali,Ana,Negativo,-1\n"
                      + "N2,2024-03-05 09:00:00,Web,Pyme,Andina,Cali,Ana,Negativo,-2\n"
                      + ",2024-03-05 09:00:00,Web,Pyme,Andina,Cali,Ana,Sin id,1\n"
                      + "K1,2024-03-05 10:00:00,Web,Pyme,Andina,Cali,Ana,Bueno,1\n"
                      + "K2,2024-03-05 11:00:00,Web,Pyme,Andina,Cali,Ana,Bueno,2\n")
    return before


def test_a_run_over_the_limit_fails_naming_rules_and_sample_and_changes_nothing(flow_runner):
    """On main this run ended DONE, replacing the good day by 2 rows."""
    before = _good_then_bad(flow_runner)
    with pytest.raises(QuarantineLimitExceeded) as e:
        flow_runner("leads")
    msg = e.value.message
    assert "trusted flow leads quarantined 8 of the 10 rows it read (80.0%)" in msg
    assert "more than the limit of 50% (quality.max_quarantine_share of the project)" in msg
    assert "top rules: parsable_date 5, amount_non_negative 2, id_not_null 1" in msg
    assert f"{LEADS}:2 [parsable_date] B0,05/03/2024 09:00:00,Web,Pyme,Andina,Cali,Ana,Malo 0,1" in msg
    assert f"{LEADS}:3 [parsable_date] B1," in msg and f"{LEADS}:4 [parsable_date]" not in msg  # 2 per rule
    assert f"{LEADS}:7 [amount_non_negative] N1," in msg and f"{LEADS}:9 [id_not_null] ,2024" in msg
    assert "MAX_QUARANTINE_SHARE" in e.value.hint
    assert e.value.details["rules"] == {"parsable_date": 5, "amount_non_negative": 2, "id_not_null": 1}
    assert e.value.exit_code == 1
    # the trusted table and its quarantine are exactly as the good run left them
    assert (flow_runner.rows("leads", "lead_id"), flow_runner.rows("_quarantine/leads", "source_line")) == before


def test_the_project_limit_lets_the_same_run_through(flow_runner):
    _good_then_bad(flow_runner)
    r = flow_runner("leads", max_share=0.8)   # 80% is not MORE than 0.8
    assert (r.read, r.kept, r.quarantined, r.warnings) == (10, 2, 8, [])
    assert [x["lead_id"] for x in flow_runner.rows("leads", "lead_id")] == ["K1", "K2"]


def test_keeping_nothing_under_the_limit_warns_on_the_flow_line(flow_runner):
    flow_runner.write(LEADS, HEADER + "L1,2024-03-04 08:00:00,Web,Pyme,Andina,Cali,Ana,Ayer,1\n")
    r = flow_runner("leads", max_share=1)
    assert (r.read, r.kept) == (1, 0)
    assert r.warnings == ["kept none of the 1 rows read (quarantined: date_in_period 1)"]
    assert "WARNING: kept none of the 1 rows read" in r.line()


# -- a team's own flow: its formats, scale, rule names and limit ------------------------------------

CONTACTS = '''"""Contacts from a CRM export: day-first dates, 4-decimal scores, the team's own rule names."""

from funnelops.flows import dq
from funnelops.flows.engine import F

FILES = "crm/{yyyy}/{mm}/contacts_{yyyymmdd}.csv"
COLUMNS = ("contact_id", "signup", "seen_at", "score", "email")
TARGET = "contacts"
PARTITION = "event_date"
OUTPUT = ("contact_id", "signup", "seen_at", "score", "email", "event_date")
@LIMIT@

def transform(raw):
    typed = raw.select(
        dq.text("contact_id").alias("contact_id"),
        dq.date("signup", formats=("%d/%m/%Y",)).alias("signup"),
        dq.timestamp("seen_at", formats=("%d/%m/%Y %H:%M", "%Y-%m-%dT%H:%M:%S")).alias("seen_at"),
        dq.decimal("score", scale=4).alias("score"),
        dq.text("email").alias("email"),
        dq.date("signup", formats="%d/%m/%Y").alias("event_date"),
        *dq.lineage(COLUMNS),
    )
    checked = typed.withColumn("dq_rule", dq.first_failing([
        dq.rule("contact_id_present", F.col("contact_id").isNull()),
        dq.rule("signup_day_first", F.col("signup").isNull()),
        dq.rule("seen_at_parsable", F.col("seen_at").isNull()),
        dq.rule("score_4_decimals", F.col("score").isNull()),
        dq.rule("email_has_at", ~F.col("email").contains("@")),
    ]))
    return dq.finish(checked, OUTPUT)
'''
CONTACTS_FILE = "crm/2024/03/contacts_20240305.csv"
CONTACTS_ROWS = ("contact_id,signup,seen_at,score,email\n"
                 "C1,05/03/2024,05/03/2024 08:30,0.1234,a@x.co\n"        # 2 kept
                 "C2,05/03/2024,2024-03-05T09:00:00,12,b@x.co\n"         # 3 kept
                 "C3,2024-03-05,05/03/2024 08:30,1,c@x.co\n"             # 4 signup_day_first
                 "C4,05/03/2024,05/03/2024 08:30,0.12345,d@x.co\n"       # 5 score_4_decimals
                 "C5,05/03/2024,05/03/2024 08:30,1,nobody\n"             # 6 email_has_at
                 "C6,05/03/2024,5/3/2024 8:30,1,e@x.co\n")               # 7 seen_at_parsable


def _project(tmp_path: Path, flow_limit: str = "", project_limit: str = "") -> Path:
    """A copy of the example project with the contacts flow; returns its project file."""
    base = tmp_path / "project"
    shutil.copytree(FUNNEL, base, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (base / "flows" / "trusted" / "contacts.py").write_text(CONTACTS.replace("@LIMIT@", flow_limit), encoding="utf-8")
    spec = base / "funnel.yaml"
    if project_limit:
        spec.write_text(spec.read_text(encoding="utf-8") + f"\nquality:\n  max_quarantine_share: {project_limit}\n",
                        encoding="utf-8")
    loaded = load_project(spec)
    raw = tmp_path / "home" / "buckets" / loaded.spec.bucket_for("raw").name / CONTACTS_FILE
    raw.parent.mkdir(parents=True)
    raw.write_text(CONTACTS_ROWS, encoding="utf-8")
    return spec


def _flows(tmp_path: Path, spec: Path) -> tuple[subprocess.CompletedProcess, dict]:
    metrics = tmp_path / "metrics.json"
    env = dict(os.environ, FUNNELOPS_METRICS_FILE=str(metrics))
    proc = subprocess.run([sys.executable, "-m", "funnelops.flows", "--granularity=DAY", "--execution_type=delta",
                           "--period=2024-03-05", "--trusted_flows=contacts", "--refined_flows=false",
                           f"--project={spec}", f"--home={tmp_path / 'home'}"],
                          capture_output=True, text=True, timeout=300, env=env)
    return proc, json.loads(metrics.read_text(encoding="utf-8"))


def _trusted(tmp_path: Path, spec: Path, table: str) -> list[tuple]:
    import duckdb

    folder = tmp_path / "home" / "buckets" / load_project(spec).spec.bucket_for("trusted").name / table
    if not folder.is_dir():
        return []
    drop = "extract_date" if table.startswith("_quarantine") else "event_date"
    return duckdb.connect().execute(f"SELECT * EXCLUDE ({drop}) FROM read_parquet('{folder}/**/*.parquet', "
                                    f"hive_partitioning = true) ORDER BY 1, 2, 3").fetchall()


def test_own_formats_scale_and_rule_names_with_the_flow_limit(tmp_path):
    """4 of 6 rows quarantined (67%): over the project's default, under the flow's own 0.7."""
    spec = _project(tmp_path, flow_limit="MAX_QUARANTINE_SHARE = 0.7")
    proc, metrics = _flows(tmp_path, spec)
    assert proc.returncode == 0, proc.stderr
    [flow] = metrics["flows"]
    assert flow["rules"] == {"email_has_at": 1, "score_4_decimals": 1, "seen_at_parsable": 1, "signup_day_first": 1}
    assert _trusted(tmp_path, spec, "contacts") == [
        ("C1", date(2024, 3, 5), datetime(2024, 3, 5, 8, 30), Decimal("0.1234"), "a@x.co"),
        ("C2", date(2024, 3, 5), datetime(2024, 3, 5, 9), Decimal("12.0000"), "b@x.co")]
    q = _trusted(tmp_path, spec, "_quarantine/contacts")
    assert [(rule, line) for rule, _, line, *_ in q] == [
        ("email_has_at", 6), ("score_4_decimals", 5), ("seen_at_parsable", 7), ("signup_day_first", 4)]
    assert all(f == CONTACTS_FILE for _, f, *_ in q)


def test_the_flows_program_exits_1_over_the_project_limit(tmp_path):
    spec = _project(tmp_path, project_limit="0.25")
    proc, metrics = _flows(tmp_path, spec)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert ("error: trusted flow contacts quarantined 4 of the 6 rows it read (66.7%), more than the limit of 25% "
            "(quality.max_quarantine_share of the project)") in proc.stderr
    assert f"{CONTACTS_FILE}:6 [email_has_at] C5,05/03/2024,05/03/2024 08:30,1,nobody" in proc.stderr
    assert metrics["ok"] is False and "contacts quarantined 4 of the 6" in metrics["error"]
    assert _trusted(tmp_path, spec, "contacts") == [] and _trusted(tmp_path, spec, "_quarantine/contacts") == []


def test_a_bad_flow_limit_is_a_located_project_error(tmp_path):
    """`validate` (every project load) refuses it at the flow's line, before any run."""
    from funnelops.errors import ProjectError

    with pytest.raises(ProjectError) as e:
        _project(tmp_path, flow_limit='MAX_QUARANTINE_SHARE = "half"')
    [p] = e.value.problems
    assert p.file.endswith("contacts.py") and p.line == 11 and p.field.endswith("MAX_QUARANTINE_SHARE")
    assert "'half'" in p.message


def test_the_project_limit_is_checked_by_the_schema(tmp_path):
    from funnelops.errors import ProjectError

    for bad in ("1.5", "true", "'0.5'"):
        with pytest.raises(ProjectError) as e:
            _project(tmp_path / bad.strip("'"), project_limit=bad)
        assert "max_quarantine_share" in e.value.message


def test_a_workflow_run_over_the_limit_is_recorded_failed_with_the_cause(tmp_path, monkeypatch):
    """The local run record (what `runs` and the pipelines show) ends FAILED naming the flow and rules."""
    from funnelops.backends.local import LocalBackend
    from funnelops.plan.apply import apply_plan
    from funnelops.plan.diff import build_plan
    from funnelops.runs import coordinator

    spec = _project(tmp_path, project_limit="0.25")
    loaded = load_project(spec)
    home = tmp_path / "home"
    monkeypatch.setenv("FUNNELOPS_PROJECT", str(spec))
    monkeypatch.setenv("FUNNELOPS_HOME", str(home))
    backend = LocalBackend.for_project(loaded, home)
    assert apply_plan(build_plan(loaded, backend, "iac"), backend).ok
    workflow = loaded.spec.workflows[0].name
    run = coordinator.start(backend, workflow, trigger="forced", actor="test",
                            extra_args=["--period=2024-03-05", "--trusted_flows=contacts", "--refined_flows=false"])
    [rec] = coordinator.wait(backend.runtime, [run.id], timeout=240)
    assert rec.state == "FAILED"
    assert "trusted flow contacts quarantined 4 of the 6 rows it read (66.7%)" in (rec.error or "")
    assert "top rules: email_has_at 1, score_4_decimals 1, seen_at_parsable 1" in (rec.error or "")
    assert _trusted(tmp_path, spec, "contacts") == []
