"""Global flags after the command: `main()` moves them to the front, following the command tree."""

from __future__ import annotations

import typer

from funnelops.cli.argv import detailed_exitcode_requested, hoist_global_flags
from funnelops.cli.main import app

ROOT = typer.main.get_command(app)


def test_flags_after_the_command_move_to_the_front() -> None:
    assert hoist_global_flags(["status", "--json"], ROOT) == ["--json", "status"]
    assert hoist_global_flags(["job", "create-infra", "--stage", "IaC", "--json", "--no-color"], ROOT) == \
        ["--json", "--no-color", "job", "create-infra", "--stage", "IaC"]
    assert hoist_global_flags(["--json", "plan", "--json", "--debug"], ROOT) == ["--json", "--debug", "plan"]


def test_option_values_and_arguments_after_double_dash_stay() -> None:
    # the value of a value-taking option is never a flag, whatever it looks like
    assert hoist_global_flags(["plan", "--stage", "--json"], ROOT) == ["plan", "--stage", "--json"]
    assert hoist_global_flags(["--project", "--dry-run", "status"], ROOT) == ["--project", "--dry-run", "status"]
    assert hoist_global_flags(["data", "load", "--flow", "leads", "--", "--json", "--debug"], ROOT) == \
        ["data", "load", "--flow", "leads", "--", "--json", "--debug"]
    assert hoist_global_flags(["plan", "--stage=IaC", "--dry-run"], ROOT) == ["--dry-run", "plan", "--stage=IaC"]


def test_detailed_exitcode_is_seen_before_double_dash_only() -> None:
    assert detailed_exitcode_requested(["plan", "--detailed-exitcode"])
    assert not detailed_exitcode_requested(["data", "load", "--", "--detailed-exitcode"])
