"""The quarantine limit: a trusted flow that rejects too much of what it read fails the run.

Quarantine keeps a bad row out of the trusted layer, but a run that quarantines most of its input
almost never means "the data is bad": it means the flow does not fit the data (a date format the
helpers do not accept, a new column layout, a wrong period). Ending such a run DONE would publish
a nearly empty partition over a good one and hide the cause in the quarantine. So, after the
rows are counted and BEFORE anything is written, a flow whose quarantined share of the rows it
read is above the limit raises :class:`QuarantineLimitExceeded`: the run ends FAILED (exit 1 of
the flows program), the trusted table and its quarantine keep the partitions they had, and the
message names the flow, the share, the top rules with their counts and a sample of quarantined
rows (file:line and the raw record) so the cause shows without opening the quarantine.

The limit is the project's `quality.max_quarantine_share` (default 0.5), which a flow overrides
with a module constant `MAX_QUARANTINE_SHARE`; 1 disables it. A flow that keeps no row of what it
read, under the limit, still gets a warning on its output line.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from collections.abc import Callable

from funnelops.errors import EXIT_FAILURE, FunnelopsError, Problem, ProjectError

TOP_RULES = 3          # rules named in the failure message
SAMPLE_PER_RULE = 2    # quarantined rows shown per top rule
RECORD_CHARS = 200     # a sample's raw record is cut here (a wide line would drown the message)
FLOW_CONSTANT = "MAX_QUARANTINE_SHARE"
PROJECT_FIELD = "quality.max_quarantine_share"


@dataclass(frozen=True)
class QuarantinedRow:
    """One quarantined row, as the quarantine table records it."""

    rule: str
    source_file: str
    source_line: int | None
    raw_record: str | None

    def render(self) -> str:
        record = self.raw_record if self.raw_record is not None else "(no raw record)"
        if len(record) > RECORD_CHARS:
            record = record[:RECORD_CHARS] + "..."
        return f"{self.source_file}:{self.source_line} [{self.rule}] {record}"


Sampler = Callable[[list[str], int], list[QuarantinedRow]]
"""(rules, rows per rule) -> quarantined rows of those rules, in file and line order."""


class QuarantineLimitExceeded(FunnelopsError):
    """A trusted flow quarantined more than its allowed share: the run fails, nothing is written."""

    exit_code = EXIT_FAILURE
    kind = "quarantine_limit"


@dataclass(frozen=True)
class Limit:
    share: float
    source: str        # where it was set, for the message


def flow_limit(module: ModuleType, project_share: float) -> Limit:
    """The flow's `MAX_QUARANTINE_SHARE` when it sets one (checked: a number from 0 to 1), else
    the project's `quality.max_quarantine_share`."""
    if not hasattr(module, FLOW_CONSTANT):
        return Limit(float(project_share), f"{PROJECT_FIELD} of the project")
    value = getattr(module, FLOW_CONSTANT)
    file = str(getattr(module, "__file__", None) or module.__name__)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ProjectError([Problem(file, _constant_line(file), FLOW_CONSTANT,
                                    f"{value!r} is not a number from 0 to 1",
                                    "the share of rows read a run may quarantine, e.g. 0.05; 1 never fails")])
    return Limit(float(value), f"{FLOW_CONSTANT} of {Path(file).name}")


def _constant_line(file: str) -> int | None:
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    for n, line in enumerate(text.splitlines(), 1):
        if re.match(rf"{FLOW_CONSTANT}\s*[:=]", line):
            return n
    return None


def top_rules(rules: dict[str, int], n: int = TOP_RULES) -> list[tuple[str, int]]:
    """The `n` rules with the most rows (ties by name, so the message is stable)."""
    return sorted(rules.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def check(flow: str, read: int, quarantined: int, rules: dict[str, int], limit: Limit,
          sample: Sampler | None) -> None:
    """Raise QuarantineLimitExceeded when `quarantined / read` is above the limit.

    `sample` is asked for rows only when the limit is exceeded (it costs a query); None when
    the rows are no longer at hand (a reused build), and the message says so.
    """
    if read <= 0 or quarantined / read <= limit.share:
        return
    share = quarantined / read
    top = top_rules(rules)
    rows = sample([r for r, _ in top], SAMPLE_PER_RULE) if sample is not None else []
    lines = [f"trusted flow {flow} quarantined {quarantined} of the {read} rows it read ({share:.1%}), "
             f"more than the limit of {limit.share * 100:g}% ({limit.source}); nothing was written, "
             f"its partitions are as they were",
             "  top rules: " + ", ".join(f"{r} {n}" for r, n in top)]
    if rows:
        lines.append("  sample of quarantined rows (file:line [rule] raw record):")
        lines += [f"    {r.render()}" for r in rows]
    elif sample is None:
        lines.append("  (no sample: this result was reused from an identical earlier build)")
    raise QuarantineLimitExceeded(
        "\n".join(lines),
        f"fix the source or the flow's rules and formats (see docs/flows.md); if this share is expected, "
        f"raise {FLOW_CONSTANT} in the flow or {PROJECT_FIELD} in the project",
        flow=flow, read=read, quarantined=quarantined, share=round(share, 6), limit=limit.share,
        rules=dict(top), sample=[asdict(r) for r in rows])


def warnings(read: int, kept: int, rules: dict[str, int]) -> list[str]:
    """What a flow's output line should flag although the run goes on."""
    if read > 0 and kept == 0:
        causes = ", ".join(f"{r} {n}" for r, n in top_rules(rules))
        return [f"kept none of the {read} rows read" + (f" (quarantined: {causes})" if causes else "")]
    return []


def sample_rows(rows: list[Any]) -> list[QuarantinedRow]:
    """Engine rows `(rule, source_file, source_line, raw_record)` as QuarantinedRow."""
    return [QuarantinedRow(str(r[0]), str(r[1]), None if r[2] is None else int(r[2]), r[3]) for r in rows]
