"""The arguments a workflow template passes to the flows program, and the period they select.

Templates carry the project's whole variable group (`--project_id=...`, `--raw_bucket=...`) next
to the flow arguments, so unknown `--key=value` pairs are accepted and ignored. A flag given twice
keeps its LAST value: the runner appends run-time arguments (`--execution_type=full` for the
initial load) after the template's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

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


def parse_args(argv: list[str]) -> FlowArgs:
    """Parse `--key=value` arguments (last one wins); raises UsageError for bad values."""
    values: dict[str, str] = {}
    ignored: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise UsageError(f"unexpected argument '{arg}'", "flow arguments look like --key=value")
        key, eq, value = arg[2:].partition("=")
        if not eq and key in _VALUE_NEXT and i + 1 < len(argv):
            value, i = argv[i + 1], i + 1
        elif not eq and key in _KNOWN:
            raise UsageError(f"--{key} needs a value", f"write --{key}=VALUE")
        if key in _KNOWN:
            values[key] = value
        else:
            ignored.append(arg)
        i += 1
    gran = values.get("granularity", "").upper()
    if gran not in GRANULARITIES:
        got = values.get("granularity")
        raise UsageError(f"--granularity={got}" + (" is not valid" if got else " is missing"),
                         f"use one of: {', '.join(GRANULARITIES)}")
    ex = values.get("execution_type", "delta").lower()
    if ex not in EXECUTION_TYPES:
        raise UsageError(f"--execution_type={values['execution_type']} is not valid", "use full or delta")
    args = FlowArgs(
        trusted_flows=_flow_list(values["trusted_flows"], "trusted_flows") if "trusted_flows" in values else None,
        refined_flows=_flow_list(values["refined_flows"], "refined_flows") if "refined_flows" in values else None,
        granularity=gran, execution_type=ex, period=values.get("period") or None,
        env=values.get("env"), project=values.get("project"), home=values.get("home"), ignored=tuple(ignored),
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
