"""The narrow interfaces a backend implements: everything the core uses of a backend.

The core (plan, lifecycle, runs, cli) talks only to these Protocols; `backends/local` and
`backends/gcp` implement them, and tests/unit/backends/test_contract.py checks that both do,
member by member and signature by signature. Resource configs cross this boundary in one backend-neutral
shape (built by :mod:`funnelops.resources`): a backend translates it to its own API on the way
out and back to the same shape when it observes, so the diff is the same code on every backend.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from collections.abc import Callable, Iterable, Sequence

from funnelops.backends.types import (STATES, TERMINAL, TRIGGERS, ApplyHolder, Holder, LogChunk, LogCursor, LogRead, QueryResult,
                                      RelationStats, RunLease, RunRecord, SchedulerState, StageRecord, default_actor,
                                      now_iso, record_refusal, refuse, refuse_apply)
from funnelops.resources import Resource

if TYPE_CHECKING:
    from funnelops.plan.model import Plan

__all__ = ["KINDS", "Observed", "ResourceHandler", "Storage", "Runtime", "Ledger", "Schedulers", "Backend",
           "ApplyHolder", "Holder", "LogChunk", "LogCursor", "LogRead", "QueryResult", "RelationStats", "RunLease", "RunRecord",
           "SchedulerState", "StageRecord",
           "STATES", "TERMINAL", "TRIGGERS", "default_actor", "now_iso", "record_refusal", "refuse",
           "refuse_apply"]

# The kinds, in the order a plan creates them (deletes go in reverse).
# `artifacts` is backend-owned (see Backend.owned_resources): what the backend uploads to run the
# project (gcp: the zip, launchers, init action, wheelhouse), diffed by content hash.
# `alert_policy` (gcp, backend-owned too): a Cloud Monitoring log-based alert on failed Dataproc jobs,
# made when the project asks for one (`notifications.gcp_alert`); local: not applicable.
KINDS = ("bucket", "artifacts", "dataset", "table", "external_table", "view", "workflow_template", "scheduler",
         "alert_policy")


@dataclass
class Observed:
    """What a backend found for one resource: its config in the neutral shape, plus facts."""

    config: dict[str, Any]
    rows: int | None = None  # tables: rows held (guards data loss); None if unknown/not a table
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ResourceHandler(Protocol):
    """Create, read, update and delete one kind of resource."""

    kind: str

    def observe(self, names: Iterable[str]) -> dict[str, Observed]:
        """Every resource of this kind that exists among `names` (list calls, not one GET each)."""

    def create(self, res: Resource) -> None: ...

    def update(self, res: Resource, observed: Observed, changed: list[str]) -> None:
        """Change an existing resource in place (only `changed` fields differ)."""

    def delete(self, name: str, observed: Observed) -> None: ...


@runtime_checkable
class Storage(Protocol):
    """Objects in buckets: what external tables wait for and what artifacts live in."""

    def has_objects(self, bucket: str, prefix: str, suffix: str = "") -> bool: ...

    def list_objects(self, bucket: str, prefix: str) -> list[str]: ...

    def read_object(self, bucket: str, name: str) -> bytes | None:
        """The object's bytes, or None when there is no such object (`data load` compares)."""

    def put_object(self, bucket: str, name: str, data: bytes) -> None:
        """Write one object whole: a reader sees the old bytes or the new ones, never a part
        (local: temp file + rename; GCS: one upload)."""


