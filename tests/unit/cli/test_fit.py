"""Tables fit the terminal: columns are dropped least important first, ids and numbers never cut."""

from __future__ import annotations

from io import StringIO

import pytest
from rich.console import Console

from funnelops.backends.types import RunRecord
from funnelops.cli.fit import Col, fit_table
from funnelops.cli.runs_table import runs_table


def _render(table, width: int) -> list[str]:
    out = StringIO()
    Console(file=out, width=width, no_color=True, color_system=None, soft_wrap=False).print(table)
    return out.getvalue().splitlines()


def _run(i: int, workflow: str) -> RunRecord:
    return RunRecord(id=i, workflow=workflow, state="DONE", trigger="initial-load", actor="ci", args=["--period=2024-01"],
                     started_at="2026-11-29T08:00:00+00:00", ended_at="2026-11-29T08:01:02.5+00:00",
                     rows={"read": 12_345_678, "kept": 12_000_001, "quarantined": 345_677})


@pytest.mark.parametrize("width", [60, 80])
def test_runs_table_keeps_the_id_and_whole_numbers(width: int) -> None:
    records = [_run(1234, "funnel-duplicado-mes-reproceso"), _run(7, "funnel-dia")]
    table, left_out = runs_table(records, width)
    lines = _render(table, width)
    assert all(len(line) <= width for line in lines), lines
    assert lines[1].split()[0] == "1234" and lines[2].split()[0] == "7"
    assert "12,345,678" in lines[1] and "…" not in "".join(line.split()[0] for line in lines)
    assert left_out and "trigger" in left_out  # the least important went first
    if width == 80:
        assert "funnel-duplicado-mes-reproceso" in lines[1]  # names cut only after columns are dropped


def test_a_narrow_terminal_cuts_names_only_after_dropping_every_optional_column() -> None:
    cols = [Col("id", keep=0, justify="right"), Col("name", keep=0, shrink=True, min_width=6),
            Col("count", keep=0, justify="right"), Col("note", keep=10)]
    rows: list[list] = [["42", "a-very-long-workflow-name", "1,000,000", "optional"]]
    table, left_out = fit_table(cols, rows, 24)
    line = _render(table, 24)[1]
    assert left_out == ["note"] and line.split()[0] == "42" and "1,000,000" in line and "…" in line
    table, left_out = fit_table(cols, rows, 200)
    assert left_out == [] and "a-very-long-workflow-name" in _render(table, 200)[1]
