"""The arguments a workflow template passes to the flows program, and the period they select.

Parsed with argparse (`parse_known_args`). Templates carry the project's whole variable group
(`--project_id=...`, `--raw_bucket=...`) next to the flow arguments, so unknown `--key=value` pairs
are accepted and ignored. A flag given twice
keeps its LAST value: the runner appends run-time arguments (`--execution_type=full` for the
initial load) after the template's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import NoReturn

from funnelops.errors import UsageError

GRANULARITIES = ("DAY", "MONTH", "YEAR")
EXECUTION_TYPES = ("full", "delta")
# `lease` and `workflow`: the gcp run tail (backends/gcp/cluster_lease.py); the local backend ignores them.
_KNOWN = ("trusted_flows", "refined_flows", "granularity", "execution_type", "period", "env", "project", "home",
          "lease", "workflow")
_VALUE_NEXT = ("project", "home")  # these two also accept `--project PATH`


@dataclass(frozen=True)
class Period:
    """A half-open date range [start, end) of one granularity; `label` is what the user typed."""

    granularity: str
    start: date
    end: date
    label: str

    def days(self) -> list[date]:
        return [self.start + timedelta(days=k) for k in range((self.end - self.start).days)]

    def widen_to_months(self) -> Period:
        """The whole months that cover this period (sources delivered monthly)."""
        start = self.start.replace(day=1)
        last = self.end - timedelta(days=1)
        end = _add_months(last.replace(day=1), 1)
        return Period(self.granularity, start, end, self.label)


@dataclass(frozen=True)
class FlowArgs:
    trusted_flows: tuple[str, ...] | None  # None = all, () = skip the layer
    refined_flows: tuple[str, ...] | None
    granularity: str
    execution_type: str
    period: str | None
    env: str | None
    project: str | None
    home: str | None
    ignored: tuple[str, ...] = ()
    lease: str | None = None       # gcp: `scheduled` (take the lease) or the CLI's owner token (verify it)
    workflow: str | None = None    # gcp: the template this run belongs to (names its lease)


def _add_months(d: date, n: int) -> date:
    m = d.month - 1 + n
    return date(d.year + m // 12, m % 12 + 1, 1)


def _flow_list(value: str, flag: str) -> tuple[str, ...]:
    if value.strip().lower() == "false":
        return ()
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise UsageError(f"--{flag} is empty", "give a comma-separated list of flows, or `false` to skip the layer")
    return names


USAGE_EPILOG = """Exit codes: 0 ok, 1 a flow failed, 2 bad arguments or an invalid project.