@runtime_checkable
class Runtime(Protocol):
    """Starting, tracking and stopping workflow runs on a backend.

    The first group are the primitives `funnelops.runs.coordinator` is written over (refuse ->
    lease -> launch -> record, one `wait` loop, cancel): a backend says how to take a lease and
    start a run, never in which order. The second group answers the CLI's questions.
    """

    poll_backoff: float  # `wait`'s delay grows by this factor per poll (1.0: fixed; remote APIs back off)
    stop_grace_s: float | None  # cancel waits this long after `stop` before `kill` (None: until the run ends)

    # -- the coordinator's primitives --------------------------------------------------------
    def holder(self, workflow: str) -> Holder | None:
        """Who runs `workflow` now (a dead holder does not count), or None."""

    def holders(self, workflows: Iterable[str]) -> list[Holder]:
        """Every live holder among `workflows` (local: every live lease of the home)."""

    def acquire(self, workflow: str, *, trigger: str, actor: str, extra_args: Sequence[str] = ()) -> RunLease:
        """Take the workflow's lease for a new run, or raise RunInProgress naming the holder.

        Also refused (RunInProgress naming the apply) while the project's apply lease is held, checked
        after the run's lease is taken (local: in the same transaction), so that an apply, which
        takes its lease and then looks for runs, and a start, which does the reverse, never both go on.
        A backend that keeps run records beside its leases writes the run's record in the same
        atomic step (local: one SQLite transaction), so a refusal leaves no half-made run.
        """

    def launch(self, lease: RunLease, *, scheduler: str | None = None) -> RunRecord:
        """Start the run `lease` was taken for (fire `scheduler` when given) and record it."""

    def release(self, lease: RunLease, error: BaseException) -> None:
        """`launch` raised `error`: free the lease, unless a run may exist (then it expires on its own)."""

    def get(self, run_id: int | str) -> RunRecord | None:
        """The run's current record (refreshed from the engine), or None if unknown."""

    def stop(self, run: RunRecord) -> bool:
        """Ask a run in progress to stop; False if there is nothing left to ask (then `kill`)."""

    def kill(self, run: RunRecord) -> RunRecord:
        """Stop the run for good, record it CANCELLED and free its lease."""

    # -- questions ----------------------------------------------------------------------------
    def active(self) -> list[RunRecord]:
        """Runs not yet ended (PENDING or RUNNING), across workflows."""

    def read_logs(self, run_id: int | str, cursor: LogCursor | None = None) -> LogRead:
        """The run's log text written since `cursor` (None: from the start), one chunk per source.

        Pass the returned cursor back to get only new bytes (`logs --follow` polls this way until
        the run ends). Local: the step log files; gcp: each Dataproc job's driver output in GCS
        (its `driverOutputResourceUri` objects). An unknown run is a UsageError.
        """

    def set_paused(self, scheduler_id: str, paused: bool) -> None: ...

    def scheduler_states(self) -> dict[str, SchedulerState]:
        """Every scheduler as operated, by id."""

    # Last in the class: a method named `list` would shadow the builtin in the annotations below it.
    def list(self, workflow: str | None = None, limit: int = 50, state: str | None = None) -> list[RunRecord]:
        """Runs, newest first (of `workflow` only, in `state` only (one of STATES), when given).

        `state` filters before `limit` (the dashboard's runs filter: the last 50 FAILED runs among
        10,000, not the FAILED ones among the last 50)."""


@runtime_checkable
class Ledger(Protocol):
    """The lifecycle ledger: completed stages and jobs (since the last reset) and the audit events."""

    def stages(self) -> dict[str, StageRecord]: ...

    def record_stage(self, stage: str, spec_hash: str, actor: str) -> StageRecord: ...

    def reset_stages(self, actor: str) -> None: ...

    def record_event(self, kind: str, subject: str, data: dict[str, Any], *, best_effort: bool = False) -> None:
        """Append an audit event. `best_effort`: the caller would rather lose the event than wait
        long for the ledger (a refusal's audit), so a ledger behind a lock gives up soon."""

    def events(self, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]: ...

    def record_job(self, job: str, spec_hash: str, actor: str) -> None: ...

    def jobs_done(self) -> list[dict[str, Any]]: ...

    def claim_once(self, key: str) -> bool:
        """True for exactly one caller with `key`, ever (local: a row inserted once; gcp: an object
        created with ifGenerationMatch=0). Observers of a run's end claim its notification here."""


@runtime_checkable
class Schedulers(Protocol):
    """What the core does to schedulers besides the plan (the plan goes through the handler)."""

    def mark_fired(self, scheduler_id: str, when: str) -> None:
        """Record a fire (local: the slot the daemon or a force fired; gcp keeps its own record)."""


