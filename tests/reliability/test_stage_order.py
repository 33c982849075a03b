"""Attacks on the lifecycle order (issue 9, item 10): jobs run alone or out of order.

Before: `job rerun-workflow-templates` alone marked "Initial data" done (refined tables empty,
templates still `--refined_flows=false`) and then allowed the workflow pipeline. Now each job of
a stage needs the jobs before it, completed in order since the last reset, and only the last
one, after all of them, records the stage; a refusal exits 4 naming the job to run first, and
is audited in the ledger. The same rules hold on both ledgers (local SQLite, gcp JSON document).
"""

from __future__ import annotations

import inspect
import json
import sqlite3
from pathlib import Path
from typing import Any
from collections.abc import Callable

import pytest

from funnelops.runs import coordinator
from funnelops.backends.gcp.ledger import GcsLedger
from funnelops.errors import StageOrderError
from funnelops.lifecycle.order import job_completed, require_before
from funnelops.backends.base import Ledger
from funnelops.backends.local.ledger import LocalLedger
from tests.helpers.tiny_project import cli_json_runner, run_count, write_tiny

pytestmark = pytest.mark.reliability

@pytest.fixture
def tiny(tmp_path, monkeypatch, capsys):
    """A one-workflow project with a trivial step, IaC done; `run(*args)` -> (exit code, JSON answer)."""
    project = write_tiny(tmp_path, "tiny-order")  # the gated step: STEP_GATE, when set, holds a run
    monkeypatch.setenv("NO_COLOR", "1")
    home = tmp_path / "home"
    run = cli_json_runner(project, home, capsys)

    assert run("pipeline", "funnel", "--data-stage", "IaC")[0] == 0
    run.home = home  # type: ignore[attr-defined]
    return run


def _stages(home: Path) -> set[str]:
    return set(LocalLedger(home).stages())


def _refused(home: Path) -> list[dict]:
    con = sqlite3.connect(home / "ledger.sqlite")
    try:
        rows = con.execute("SELECT subject, data FROM events WHERE kind = 'refused' ORDER BY id").fetchall()
    finally:
        con.close()
    return [{"subject": s, **json.loads(d)} for s, d in rows]


def test_rerun_alone_is_refused_and_never_marks_initial_data(tiny):
    code, err = tiny("job", "rerun-workflow-templates")
    assert code == 4 and err["error"] == "stage_order"
    assert "funnelops job run-workflow-templates" in err["message"] + err["hint"]
    assert err["details"]["needed"] == "run-workflow-templates"
    assert _stages(tiny.home) == {"iac"} and run_count(tiny.home) == 0  # nothing ran, nothing recorded
    assert tiny("pipeline", "workflow", "--scheduler", "Día")[0] == 4  # still before Initial data
    refused = _refused(tiny.home)
    assert [r["subject"] for r in refused] == ["rerun-workflow-templates", "force-scheduler"]
    assert refused[0]["reason"] == "stage_order" and refused[0]["needed"] == "run-workflow-templates"


def test_each_job_of_initial_data_needs_the_ones_before_it_in_order(tiny):
    code, err = tiny("job", "create-infra", "--stage", "Initial data")
    assert code == 4 and err["details"]["needed"] == "run-workflow-templates"
    assert tiny("job", "run-workflow-templates")[0] == 0
    code, err = tiny("job", "rerun-workflow-templates")  # create-infra for Initial data skipped
    assert code == 4 and err["details"]["needed"] == "create-infra:initial_data"
    assert 'funnelops job create-infra --stage "Initial data"' in err["hint"]
    assert _stages(tiny.home) == {"iac"}
    assert tiny("job", "create-infra", "--stage", "Initial data")[0] == 0
    assert _stages(tiny.home) == {"iac"}  # not before its last job
    assert tiny("job", "rerun-workflow-templates")[0] == 0
    assert _stages(tiny.home) == {"iac", "initial_data"}
    code, out = tiny("job", "force-scheduler", "--scheduler", "Día")
    assert code == 0, out


def test_destroy_resets_the_chain(tiny):
    assert tiny("pipeline", "funnel", "--data-stage", "Initial data")[0] == 0
    assert _stages(tiny.home) == {"iac", "initial_data"}
    assert tiny("destroy", "--yes")[0] == 0
    assert tiny("pipeline", "funnel", "--data-stage", "IaC")[0] == 0
    code, err = tiny("job", "rerun-workflow-templates")  # the jobs done before the destroy do not count
    assert code == 4 and err["details"]["needed"] == "run-workflow-templates"
    assert _stages(tiny.home) == {"iac"}


