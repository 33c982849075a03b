"""Saved plans (issue #13): `plan -out FILE` then `apply FILE` applies exactly the reviewed plan,
and refuses, touching nothing, when the project or the live platform moved in between, when the
file was planned for another project, or when it was edited. The real console script on a copy of
the shipped project and a fresh local home.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FUNNEL = REPO / "projects" / "funnel"
FUNNELOPS = str(Path(sys.executable).with_name("funnelops"))
IAC_CREATES = 23  # the shipped project at IaC: 4 buckets, 3 datasets, 5 tables, 3 views, 4 templates, 4 schedulers


class Cli:
    def __init__(self, base: Path, project_dir: Path = FUNNEL) -> None:
        shutil.copytree(project_dir, base / "project", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        self.base = base
        self.project = base / "project" / "funnel.yaml"
        self.home = base / "home"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELOPS_")}
        self.env.update(FUNNELOPS_PROJECT=str(self.project), FUNNELOPS_HOME=str(self.home), NO_COLOR="1",
                        COLUMNS="200")

    def __call__(self, *args: str, code: int = 0) -> subprocess.CompletedProcess:
        proc = subprocess.run([FUNNELOPS, *args], env=self.env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == code, (f"funnelops {' '.join(args)}: exit {proc.returncode}, expected {code}\n"
                                         f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        return proc

    def summary(self, stage: str) -> dict[str, int]:
        return json.loads(self("plan", "--stage", stage, "--json").stdout)["summary"]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_plan_out_then_apply_applies_exactly_it_and_records_the_job(cli: Cli) -> None:
    saved = cli.base / "iac.plan.json"
    out = cli("plan", "--stage", "IaC", "-out", str(saved))
    assert f"funnelops apply {saved}" in out.stdout
    doc = json.loads(saved.read_text())
    assert {"format_version", "backend", "project", "stage", "spec_hash", "created_at", "changes",
            "observed_fingerprint"} <= set(doc)
    assert (doc["backend"], doc["project"], doc["stage"]) == ("local", "analitica-funnel", "iac")
    assert len(doc["changes"]) == IAC_CREATES and {c["action"] for c in doc["changes"]} == {"create"}
    assert all(c["after"] for c in doc["changes"])
    assert not cli.home.joinpath("buckets").exists()  # planning touched nothing

    result = json.loads(cli("apply", str(saved), "--json").stdout)
    assert result["stage"] == "iac" and result["apply"]["applied"] == {"create": IAC_CREATES}
    assert cli.summary("IaC")["unchanged"] == IAC_CREATES
    status = json.loads(cli("status", "--json").stdout)
    assert status["position"] == "iac"  # recorded as `job create-infra` records it

    again = cli.base / "again.json"
    cli("plan", "--stage", "IaC", "--out", str(again))  # the long spelling too
    assert {c["action"] for c in json.loads(again.read_text())["changes"]} == {"unchanged"}
    cli("apply", str(again))


def test_apply_refuses_when_the_project_moved(cli: Cli) -> None:
    saved = cli.base / "p.json"
    cli("plan", "--stage", "IaC", "-out", str(saved))
    text = cli.project.read_text()
    cli.project.write_text(text.replace("labels: {layer: trusted, app: funnel}",
                                        "labels: {layer: trusted, app: funnel, team: ops}", 1))
    err = json.loads(cli("apply", str(saved), "--json", code=1).stdout)
    assert "the plan is stale" in err["message"] and "re-run plan" in err["message"]
    assert err["details"]["resource"] == "bucket.analitica-funnel-trusted"
    assert not cli.home.joinpath("buckets").exists()  # nothing applied
    assert cli.summary("IaC")["create"] == IAC_CREATES


def test_apply_refuses_when_the_live_state_moved(cli: Cli) -> None:
    cli("job", "create-infra", "--stage", "IaC")
    saved = cli.base / "p.json"
    cli("plan", "--stage", "IaC", "-out", str(saved))
    shutil.rmtree(cli.home / "buckets" / "analitica-funnel-refined")  # a bucket deleted behind funnelops' back
    err = cli("apply", str(saved), code=1).stderr
    assert "the plan is stale" in err and "bucket.analitica-funnel-refined changed on the platform" in err

    cli("job", "create-infra", "--stage", "IaC")  # put it back
    cli("plan", "--stage", "IaC", "-out", str(saved))
    with sqlite3.connect(cli.home / "ledger.sqlite") as con:  # a template edited outside funnelops
        con.execute("UPDATE templates SET body = replace(body, 'n2-standard-4', 'n2-standard-8') "
                    "WHERE name = 'funnel-mes'")
    assert cli.summary("IaC")["update"] == 1
    err = json.loads(cli("apply", str(saved), "--json", code=1).stdout)
    assert err["details"]["resource"] == "workflow_template.funnel-mes"
    assert cli.summary("IaC")["update"] == 1  # nothing applied
    assert json.loads(cli("status", "--json").stdout)["position"] == "iac"


def test_a_plan_of_another_project_is_refused(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run([FUNNELOPS, "init", str(other), "--name", "Other Shop"], env=cli.env, check=True,
                   capture_output=True, text=True, timeout=120)
    saved = tmp_path / "other.json"
    subprocess.run([FUNNELOPS, "--project", str(other / "funnel.yaml"), "--home", str(tmp_path / "other-home"),
                    "plan", "--stage", "IaC", "-out", str(saved)], env=cli.env, check=True, capture_output=True,
                   text=True, timeout=120)
    err = cli("apply", str(saved), code=2).stderr
    assert "is for project other-shop" in err and "not project analitica-funnel" in err
    assert not cli.home.joinpath("buckets").exists()


def test_an_edited_missing_or_foreign_file_is_refused(cli: Cli) -> None:
    saved = cli.base / "p.json"
    cli("plan", "--stage", "IaC", "-out", str(saved))
    doc = json.loads(saved.read_text())
    doc["changes"][0]["after"]["storage_class"] = "COLDLINE"
    saved.write_text(json.dumps(doc))
    assert "was edited after `plan -out` wrote it" in cli("apply", str(saved), code=2).stderr

    # edited and re-sealed: the fresh plan differs from it, so it is refused as not the plan
    from funnelops.plan.saved import _digest

    doc["checksum"] = _digest({k: v for k, v in doc.items() if k != "checksum"})
    saved.write_text(json.dumps(doc))
    err = cli("apply", str(saved), code=1).stderr
    assert "the plan is stale" in err and doc["changes"][0]["address"] in err

    assert "does not exist" in cli("apply", str(cli.base / "nope.json"), code=2).stderr
    saved.write_text("{not json")
    assert "not JSON (line 1" in cli("apply", str(saved), code=2).stderr
    saved.write_text(json.dumps({"stage": "iac"}))
    assert "is not a funnelops plan file" in cli("apply", str(saved), code=2).stderr
    assert not cli.home.joinpath("buckets").exists()
