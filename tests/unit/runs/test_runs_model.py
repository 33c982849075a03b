"""Holder.describe (the text of a refusal) and the supervisor's row aggregation."""

from __future__ import annotations

import time

import pytest

from funnelops.runs.model import Holder, RunRecord
from funnelops.backends.local.supervisor import aggregate_rows, step_command


@pytest.fixture
def bogota_clock(monkeypatch):
    monkeypatch.setenv("TZ", "America/Bogota")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_describe_scheduled_run_names_run_local_time_and_scheduler(bogota_clock):
    h = Holder("funnel-dia", 42, "run-42", "2026-11-27T15:02:11.123+00:00", trigger="scheduled",
               actor="scheduler:dia")
    assert h.describe() == "run 42, started 10:02:11 by the scheduler (scheduler:dia)"


def test_describe_forced_run_shows_actor(bogota_clock):
    h = Holder("funnel-dia", 7, "run-7", "2026-01-01T00:00:00+00:00", trigger="forced", actor="ana@host")
    assert h.describe() == "run 7, started 19:00:00 by a forced run (ana@host)"


def test_describe_initial_load_and_unknown_trigger(bogota_clock):
    h = Holder("funnel-mes", 3, "run-3", "2026-06-01T12:00:00+00:00", trigger="initial-load", actor="ci")
    assert h.describe() == "run 3, started 07:00:00 by the initial load (ci)"
    # no trigger: the actor is who started it, and is not repeated
    h = Holder("funnel-mes", 3, "run-3", "2026-06-01T12:00:00+00:00", trigger=None, actor="ci")
    assert h.describe() == "run 3, started 07:00:00 by ci"


def test_describe_lease_without_run_names_the_owner(bogota_clock):
    h = Holder("funnel-dia", None, "flows-123-abcd", "2026-06-01T12:00:00+00:00")
    assert h.describe() == "owner flows-123-abcd, started 07:00:00 by flows-123-abcd"


def test_describe_keeps_an_unparseable_time():
    h = Holder("w", 1, "run-1", "not a time", trigger="forced")
    assert "started not a time by a forced run" in h.describe()


def test_holder_to_dict_round_trip():
    h = Holder("w", 1, "run-1", "2026-06-01T12:00:00+00:00", trigger="forced", actor="me")
    assert Holder(**h.to_dict()) == h


def test_run_record_to_dict_hides_pid_and_terminal_states():
    r = RunRecord(id=1, workflow="w", state="RUNNING", trigger="forced", actor="me", pid=123)
    d = r.to_dict()
    assert "pid" not in d and d["state"] == "RUNNING"
    assert not r.terminal
    for state in ("DONE", "FAILED", "CANCELLED", "LOST"):
        assert RunRecord(id=1, workflow="w", state=state, trigger="forced", actor="me").terminal


def test_aggregate_rows_sums_flows_across_steps():
    metrics = [
        {"flows": [{"flow": "leads", "read": 10, "kept": 9, "quarantined": 1},
                   {"flow": "targets", "read": "5", "kept": "5", "quarantined": "0"}]},
        {},  # a step that wrote no metrics (failed before, or not a flows program)
        {"flows": [{"flow": "funnel", "read": 7, "kept": 7}]},  # no quarantined key
    ]
    rows = aggregate_rows(metrics)
    assert (rows["read"], rows["kept"], rows["quarantined"]) == (22, 21, 1)
    assert [f["flow"] for f in rows["flows"]] == ["leads", "targets", "funnel"]


def test_aggregate_rows_of_nothing_is_zero():
    assert aggregate_rows([]) == {"read": 0, "kept": 0, "quarantined": 0, "flows": []}


def test_step_command_for_module_and_file(tmp_path):
    import sys

    import pytest

    assert step_command("funnelops.flows", ["--a=1"]) == [sys.executable, "-m", "funnelops.flows", "--a=1"]
    assert step_command("funnelops.flows", ["--a=1"], runtime_flags=["--home=/h"]) == \
        [sys.executable, "-m", "funnelops.flows", "--a=1", "--home=/h"]
    (tmp_path / "steps").mkdir()
    (tmp_path / "steps" / "step.py").write_text("")
    assert step_command("steps/step.py", [], tmp_path) == [sys.executable, str(tmp_path.resolve() / "steps/step.py")]
    for bad in ("/x/step.py", "../step.py", "steps/../../step.py"):
        with pytest.raises(ValueError):
            step_command(bad, [], tmp_path)
