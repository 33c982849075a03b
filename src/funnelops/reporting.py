"""One reporting interface for the core: typed events out, one `emit` in.

The core (lifecycle/, plan/, runs/, scheduler/) used to report through four callback shapes, one
per module. It now takes a single `reporter: Reporter` and emits plain, frozen dataclass events;
what to do with them is the caller's business. The model is sqlmesh's console
(`sqlmesh/core/console.py`): each long operation is reported as started -> updated -> finished, and
there is a terminal implementation and a no-op one. Unlike sqlmesh's console, the operations are
data rather than methods, so the same stream can be printed (`cli/reporter.py`), recorded
(`RecordingReporter`, for tests), or fanned out to several subscribers (`FanOutReporter`: a web
dashboard or a notifier can subscribe later without the core changing).

Events carry plain values (addresses, ids, states, counts), never the core's objects, so this
module imports nothing from funnelops and every layer may depend on it. A layer may define its
own events by subclassing `Event` (the scheduler daemon's `SchedulerEvent` does).

Reporters may be called from worker threads (apply runs changes in parallel): implementations
must be thread-safe, and must not raise (a broken printer must not fail an apply).
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any, Protocol, runtime_checkable
from collections.abc import Mapping


@dataclass(frozen=True)
class Event:
    """Base of every event. `name` is its snake-case type ('resource_finished') for serializers."""

    @property
    def name(self) -> str:
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.name}
        if is_dataclass(self):
            out.update(asdict(self))
        return out


# -- apply: started -> resource started/finished (per change, possibly in parallel) -> finished ------

@dataclass(frozen=True)
class ApplyStarted(Event):
    stage: str
    changes: int
    workers: int


@dataclass(frozen=True)
class ResourceStarted(Event):
    address: str
    kind: str
    action: str


@dataclass(frozen=True)
class ResourceFinished(Event):
    """A change ended: `error` is None when it succeeded (then `seconds` is how long it took)."""

    address: str
    kind: str
    action: str
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ApplyFinished(Event):
    done: int
    failed: int
    skipped: int
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped


# -- runs: started -> waiting -> changed (each state change) -> finished ------------------------------

@dataclass(frozen=True)
class RunStarted(Event):
    run_id: int | str
    workflow: str
    trigger: str


@dataclass(frozen=True)
class RunsWaiting(Event):
    """The caller now waits for these runs to end (RunChanged follows for each state change)."""

    run_ids: tuple[int | str, ...]


class _RunLike(Protocol):
    """What RunChanged reads from a run record (runs.model.RunRecord), without importing it."""

    @property
    def id(self) -> int | str: ...
    @property
    def workflow(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def terminal(self) -> bool: ...
    @property
    def rows(self) -> Mapping[str, Any]: ...
    @property
    def error(self) -> str | None: ...


@dataclass(frozen=True)
class RunChanged(Event):
    """A run reached a new state; when `terminal`, `rows` holds its counts (read, kept, quarantined)."""

    run_id: int | str
    workflow: str
    state: str
    terminal: bool
    rows: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def of(cls, run: _RunLike) -> RunChanged:
        return cls(run.id, run.workflow, run.state, run.terminal, dict(run.rows or {}), run.error)


@dataclass(frozen=True)
class RunsFinished(Event):
    """Every awaited run ended; `failed` names those that did not end DONE."""

    run_ids: tuple[int | str, ...]
    failed: tuple[int | str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class StepChanged(Event):
    """A step of an awaited run changed state or reported more flows (as the flows report them):
    `rows` sums what its flows reported so far (read, kept, quarantined), `flows` names them."""

    run_id: int | str
    workflow: str
    step: str
    state: str
    rows: Mapping[str, int] = field(default_factory=dict)
    flows: tuple[str, ...] = ()

    @classmethod
    def of(cls, run: _RunLike, step: Mapping[str, Any]) -> StepChanged:
        reported = [f for f in ((step.get("metrics") or {}).get("flows") or []) if isinstance(f, Mapping)]
        rows = {k: sum(int(f.get(k, 0) or 0) for f in reported) for k in ("read", "kept", "quarantined")}
        return cls(run.id, run.workflow, str(step.get("step_id", "?")), str(step.get("state", "?")),
                   rows if reported else {}, tuple(str(f.get("flow", "?")) for f in reported))


# -- long work: progress as it goes (generate, and anything else that counts) ---------------------------

@dataclass(frozen=True)
class Progress(Event):
    """Long work advanced: `done` of `total` (None: not known) `unit`s of `task` ('generate').

    Emitted as often as the work likes; terminals draw a bar, logs print milestones. The work is
    over when `done >= total` (or when the command returns)."""

    task: str
    done: int
    total: int | None
    unit: str
    detail: str = ""

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done >= self.total


# -- the seed's jobs ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TemplatesInitialized(Event):
    """`count` workflow templates were set to the workflow stage's arguments."""

    count: int


@dataclass(frozen=True)
class SchedulerForced(Event):
    """A forced fire started run `run_id`; `period` says which period it processes ('current:
    2026-11-29'), empty when not known."""

    scheduler_id: str
    scheduler_name: str
    workflow: str
    run_id: int | str
    state: str
    period: str = ""


@dataclass(frozen=True)
class Refused(Event):
    """An operation was refused and audited (a run in progress, a stage out of order); the error
    that follows carries the same message, so terminals print nothing for this event."""

    subject: str
    reason: str
    message: str


@dataclass(frozen=True)
class Notice(Event):
    """A sentence for the person running the command ('nothing to run', 'stage stays as it was')."""

    text: str
    level: str = "info"  # "info" | "warning"


# -- pipelines: started -> job started/finished (in order, stops at the first failure) -> finished ----

@dataclass(frozen=True)
class PipelineStarted(Event):
    pipeline: str
    parameters: Mapping[str, str]
    jobs: tuple[str, ...]


@dataclass(frozen=True)
class JobStarted(Event):
    pipeline: str
    job: str


@dataclass(frozen=True)
class JobFinished(Event):
    pipeline: str
    job: str
    ok: bool
    seconds: float
    error: str | None = None


@dataclass(frozen=True)
class PipelineFinished(Event):
    pipeline: str
    ok: bool
    seconds: float


# -- reporters --------------------------------------------------------------------------------------------

@runtime_checkable
class Reporter(Protocol):
    """What the core reports to. `emit` must be thread-safe and must not raise."""

    def emit(self, event: Event) -> None: ...


class QuietReporter:
    """Reports nothing: the default for library use and tests."""

    def emit(self, event: Event) -> None:
        pass


QUIET: Reporter = QuietReporter()


class RecordingReporter:
    """Keeps every event, in order, as data (for tests, and for a caller that renders afterwards)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, *types: type[Event]) -> list[Event]:
        """The recorded events of these types, in order."""
        with self._lock:
            return [e for e in self.events if isinstance(e, types)]

    def names(self) -> list[str]:
        with self._lock:
            return [e.name for e in self.events]


class FanOutReporter:
    """Forwards each event to every subscriber, in subscription order; a subscriber that raises
    is skipped for that event (reporting never fails the operation it reports)."""

    def __init__(self, *subscribers: Reporter) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Reporter] = list(subscribers)

    def subscribe(self, reporter: Reporter) -> None:
        with self._lock:
            self._subscribers.append(reporter)

    def unsubscribe(self, reporter: Reporter) -> None:
        with self._lock:
            self._subscribers = [s for s in self._subscribers if s is not reporter]

    def emit(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for s in subscribers:
            try:
                s.emit(event)
            except Exception:
                import logging

                logging.getLogger(__name__).exception("reporter %r failed on %s", s, event.name)