@runtime_checkable
class Backend(Protocol):
    """One deployment target: resource handlers, storage, runtime, ledger and schedulers.

    A Protocol, not an ABC: the two backends share no code through it, and the core never
    constructs one (the registry in `backends/__init__.py` does), so structural typing is all
    the core needs -- and tests can hand the core a double without inheriting anything. The
    contract test checks every member by name and signature, which `isinstance` does not.
    """

    name: str
    max_parallel: int  # how many resource calls a plan or apply makes at once
    scheduler_daemon: bool  # schedulers fire only while `funnelops scheduler serve` runs (local)

    # Read-only (properties): a backend hands out its own implementations (LocalLedger, ...),
    # which a settable Protocol attribute would refuse (mutable attributes are invariant).
    @property
    def storage(self) -> Storage: ...

    @property
    def runtime(self) -> Runtime: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def schedulers(self) -> Schedulers: ...

    def handler(self, kind: str) -> ResourceHandler: ...

    def offline_requests(self, resources: Sequence[Resource]) -> list[dict[str, Any]]:
        """What apply would send to create each resource, rendered with no credentials and no
        network (`plan --refresh=false`): per resource `address`, `kind`, `name`, `depends_on`,
        `request` ({method, url, body}) and, by kind, `instantiate` (templates) or `http_body`
        (schedulers). The bodies come from the functions apply calls. A backend with no REST
        requests to show (local) raises UsageError."""

    def owned_resources(self, stage: str) -> list[Resource]:
        """Resources the backend itself needs to run the project at `stage`, planned beside the
        spec's (gcp: the artifacts Dataproc runs; local: none, flows run from the project folder)."""

    def table_rows(self, name: str) -> int:
        """Rows `name` ("dataset.table") holds now: exact, for the data-loss guard."""

    def read_query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of one read-only query on the warehouse (local: DuckDB, confined to the home,
        opened read-only; gcp: BigQuery). For summaries and `query`-style reads, never writes."""

    def read_query_table(self, sql: str, *, max_rows: int | None = None, timeout: float | None = None,
                         on_wait: Callable[[str], None] | None = None) -> QueryResult:
        """`read_query` with the column names, for `funnelops query`: at most `max_rows` rows
        (`truncated` says if there were more). `timeout`: seconds to wait for the warehouse
        (local: while a run or an apply holds its write lock; gcp: for the BigQuery job), then a
        BackendError that says who holds it; `on_wait(message)` is called once when waiting
        starts, so the caller can tell the user why nothing happens yet."""

    def relation_stats(self, name: str, kind: str, period_column: str | None = None) -> RelationStats:
        """Rows and last period of one table/external table/view `name` ("dataset.table") of
        `kind`, for `funnelops tables`; `period_column` is the column whose maximum is the last
        period loaded (a table's partitioning field). Local counts exactly; gcp reads numRows
        from the table's metadata and never scans a view to count it."""

    def warehouse_location(self) -> str:
        """Where the warehouse is, for people (local: the DuckDB file; gcp: the BigQuery project)."""

    def data_uri(self, bucket: str, path: str = "") -> str:
        """Where `path` in `bucket` is, for people (local: a folder of the home; gcp: gs://bucket/path)."""

    def apply_session(self) -> AbstractContextManager[None]:
        """Held around applying one plan (local: a short session lock and one warehouse connection). Not
        the apply lease: a force's template update goes through here and must not refuse another force."""

    def apply_lock(self) -> AbstractContextManager[None]:
        """Hold the project's apply lease for one apply; re-entrant within this backend object.

        Never waits: RunInProgress (exit 3) naming the holder when another apply holds it. A dead
        holder does not count (local: a row in the ledger whose process is gone; gcp: a GCS object
        whose heartbeat expired). While it is held, `Runtime.acquire` refuses every new run."""

    def apply_holder(self) -> ApplyHolder | None:
        """Who holds the project's apply lease now (a dead holder does not count), or None."""

    def check_plan(self, plan: Plan) -> None:
        """Refuse, before anything changes, a plan the backend would fail midway."""

    def refresh(self) -> None:
        """Forget cached observations: the next plan observes fresh."""

    def close(self) -> None: ...
