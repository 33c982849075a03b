"""The values that cross the backend contract: runs, lease holders, stages, scheduler states.

They live here, below every backend, so that a backend returns them without importing the core
(`runs`, `lifecycle`, `cli`): the arrows point one way (see docs/architecture.md). `backends.base`
re-exports them with the Protocols; `runs.model` re-exports the run types for the core. Only
`errors` is imported from above.
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, UTC
from typing import Any, Protocol

from funnelops.errors import RunInProgress

STATES = ("PENDING", "RUNNING", "DONE", "FAILED", "CANCELLED", "LOST")
TERMINAL = ("DONE", "FAILED", "CANCELLED", "LOST")
TRIGGERS = ("initial-load", "forced", "scheduled", "manual", "backfill")


def now_iso() -> str:
    """Now, as ISO 8601 with offset (UTC): the one clock every record is stamped with."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def default_actor() -> str:
    """Who is acting: FUNNELOPS_ACTOR (pipelines set it), else user@host."""
    env = os.environ.get("FUNNELOPS_ACTOR")
    if env:
        return env
    try:
        user = getpass.getuser()
    except Exception:
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


@dataclass
class RunRecord:
    """One workflow run, as every backend reports it (local ids are ints, gcp ids operation names)."""

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

    @property
    def period(self) -> str | None:
        """The period the run was asked for: its args' last `--period=` (None: the flows' default)."""
        found = [a.split("=", 1)[1] for a in self.args if a.startswith("--period=")]
        return found[-1] if found else None

    def to_dict(self) -> dict[str, Any]:
        """The `runs --json` item. Built field by field, not with `asdict`: asdict deep-copies the
        decoded steps and rows (hundreds of nodes per run), which made a page of 1,000 runs take
        seconds (bench/ui_page_load.py). The top-level containers are copied; nested step and
        flow dicts are shared with the record, so treat the result as read-only."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "pid"}
        out.update(args=list(self.args), steps=list(self.steps), rows=dict(self.rows), period=self.period)
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
        by = {"scheduled": "the scheduler", "forced": "a forced run", "initial-load": "the initial load",
              "backfill": "a backfill"}.get(
            self.trigger or "", self.actor or self.owner)
        when = _local_clock(self.acquired_at)
        run = f"run {self.run_id}" if self.run_id is not None else f"owner {self.owner}"
        actor = f" ({self.actor})" if self.actor and by != self.actor else ""
        return f"{run}, started {when} by {by}{actor}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _local_clock(iso: str) -> str:
    """'2026-11-27T13:37:44+00:00' -> '08:37:44' in this machine's time zone."""
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%H:%M:%S")
    except (TypeError, ValueError):
        return iso


@dataclass(frozen=True)
class RunLease:
    """A workflow's lease, taken for one run about to start (what `Runtime.acquire` returns).

    The coordinator hands it back to the same runtime's `launch` and `release`; `handle` is the
    backend's own lease object (gcp: the GCS object's generation and body), opaque to the core.
    """

    workflow: str
    owner: str
    trigger: str
    actor: str
    extra_args: tuple[str, ...] = ()
    run_id: int | str | None = None  # known at acquire time when the record is written with the lease
    handle: Any = None


@dataclass(frozen=True)
class StageRecord:
    """A completed lifecycle stage in the ledger."""

    stage: str
    completed_at: str
    spec_hash: str
    actor: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SchedulerState:
    """A scheduler as operated (not as declared): the same fields on every backend.

    `last_fire` is when it last fired (local: the daemon's or a force's slot; gcp: Cloud
    Scheduler's lastAttemptTime); `reported_next` is the backend's own next fire when it keeps
    one (gcp's scheduleTime; None locally, where `status` computes it from the cron).
    """

    id: str
    paused: bool
    last_fire: str | None = None
    reported_next: str | None = None
    state: str = ""
    schedule: str = ""
    time_zone: str = ""
    workflow: str = ""
    last_status: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def refuse(holder: Holder) -> RunInProgress:
    """The refusal of a second run while `holder` runs: the same words on every backend."""
    return RunInProgress(
        f"workflow '{holder.workflow}' is already running: {holder.describe()}",
        f"wait for it to end (`funnelops logs {holder.run_id} --follow`) or cancel it "
        f"(`funnelops cancel {holder.run_id}`); no second run was started",
        holder=holder.to_dict())