Any other --key=value (the project's variable group that templates pass along) is accepted and
ignored. A flag given twice keeps its last value."""


def _parser():
    """argparse, not a hand-rolled loop: `--help` prints the usage, errors name the argument.
    `allow_abbrev=False` keeps `--gran=DAY` from passing as `--granularity` (and a variable such as
    `--project_id=...` from ever being read as `--project`)."""
    import argparse

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:  # a located UsageError (exit 2), not argparse's exit
            raise UsageError(message, "run `python -m funnelops.flows --help` for the arguments")

    p = _Parser(prog="python -m funnelops.flows", allow_abbrev=False, epilog=USAGE_EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter,
                description="Run the trusted and refined flows of a project for one period (what a workflow "
                            "template runs).")
    p.add_argument("--granularity", metavar="DAY|MONTH|YEAR", help="The period's granularity (required).")
    p.add_argument("--execution_type", metavar="full|delta", help="full: every period; delta (default): one.")
    p.add_argument("--period", help="YYYY-MM-DD / YYYY-MM / YYYY (as the granularity), previous or current "
                                    "(default: the current period in the project's time zone).")
    p.add_argument("--trusted_flows", metavar="A,B|false", help="Trusted flows to run (default all; false: none).")
    p.add_argument("--refined_flows", metavar="A,B|false", help="Refined flows to run (default all; false: none).")
    p.add_argument("--env", help="The environment name (informational).")
    p.add_argument("--project", metavar="PATH", help="The project file (default: $FUNNELOPS_PROJECT).")
    p.add_argument("--home", metavar="PATH", help="Local state (default: $FUNNELOPS_HOME, else .funnelops).")
    p.add_argument("--lease", help="gcp: `scheduled` or the CLI's owner token of the workflow's lease.")
    p.add_argument("--workflow", help="gcp: the template this run belongs to (names its lease).")
    return p


def parse_args(argv: list[str]) -> FlowArgs:
    """Parse `--key=value` arguments (last one wins); raises UsageError for bad values.
    `--help` prints the usage and exits 0 (SystemExit, as argparse does)."""
    for arg in argv:  # only --project and --home take their value as the next word, as before
        key, eq, _ = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if key in _KNOWN and key not in _VALUE_NEXT and not eq:
            raise UsageError(f"--{key} needs a value", f"write --{key}=VALUE")
    ns, extra = _parser().parse_known_args(argv)
    values = {k: v for k, v in vars(ns).items() if v is not None}
    for arg in extra:
        if not arg.startswith("--"):
            raise UsageError(f"unexpected argument '{arg}'", "flow arguments look like --key=value")
    gran = values.get("granularity", "").upper()
    if gran not in GRANULARITIES:
        got = values.get("granularity")
        raise UsageError(f"--granularity={got} is not valid" if got else "--granularity is missing",
                         f"use one of: {', '.join(GRANULARITIES)}, e.g. --granularity=DAY")
    ex = values.get("execution_type", "delta").lower()
    if ex not in EXECUTION_TYPES:
        raise UsageError(f"--execution_type={values['execution_type']} is not valid", "use full or delta")
    args = FlowArgs(
        trusted_flows=_flow_list(values["trusted_flows"], "trusted_flows") if "trusted_flows" in values else None,
        refined_flows=_flow_list(values["refined_flows"], "refined_flows") if "refined_flows" in values else None,
        granularity=gran, execution_type=ex, period=values.get("period") or None,
        env=values.get("env"), project=values.get("project"), home=values.get("home"), ignored=tuple(extra),
        lease=values.get("lease") or None, workflow=values.get("workflow") or None)
    return args


def resolve_period(granularity: str, text: str | None, time_zone: str, now: datetime | None = None) -> Period:
    """`YYYY-MM-DD` / `YYYY-MM` / `YYYY` / `previous` / `current` or None (the current period in
    `time_zone`). `current` is spelled out because the gcp run tail always carries a `--period=`."""
    from zoneinfo import ZoneInfo

    if text == "current":
        text = None

    today = (now or datetime.now(ZoneInfo(time_zone))).astimezone(ZoneInfo(time_zone)).date()
    label = text or "current"
    if text is None or text == "previous":
        anchor = _truncate(granularity, today)
        if text == "previous":
            anchor = _step(granularity, anchor, -1)
    else:
        anchor = _parse_anchor(granularity, text)
    return Period(granularity, anchor, _step(granularity, anchor, 1), label if text is None or text == "previous"
                  else text)


def step_period(granularity: str, d: date, n: int) -> date:
    """The start of the period `n` periods after the one starting at `d` (backfills walk ranges)."""
    return _step(granularity, d, n)


def _truncate(granularity: str, d: date) -> date:
    if granularity == "DAY":
        return d
    if granularity == "MONTH":
        return d.replace(day=1)
    return date(d.year, 1, 1)


def _step(granularity: str, d: date, n: int) -> date:
    if granularity == "DAY":
        return d + timedelta(days=n)
    if granularity == "MONTH":
        return _add_months(d, n)
    return date(d.year + n, 1, 1)


_FORMATS = {"DAY": (r"^\d{4}-\d{2}-\d{2}$", "%Y-%m-%d", "YYYY-MM-DD"),
            "MONTH": (r"^\d{4}-\d{2}$", "%Y-%m", "YYYY-MM"),
            "YEAR": (r"^\d{4}$", "%Y", "YYYY")}


def _parse_anchor(granularity: str, text: str) -> date:
    pattern, fmt, shown = _FORMATS[granularity]
    if re.match(pattern, text):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    raise UsageError(f"--period={text} is not a {granularity.lower()} period",
                     f"for --granularity={granularity} write --period={shown} or --period=previous")
