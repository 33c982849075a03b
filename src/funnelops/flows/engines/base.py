"""The narrow interfaces between the layer runners and the engines, and what a backend injects.

The runners (:mod:`funnelops.flows.trusted_runner`, :mod:`funnelops.flows.refined_runner`)
hold the step sequence of a layer, written once; an engine only does I/O and computation in its
own terms (DuckDB tables and local folders, Spark DataFrames and Hadoop URIs, BigQuery jobs).
Nothing here knows a backend: :class:`FlowsRuntime` is built by a backend's factory
(``backends/<name>/flows_runtime.py``) and handed to the flows program, which is how the
engines get their clients, paths, connections and the overlap guard.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol
from collections.abc import Callable, Iterable

if TYPE_CHECKING:
    from funnelops.flows.args import Period
    from funnelops.flows.context import FlowResult, RunContext
    from funnelops.flows.layout import Layout
    from funnelops.flows.refined_runner import RefinedJob

Verify = Callable[[], None]
"""A commit-point check: raises (RunInProgress) when this run may no longer publish."""

SourceFile = tuple[date, Any]
"""(extract date, where the file is: a Path locally, a path relative to the raw root on Spark)."""


def no_check() -> None:
    """The commit-point check of a run outside any workflow: nothing to verify."""


class OverlapGuard(Protocol):
    """Keeps two runs of one workflow from overlapping inside the flows program.

    `hold()` wraps the whole run (take the workflow's lease, or check that the run that started
    this step still holds it); `verify()` is called at every commit point, right before data is
    published, so a run that lost its lease writes nothing more.
    """

    def hold(self) -> AbstractContextManager[None]: ...

    def verify(self) -> None: ...


class RunSkipped(Exception):
    """Raised by `OverlapGuard.hold` when this run must not run, and that is no failure: a
    scheduled fire that found another run of its workflow in progress. The flows program prints
    the message (``skipped: run ... in progress ...``) and exits 0 without touching data."""


class PassThroughGuard:
    """A guard that guards nothing (a backend without a lease the flows program can reach)."""

    def hold(self) -> AbstractContextManager[None]:
        return nullcontext()

    def verify(self) -> None:
        return None


@dataclass(frozen=True)
class Replacement:
    """Which partitions of one trusted table a run replaces: those of `key` in scope."""

    table: str                          # path under the trusted bucket: "leads", "_quarantine/leads"
    key: str                            # the partition column (a DATE)
    in_scope: Callable[[date], bool]    # partitions the run owns (removed when its output lacks them)


@dataclass(frozen=True)
class RuleCounts:
    """Rows kept, and rows quarantined per rule (flow rules, the period rule, staging rejects)."""

    kept: int
    rules: dict[str, int]
    out_of_period: int = 0    # snapshot rows the period filter left out (neither read nor quarantined)

    @property
    def quarantined(self) -> int:
        return sum(self.rules.values())

    @property
    def read(self) -> int:
        return self.kept + self.quarantined


class BuildClaim(Protocol):
    """The right to build one trusted flow, held until exited (see TrustedEngine.claim)."""

    def __enter__(self) -> BuildClaim: ...

    def __exit__(self, *exc: object) -> None: ...

    def reused(self) -> FlowResult | None:
        """The result of an identical earlier build still in place (skip the build), or None."""

    def save(self, result: FlowResult) -> None:
        """Remember a finished build, so an identical later one may reuse it."""


class NoReuse:
    """A claim that is always granted and never reuses: engines without build manifests."""

    def __enter__(self) -> NoReuse:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def reused(self) -> FlowResult | None:
        return None

    def save(self, result: FlowResult) -> None:
        return None


class TrustedEngine(Protocol):
    """Raw -> trusted I/O of one engine. `staged` and `checked` are the engine's own handles."""

    raw_location: str    # how messages name the raw bucket
    missing_hint: str    # what to do when a period has no source file

    def source_files(self, source: Layout | str, period: Period | None) -> list[SourceFile]:
        """The period's files of the source layout (every file when `period` is None), by date."""

    def claim(self, flow: str, module: ModuleType, files: list[SourceFile], period: Period | None, *,
              wait: bool) -> BuildClaim | None:
        """Take the flow's build slot; None (with `wait=False`) when another run is building it."""

    def stage(self, flow: str, files: list[SourceFile], columns: tuple[str, ...], allow_empty: bool, *,
              source: Layout | None = None, period: Period | None = None) -> Any:
        """Read the files (source checks included) into the engine with the source's CSV dialect,
        a snapshot filtered to `period` by its DATE_COLUMN; returns the staged handle."""

    def frame(self, staged: Any) -> Any:
        """The staged rows as the DataFrame the flow's `transform` receives."""

    def materialize(self, flow: str, checked: Any) -> Any:
        """Compute the checked DataFrame once; returns the checked handle."""

    def columns(self, checked: Any) -> set[str]:
        """The column names of the checked rows."""

    def count_rules(self, flow: str, staged: Any, checked: Any) -> RuleCounts:
        """Count kept rows and quarantined rows per rule; fails if a record went missing."""

    def quarantine_sample(self, flow: str, staged: Any, checked: Any, rules: list[str],
                          per_rule: int) -> list[tuple[str, str, int | None, str | None]]:
        """Up to `per_rule` quarantined rows of each of `rules`, first lines first, as
        `(rule, source_file, source_line, raw_record)`; writes nothing (a failing run's message)."""

    def replace_partitions(self, flow: str, staged: Any, checked: Any, output: tuple[str, ...],
                           data: Replacement, quarantine: Replacement, *, period_rule: bool,
                           before_commit: Verify) -> None:
        """Write the kept rows (columns `output`) over `data` and the quarantined ones, with
        their rule, source file, line and raw record, over `quarantine`; `before_commit` runs
        at each commit point."""

    def release(self, flow: str, staged: Any, checked: Any | None) -> None:
        """Free what staging and materializing held (tables, caches, scratch folders)."""


