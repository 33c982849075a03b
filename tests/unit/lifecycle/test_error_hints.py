"""Issue 13's error hints: an order refusal sends the operator to the FIRST stage missing, and a
cron with five fields is not told to "use 5 fields".

Both failed on main: `force-scheduler` on a new home named 'Initial data' (whose command is refused
in turn, since IaC has not run either), and every bad cron got the same field-count hint.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from funnelops.backends.local.ledger import LocalLedger
from funnelops.errors import ProblemCollector, StageOrderError
from funnelops.lifecycle.order import job_completed, require_before
from funnelops.scheduler.cron import CronError, compile_cron
from funnelops.spec.loader import parse_yaml
from funnelops.spec.models import ProjectSpec
from funnelops.spec.project import LoadedProject
from funnelops.spec.resolve import resolve_files
from funnelops.spec.validate import Checked, check_cron, known_names


@pytest.mark.parametrize("step, stage", [("force-scheduler", None), ("backfill", None),
                                         ("create-infra", "workflow")])
def test_an_order_refusal_names_the_first_missing_stage(tmp_path: Path, step: str, stage: str | None) -> None:
    ledger = LocalLedger(tmp_path / "home")
    with pytest.raises(StageOrderError) as refused:
        require_before(ledger, stage, step)
    err = refused.value
    assert err.exit_code == 4
    assert err.details["needed"] == "iac"
    assert "'IaC' stage has not completed" in err.message and "then 'Initial data'" in err.message
    assert err.hint == "run it first: funnelops pipeline funnel --data-stage IaC"


def test_with_iac_done_the_refusal_names_initial_data(tmp_path: Path) -> None:
    ledger = LocalLedger(tmp_path / "home")
    job_completed(ledger, "create-infra", "iac", "h", "me")
    with pytest.raises(StageOrderError) as refused:
        require_before(ledger, None, "force-scheduler")
    assert refused.value.details["needed"] == "initial_data"
    assert "then" not in refused.value.message
    assert 'funnelops pipeline funnel --data-stage "Initial data"' in (refused.value.hint or "")


PROJECT = """project:
  id: cron-hints
workflows:
  - name: wf-day
    granularity: DAY
    jobs:
      - step_id: step-one
schedulers:
  - {name: Bad hour, id: bad-hour, cron: "0 25 * * *", workflow: wf-day}
  - {name: Four, id: four, cron: "0 6 * *", workflow: wf-day}
"""


def _cron_problems(tmp_path: Path) -> dict[str, str | None]:
    path = tmp_path / "funnel.yaml"
    path.write_text(PROJECT, encoding="utf-8")
    data, lines = parse_yaml(PROJECT, str(path))
    loaded = LoadedProject(spec=ProjectSpec.model_validate(data), path=path, lines=lines)
    resolved = resolve_files(loaded, str(path), ProblemCollector())
    c = ProblemCollector()
    check_cron(Checked(loaded, str(path), known_names(loaded.spec, None), resolved), c)
    return {p.field: p.hint for p in c.problems}


def test_validate_names_the_bad_field_of_a_five_field_cron(tmp_path: Path) -> None:
    hints = _cron_problems(tmp_path)
    bad_hour = hints["schedulers[Bad hour].cron"] or ""
    assert "5 fields" not in bad_hour
    assert "field 2 (hour)" in bad_hour and "'25'" in bad_hour and "0-23" in bad_hour
    assert "this one has 4" in (hints["schedulers[Four].cron"] or "")


def test_the_scheduler_names_the_bad_field_too() -> None:
    with pytest.raises(CronError) as bad:
        compile_cron("0 6 * 13 *")
    assert "5 fields" not in (bad.value.hint or "") and "field 4 (month)" in (bad.value.hint or "")
    with pytest.raises(CronError) as short:
        compile_cron("0 6 * *")
    assert "this one has 4" in (short.value.hint or "")
