"""The rollback guard (issue 13): an apply never moves the templates back to an earlier stage silently.

On main, `job create-infra --stage IaC` on a finished lifecycle put every template back to
`--refined_flows=false` (exit 0) while `status` still showed the lifecycle complete, and
`pipeline funnel --data-stage IaC` did the same. Now both are refused (exit 2, nothing changed,
audited), naming the templates, the argument change and `--allow-rollback`; with the flag the
ledger forgets the later stages, so `status` and the order checks tell the truth.
"""

from __future__ import annotations


import pytest

from funnelops.backends.local.ledger import LocalLedger
from tests.helpers.tiny_project import cli_json_runner, run_count, write_tiny

pytestmark = pytest.mark.reliability


@pytest.fixture
def finished(tmp_path, monkeypatch, capsys):
    """A one-workflow project whose lifecycle completed every stage; `run(*args)` -> (exit code, JSON)."""
    project = write_tiny(tmp_path, "tiny-rollback", "print('step ran')\n")
    monkeypatch.setenv("NO_COLOR", "1")
    home = tmp_path / "home"
    run = cli_json_runner(project, home, capsys)

    for step in (["pipeline", "funnel", "--data-stage", "IaC"], ["pipeline", "funnel", "--data-stage", "Initial data"],
                 ["pipeline", "workflow", "--scheduler", "Día", "--wait"]):
        assert run(*step)[0] == 0, step
    assert set(LocalLedger(home).stages()) == {"iac", "initial_data", "workflow"}
    run.home = home  # type: ignore[attr-defined]
    return run


def _args(run) -> list[str]:
    code, status = run("status")
    assert code == 0, status
    return status["templates"][0]["dynamic_args"]


@pytest.mark.parametrize("command", [
    ["job", "create-infra", "--stage", "IaC"],
    ["pipeline", "funnel", "--data-stage", "IaC"],
    ["pipeline", "funnel", "--data-stage", "Initial data"],
])
def test_a_rollback_is_refused_and_changes_nothing(finished, command):
    home = finished.home
    runs_before = run_count(home)
    code, err = finished(*command)
    assert code == 2, err
    assert "tiny-dia" in err["message"] and "'Workflow'" in err["message"]
    assert "--allow-rollback" in err["hint"] and " ".join(command[:2]) in err["hint"]
    assert err["details"]["rollback"]["templates"] == ["tiny-dia"]
    assert _args(finished) == []  # still the Workflow stage's arguments
    assert set(LocalLedger(home).stages()) == {"iac", "initial_data", "workflow"}
    assert run_count(home) == runs_before  # the Initial data pipeline was refused before its first job
    refused = LocalLedger(home).events("refused")
    assert refused and refused[0]["data"]["needed"] == "--allow-rollback"


def test_a_deliberate_rollback_rewinds_the_ledger(finished):
    code, out = finished("job", "create-infra", "--stage", "IaC", "--allow-rollback")
    assert code == 0, out
    assert _args(finished) == ["--refined_flows=false"]
    ledger = LocalLedger(finished.home)
    assert set(ledger.stages()) == {"iac"}
    code, status = finished("status")
    assert [s["done"] for s in status["stages"]] == [True, False, False]
    assert ledger.events("rollback")[0]["subject"] == "iac"
    # the order checks agree with status: the workflow pipeline needs Initial data again
    code, err = finished("pipeline", "workflow", "--scheduler", "Día")
    assert code == 4 and err["details"]["needed"] == "initial_data"
    assert finished("pipeline", "funnel", "--data-stage", "Initial data")[0] == 0
    assert set(ledger.stages()) == {"iac", "initial_data"}


def test_converging_at_the_current_stage_is_not_a_rollback(finished):
    assert finished("job", "create-infra", "--stage", "Workflow")[0] == 0
    assert finished("job", "create-infra", "--stage", "IaC", "--allow-rollback")[0] == 0
    assert finished("job", "create-infra", "--stage", "IaC")[0] == 0  # now the current stage: no guard