class RefinedEngine(Protocol):
    """Trusted -> refined: run one refined job as one atomic replacement of its target."""

    def run(self, job: RefinedJob, before_commit: Verify) -> int:
        """Replace the job's predicate in its table by the query's rows; returns the rows inserted."""


class FolderStore(Protocol):
    """Buckets as folders on the machine the flows run on (the local backend's home).

    What the DuckDB engines need and must not spell themselves: where a bucket's folder is,
    scratch space on the same filesystem (finished output moves in by rename), table locks,
    the atomic partition swap, and confined DuckDB connections.
    """

    @property
    def scratch(self) -> Path:
        """Scratch space on the buckets' filesystem (read-only: the store decides where)."""

    def bucket_dir(self, bucket: str) -> Path: ...

    def lock(self, bucket: str, table: str, *, exclusive: bool, wait: bool = True) -> AbstractContextManager[None]:
        """A lock on one table; entering it with `wait=False` raises BackendError when busy."""

    def reading(self, tables: Iterable[tuple[str, str]]) -> AbstractContextManager[None]:
        """Shared locks on (bucket, table) pairs while a query reads them."""

    def replace_partitions(self, bucket: str, table: str, new_dir: Path, key: str,
                           in_scope: Callable[[date], bool], *, before_commit: Verify) -> None:
        """Swap the partitions of `new_dir` into the table atomically (see the local backend)."""

    def memory(self, time_zone: str) -> Any:
        """A private in-memory DuckDB that may read the buckets and write scratch space only."""

    def warehouse(self, time_zone: str) -> AbstractContextManager[Any]:
        """A write connection to the warehouse, held under its lock."""

    def recover(self) -> list[str]:
        """Settle the partition swaps a killed run left behind; returns what was put back."""


@dataclass
class FlowsRuntime:
    """What a backend gives the flows program: the engines of both layers, opened per run,
    the overlap guard, and the clean-up a run does before it reads or writes anything."""

    trusted: Callable[[RunContext], AbstractContextManager[TrustedEngine]]
    refined: Callable[[RunContext], AbstractContextManager[RefinedEngine]]
    guard: OverlapGuard = field(default_factory=PassThroughGuard)
    label: str = ""                                     # shown in the run's first line ("" locally)
    recover: Callable[[], list[str]] = field(default=list)
