"""Progress of long work (issue #13): the view draws tasks live on a terminal and as milestone lines
in logs; the wait loop reports each step's flows as they land, and Ctrl-C during it names the runs
that go on."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from rich.console import Console

from funnelops.backends.types import RunRecord
from funnelops.cli.progress_view import ProgressView
from funnelops.errors import Interrupted
from funnelops.reporting import RecordingReporter, RunChanged, StepChanged
from funnelops.runs import coordinator


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=terminal, width=160, color_system=None), buf


def test_plain_view_prints_a_line_per_quarter_and_the_end():
    console, buf = _console(False)
    view = ProgressView(console, live=False)
    for done in range(0, 10_001, 500):
        view.update("g", "generate", done, 10_000, "rows", f"{done // 500} files")
    view.finish("g")
    lines = buf.getvalue().splitlines()
    assert [ln.split(":")[1].split()[0] for ln in lines] == ["0/10,000", "2,500/10,000", "5,000/10,000",
                                                              "7,500/10,000", "10,000/10,000"]
    assert lines[-1].startswith("    generate: 10,000/10,000 rows — 20 files (")


def test_live_view_draws_on_the_terminal_and_stops_when_nothing_runs():
    console, buf = _console(True)
    view = ProgressView(console, live=True)
    view.update("apply", "apply IaC", 0, 3, "changes")
    view.advance("apply", detail="dataset/funnel_trusted")
    assert view.active
    view.print("a line above the display")
    view.advance("apply")
    view.advance("apply")
    view.finish("apply", "3 done")
    assert not view.active
    text = buf.getvalue()
    assert "apply IaC" in text and "3/3 changes" in text and "a line above the display" in text


class _ScriptedRuntime:
    """A runtime whose run moves through scripted records, one per poll (then stays on the last);
    `interrupt_at` makes that poll raise KeyboardInterrupt, as Ctrl-C does mid-sleep."""

    poll_backoff = 1.0

    def __init__(self, records: list[RunRecord], interrupt_at: int | None = None) -> None:
        self.records, self.polls, self.interrupt_at = records, 0, interrupt_at

    def get(self, run_id):
        self.polls += 1
        if self.polls == self.interrupt_at:
            raise KeyboardInterrupt
        return self.records[min(self.polls, len(self.records)) - 1]


def _run(state: str, flows: list[dict], step_state: str = "RUNNING") -> RunRecord:
    step = {"step_id": "flows", "state": step_state, "metrics": {"flows": flows}}
    return RunRecord(7, "funnel-dia", state, "forced", "me", steps=[step])


A = {"flow": "leads", "read": 10, "kept": 9, "quarantined": 1}
B = {"flow": "deals", "read": 5, "kept": 5, "quarantined": 0}


def test_wait_reports_each_step_as_its_flows_land():
    records = [_run("RUNNING", []), _run("RUNNING", [A]), _run("RUNNING", [A]), _run("RUNNING", [A, B]),
               _run("DONE", [A, B], "DONE")]
    rec = RecordingReporter()
    end = coordinator.wait(_ScriptedRuntime(records), [7], poll_s=0.01, **coordinator.report_to(rec))
    assert end[0].state == "DONE"
    steps = rec.of(StepChanged)
    assert [(s.state, s.flows) for s in steps] == [("RUNNING", ()), ("RUNNING", ("leads",)),
                                                   ("RUNNING", ("leads", "deals")), ("DONE", ("leads", "deals"))]
    assert steps[2].rows == {"read": 15, "kept": 14, "quarantined": 1}
    assert [e.state for e in rec.of(RunChanged)] == ["RUNNING", "DONE"]


def test_ctrl_c_during_wait_names_each_run_that_goes_on():
    runtime = _ScriptedRuntime([_run("RUNNING", [])], interrupt_at=3)
    with pytest.raises(Interrupted) as err:
        coordinator.wait(runtime, [7], poll_s=0.01)
    assert err.value.exit_code == 130
    assert ("run 7 (funnel-dia) continues; follow it with `funnelops logs 7 --follow`, stop it with "
            "`funnelops cancel 7`") in err.value.message


def test_step_changed_sums_the_flows_reported_so_far():
    ev = StepChanged.of(replace(_run("RUNNING", [A, B])), {"step_id": "s", "state": "RUNNING",
                                                          "metrics": {"flows": [A, B]}})
    assert ev.rows == {"read": 15, "kept": 14, "quarantined": 1} and ev.flows == ("leads", "deals")
    assert StepChanged.of(_run("RUNNING", []), {"step_id": "s", "state": "PENDING"}).rows == {}