# -- the same rules on both ledgers ------------------------------------------------------------------

class MemoryDoc:
    """The GcsJson contract (read -> (doc, generation); update(change)) on a dict in memory."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] = {}
        self.generation = 0

    def read(self) -> tuple[dict[str, Any], int]:
        return json.loads(json.dumps(self.doc)), self.generation

    def update(self, change: Callable[[dict[str, Any]], Any]) -> Any:
        doc, _ = self.read()
        result = change(doc)
        self.doc, self.generation = json.loads(json.dumps(doc)), self.generation + 1
        return result


@pytest.fixture(params=["local", "gcp"])
def any_ledger(request, tmp_path):
    return LocalLedger(tmp_path) if request.param == "local" else GcsLedger(MemoryDoc())


def test_both_ledgers_offer_the_same_interface():
    wanted = {n for n, _ in inspect.getmembers(Ledger, inspect.isfunction) if not n.startswith("_")}
    assert {"record_job", "jobs_done"} <= wanted
    for cls in (LocalLedger, GcsLedger):
        for name in wanted:
            assert inspect.signature(getattr(cls, name)) == inspect.signature(getattr(Ledger, name)), (cls, name)


def test_the_chain_on_either_ledger(any_ledger):
    ledger = any_ledger
    with pytest.raises(StageOrderError, match="'IaC' stage has not completed"):
        require_before(ledger, None, "rerun-workflow-templates")
    assert job_completed(ledger, "create-infra", "iac", "h", "me") == "iac"
    with pytest.raises(StageOrderError) as refused:
        require_before(ledger, None, "rerun-workflow-templates")
    assert refused.value.details["needed"] == "run-workflow-templates"
    require_before(ledger, None, "run-workflow-templates")
    # out of order: create-infra before the trusted load does not count for the chain
    ledger.record_job("create-infra:initial_data", "h", "me")
    assert job_completed(ledger, "run-workflow-templates", None, "h", "me") is None
    with pytest.raises(StageOrderError) as refused:
        require_before(ledger, None, "rerun-workflow-templates")
    assert refused.value.details["needed"] == "create-infra:initial_data"
    require_before(ledger, "initial_data", "create-infra")
    job_completed(ledger, "create-infra", "initial_data", "h", "me")
    require_before(ledger, None, "rerun-workflow-templates")
    assert job_completed(ledger, "rerun-workflow-templates", None, "h", "me") == "initial_data"
    assert set(ledger.stages()) == {"iac", "initial_data"}
    assert [e["data"]["needed"] for e in reversed(ledger.events("refused"))] == \
        ["iac", "run-workflow-templates", "create-infra:initial_data"]
    ledger.reset_stages("me")
    assert ledger.jobs_done() == [] and ledger.stages() == {}


def test_every_overlap_refusal_is_audited(tiny, tmp_path, monkeypatch):
    """Before: only a refusal inside the runtime's start() was recorded; the jobs' own checks were not."""

    assert tiny("pipeline", "funnel", "--data-stage", "Initial data")[0] == 0
    gate = tmp_path / "gate"
    monkeypatch.setenv("STEP_GATE", str(gate))
    code, first = tiny("job", "force-scheduler", "--scheduler", "Día")
    assert code == 0, first
    try:
        for args in (("job", "force-scheduler", "--scheduler", "Día"), ("job", "run-workflow-templates"),
                     ("pipeline", "workflow", "--scheduler", "dia")):
            code, err = tiny(*args)
            assert code == 3 and err["error"] == "run_in_progress", (args, err)
    finally:
        gate.touch()
    refused = [r for r in _refused(tiny.home) if r["reason"] == "run_in_progress"]
    assert len(refused) == 3
    assert {r["subject"] for r in refused} == {"tiny-dia"}
    assert all(r["holder"]["run_id"] == first["run"]["id"] and r["actor"] for r in refused)
    assert [r["trigger"] for r in refused] == ["forced", "initial-load", "forced"]
    from funnelops.backends.local import LocalBackend

    runtime = LocalBackend(tiny.home, "p", "r").runtime
    assert coordinator.wait(runtime, [first["run"]["id"]], timeout=30)[0].state == "DONE"