@dataclass(frozen=True)
class ApplyHolder:
    """Who holds the project's apply lease: what a refused run or a refused second apply is told.

    `owner` is the lease's token; `host`/`pid` say where the apply runs (gcp: the CI agent's
    machine), `command` what was run, `expires_at` when a holder that stopped renewing is dead.
    """

    owner: str
    actor: str
    command: str
    acquired_at: str
    host: str | None = None
    pid: int | None = None
    expires_at: str | None = None

    def describe(self) -> str:
        where = f", pid {self.pid} on {self.host}" if self.pid is not None and self.host else ""
        return f"`{self.command}` by {self.actor} since {_local_clock(self.acquired_at)}{where}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def invoked_command() -> str:
    """What this process was asked to do, as its operator typed it (an apply lease names it)."""
    import shlex
    import sys

    return shlex.join(["funnelops", *sys.argv[1:]])


def refuse_apply(holder: ApplyHolder, nothing: str = "nothing was changed") -> RunInProgress:
    """The refusal of a run or a second apply while an apply holds the lease: the same words everywhere."""
    return RunInProgress(f"an apply is in progress: {holder.describe()}",
                         f"wait for it to end, then retry (it holds the project's apply lease); {nothing}",
                         apply=holder.to_dict())


class EventSink(Protocol):
    """What `record_refusal` needs of a ledger."""

    def record_event(self, kind: str, subject: str, data: dict[str, Any], *, best_effort: bool = False) -> None: ...


def record_refusal(ledger: EventSink | None, subject: str, exc: Exception, **data: Any) -> None:
    """Audit a refusal (a run in progress, a stage or job order) as a `refused` event.

    Best effort: the refusal itself is what the user must see, so a ledger that cannot be
    written (or none at all) never replaces it with another error, nor delays it for long: the
    writer that blocks the audit may be the very run that refuses us, stopped inside a write.
    """
    if ledger is None:
        return
    body = {"reason": getattr(exc, "kind", type(exc).__name__), "message": getattr(exc, "message", str(exc)),
            "actor": data.pop("actor", None) or default_actor(), **data}
    holder = getattr(exc, "details", {}).get("holder")
    if holder is not None and "holder" not in body:
        body["holder"] = holder
    try:
        ledger.record_event("refused", subject, body, best_effort=True)
    except Exception:
        pass


LogCursor = dict[str, Any]  # where a log reader stopped; opaque to the caller, JSON-able


@dataclass(frozen=True)
class LogChunk:
    """New text of one log source (a step's log file, a Dataproc job's driver output).

    `first` marks the source's first bytes, so a reader prints its header (`==> source <==`) once
    and the same loop prints both backends' logs.
    """

    source: str
    text: str
    first: bool = False


@dataclass
class LogRead:
    """What `Runtime.read_logs` found since the cursor it was given.

    `cursor` is handed back on the next call (only new bytes come then); `console_url` is where a
    person reads the same logs in the cloud console (None on the local backend).
    """

    chunks: list[LogChunk]
    cursor: LogCursor
    console_url: str | None = None


@dataclass(frozen=True)
class QueryResult:
    """One read-only query's answer: column names, rows, and whether rows were left out.

    `truncated` is True when the query had more rows than the caller's `max_rows`: `query` says
    so instead of printing a partial answer as if it were the whole one.
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    truncated: bool = False


@dataclass(frozen=True)
class RelationStats:
    """What `funnelops tables` shows of one table, external table or view.

    `rows`: exact locally; BigQuery's numRows from the table's metadata on gcp (None where the
    backend keeps no count, e.g. a BigQuery view, rather than scanning for one). `last_period`:
    the largest value of the period column asked for, as text (None: no such column or no rows).
    """

    rows: int | None
    last_period: str | None = None
