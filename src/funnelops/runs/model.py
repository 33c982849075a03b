"""Workflow runs as data, the same on every backend."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

STATES = ("PENDING", "RUNNING", "DONE", "FAILED", "CANCELLED", "LOST")
TERMINAL = ("DONE", "FAILED", "CANCELLED", "LOST")
TRIGGERS = ("initial-load", "forced", "scheduled", "manual")


@dataclass
class RunRecord:
    id: int | str
    workflow: str
    state: str
    trigger: str
    actor: str
    args: list[str] = field(default_factory=list)
    created_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    rows: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    log_dir: str | None = None
    pid: int | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("pid", None)
        return out


@dataclass(frozen=True)
class Holder:
    """Who holds a workflow's lease: what a refusal tells the user."""

    workflow: str
    run_id: int | str | None
    owner: str
    acquired_at: str
    trigger: str | None = None
    actor: str | None = None

    def describe(self) -> str:
        by = {"scheduled": "the scheduler", "forced": "a forced run", "initial-load": "the initial load"}.get(
            self.trigger or "", self.actor or self.owner)
        when = _local_clock(self.acquired_at)
        run = f"run {self.run_id}" if self.run_id is not None else f"owner {self.owner}"
        actor = f" ({self.actor})" if self.actor and by != self.actor else ""
        return f"{run}, started {when} by {by}{actor}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _local_clock(iso: str) -> str:
    """'2026-11-27T13:37:44+00:00' -> '08:37:44' in this machine's time zone."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%H:%M:%S")
    except (TypeError, ValueError):
        return iso


@runtime_checkable
class Runtime(Protocol):
    """Starting, tracking and leasing workflow runs on a backend."""

    def start(self, workflow: str, *, trigger: str, actor: str, extra_args: list[str] | None = None) -> RunRecord:
        """Take the workflow's lease and start a run; raises RunInProgress if one is in progress."""

    def force_scheduler(self, scheduler_id: str, workflow: str, *, actor: str) -> RunRecord:
        """Fire a scheduler now (local: start a run; gcp: jobs.run, then confirm the operation)."""

    def in_progress(self, workflow: str) -> Holder | None: ...

    def get(self, run_id: int | str) -> RunRecord | None: ...

    def list(self, workflow: str | None = None, limit: int = 50) -> list[RunRecord]: ...

    def active(self) -> list[RunRecord]:
        """Runs not yet ended (PENDING or RUNNING), across workflows."""

    def log_paths(self, run_id: int | str) -> list[Path]:
        """Local files holding the run's step logs (gcp: driver output downloaded to the home dir)."""

    def wait(self, run_ids: list[int | str], poll_s: float = 0.2, on_change=None) -> list[RunRecord]: ...

    def cancel(self, run_id: int | str) -> RunRecord: ...

    def set_paused(self, scheduler_id: str, paused: bool) -> None: ...

    def scheduler_states(self) -> dict[str, dict[str, Any]]: ...
