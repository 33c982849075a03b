"""One exception tree for funnelops.

Every error knows the exit code the CLI returns for it and a hint that tells the user what to
do next. The CLI prints ``message`` and ``hint`` (no traceback unless ``--debug``); ``--json``
prints :meth:`FunnelopsError.to_dict`.

Exit codes (a contract with pipelines and scripts):
    0 ok, 1 failure, 2 bad usage or invalid project,
    3 refused because a run of that workflow or an apply is in progress,
    4 refused because an earlier lifecycle stage must run first.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Iterable

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_RUN_IN_PROGRESS = 3
EXIT_STAGE_ORDER = 4
EXIT_INTERRUPTED = 130


class FunnelopsError(Exception):
    """Base of every error funnelops raises on purpose."""

    exit_code: int = EXIT_FAILURE
    kind: str = "error"

    def __init__(self, message: str, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.kind, "message": self.message, "exit_code": self.exit_code}
        if self.hint:
            out["hint"] = self.hint
        if self.details:
            out["details"] = self.details
        return out


class UsageError(FunnelopsError):
    """The command line itself is wrong (unknown stage name, missing option...)."""

    exit_code = EXIT_USAGE
    kind = "usage"


@dataclass(frozen=True)
class Problem:
    """One located problem in a project definition."""

    file: str
    line: int | None
    field: str
    message: str
    hint: str | None = None

    def render(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.field}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field,
                "message": self.message, "hint": self.hint}


class ProjectError(FunnelopsError):
    """The project definition is invalid; carries every problem found, not just the first."""

    exit_code = EXIT_USAGE
    kind = "invalid_project"

    def __init__(self, problems: Iterable[Problem], hint: str | None = None) -> None:
        self.problems: list[Problem] = list(problems)
        n = len(self.problems)
        lines = "\n".join("  " + p.render() for p in self.problems)
        super().__init__(
            f"the project definition has {n} problem{'s' if n != 1 else ''}:\n{lines}",
            hint or "fix the fields named above, then run `funnelops validate`",
        )

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["problems"] = [p.to_dict() for p in self.problems]
        return out


class BackendError(FunnelopsError):
    """A backend operation failed (a file, the warehouse, a cloud API)."""

    kind = "backend"


class DataLossRefused(FunnelopsError):
    """An apply would drop or replace a table that holds rows."""

    kind = "data_loss_refused"


class RunInProgress(FunnelopsError):
    """A run of the workflow, or an apply, is already in progress: a refusal, not a crash."""

    exit_code = EXIT_RUN_IN_PROGRESS
    kind = "run_in_progress"


class StageOrderError(FunnelopsError):
    """An earlier lifecycle stage must complete first."""

    exit_code = EXIT_STAGE_ORDER
    kind = "stage_order"


class RunFailed(FunnelopsError):
    """One or more workflow runs ended in a state other than DONE."""

    kind = "run_failed"


class CorruptState(FunnelopsError):
    """A state file of the home (ledger, warehouse) is damaged, missing beside other state, or not ours.

    Never repaired silently: the message names the file, the hint lists the recovery steps and
    what each one loses.
    """

    kind = "corrupt_state"


class ReadOnlyHome(FunnelopsError):
    """A command that changes state was run against a home the user cannot write."""

    kind = "read_only_home"


class MissingExtra(FunnelopsError):
    """An optional dependency (the `gcp` or `spark` extra) is not installed."""

    exit_code = EXIT_USAGE
    kind = "missing_extra"


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """Return a 'did you mean ...?' hint for the closest known name, if any is close."""
    options = list(candidates)
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if options and len(options) <= 8:
        return "known: " + ", ".join(sorted(options))
    return None


@dataclass
class ProblemCollector:
    """Collects problems so validation reports all of them at once."""

    problems: list[Problem] = field(default_factory=list)

    def add(self, file: str, line: int | None, field_: str, message: str, hint: str | None = None) -> None:
        self.problems.append(Problem(file, line, field_, message, hint))

    def raise_if_any(self) -> None:
        if self.problems:
            raise ProjectError(sorted(self.problems, key=lambda p: (p.file, p.line or 0, p.field)))


class Interrupted(FunnelopsError):
    """Ctrl-C while the CLI waited for runs: the runs go on (their supervisors are not the CLI's
    children), so the message names each one and how to follow or stop it."""

    exit_code = EXIT_INTERRUPTED
    kind = "interrupted"
