"""Argument parsing and period selection of the flows program."""

from datetime import date, datetime, UTC

import pytest

from funnelops.errors import UsageError
from funnelops.flows.args import parse_args, resolve_period
from funnelops.flows.registry import select


def test_last_flag_wins_and_unknown_are_ignored():
    a = parse_args(["--project_id=analitica-funnel", "--raw_bucket=x", "--granularity=DAY",
                    "--execution_type=delta", "--refined_flows=false", "--execution_type=full"])
    assert a.execution_type == "full"
    assert a.refined_flows == ()
    assert a.trusted_flows is None
    assert a.ignored == ("--project_id=analitica-funnel", "--raw_bucket=x")


def test_flow_lists_and_project_with_separate_value():
    a = parse_args(["--granularity=month", "--trusted_flows=leads, won_deals", "--project", "p.yaml"])
    assert a.granularity == "MONTH"
    assert a.trusted_flows == ("leads", "won_deals")
    assert a.project == "p.yaml"


@pytest.mark.parametrize("argv", [
    ["--execution_type=full"],                      # no granularity
    ["--granularity=WEEK"],
    ["--granularity=DAY", "--execution_type=sometimes"],
    ["--granularity=DAY", "positional"],
    ["--granularity=DAY", "--trusted_flows="],
])
def test_bad_arguments_are_usage_errors(argv):
    with pytest.raises(UsageError) as e:
        parse_args(argv)
    assert e.value.exit_code == 2


def test_explicit_periods():
    assert resolve_period("DAY", "2024-02-29", "UTC") .start == date(2024, 2, 29)
    p = resolve_period("MONTH", "2024-12", "UTC")
    assert (p.start, p.end) == (date(2024, 12, 1), date(2025, 1, 1))
    p = resolve_period("YEAR", "2023", "UTC")
    assert (p.start, p.end) == (date(2023, 1, 1), date(2024, 1, 1))
    with pytest.raises(UsageError):
        resolve_period("DAY", "2024-02-30", "UTC")
    with pytest.raises(UsageError):
        resolve_period("MONTH", "2024-03-01", "UTC")


def test_current_and_previous_use_the_project_time_zone():
    # 2024-03-01 03:00 UTC is still 2024-02-29 22:00 in Bogotá (UTC-5)
    now = datetime(2024, 3, 1, 3, 0, tzinfo=UTC)
    assert resolve_period("DAY", None, "America/Bogota", now).start == date(2024, 2, 29)
    assert resolve_period("DAY", None, "UTC", now).start == date(2024, 3, 1)
    p = resolve_period("MONTH", "previous", "America/Bogota", now)
    assert (p.start, p.end) == (date(2024, 1, 1), date(2024, 2, 1))
    jan = datetime(2024, 1, 15, 12, tzinfo=UTC)
    p = resolve_period("MONTH", "previous", "America/Bogota", jan)
    assert (p.start, p.end) == (date(2023, 12, 1), date(2024, 1, 1))
    assert resolve_period("YEAR", "previous", "UTC", jan).start == date(2023, 1, 1)


def test_current_spelled_out_is_the_current_period():
    """The run tail always carries `--period=` (current unless a run asks for a period)."""
    now = datetime(2024, 3, 1, 3, 0, tzinfo=UTC)
    p = resolve_period("DAY", "current", "America/Bogota", now)
    assert (p.start, p.label) == (date(2024, 2, 29), "current")


def test_widen_to_months_for_monthly_sources():
    p = resolve_period("DAY", "2024-02-10", "UTC").widen_to_months()
    assert (p.start, p.end) == (date(2024, 2, 1), date(2024, 3, 1))


def test_flow_selection():
    known = ["leads", "targets", "won_deals"]
    assert select(None, known, "trusted") == known
    assert select((), known, "trusted") == []
    assert select(("won_deals", "leads"), known, "trusted") == ["won_deals", "leads"]
    with pytest.raises(UsageError) as e:
        select(("lead",), known, "trusted")
    assert "known trusted flows: leads, targets, won_deals" in e.value.message
    assert e.value.exit_code == 2


def test_the_gcp_run_tail_is_read_last_value_wins():
    """The gcp run tail (`--lease`, `--workflow`) is known: the template's `--lease=scheduled` is
    replaced per run by the FO_LEASE parameter, and the flows program finds its lease by both."""
    args = parse_args(["--granularity=DAY", "--lease=scheduled", "--workflow=funnel-dia", "--lease=abc123"])
    assert (args.lease, args.workflow, args.ignored) == ("abc123", "funnel-dia", ())
    assert parse_args(["--granularity=DAY"]).lease is None


def test_flows_program_help_prints_usage_and_exits_0():
    """`python -m funnelops.flows --help` printed "--granularity=None is missing" and exited 2."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "funnelops.flows", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "usage: python -m funnelops.flows" in r.stdout and "--granularity" in r.stdout
    r = subprocess.run([sys.executable, "-m", "funnelops.flows", "--execution_type=full"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2
    assert "--granularity is missing" in r.stderr and "None" not in r.stderr


@pytest.mark.parametrize("argv, message", [
    (["--granularity"], "--granularity needs a value"),
    (["--granularity=DAY", "--project"], "--project"),
    (["--gran=DAY"], "--granularity is missing"),  # no abbreviations: --gran is a variable, ignored
])
def test_argparse_errors_stay_usage_errors(argv, message):
    with pytest.raises(UsageError) as e:
        parse_args(argv)
    assert message in e.value.message and e.value.exit_code == 2
