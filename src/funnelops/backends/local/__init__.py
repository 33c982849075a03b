"""The embedded local backend: folders for buckets, DuckDB for the warehouse, SQLite ledger.

The layout under the home dir is `LocalHome`'s (backends/local/home.py).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Iterator, Sequence

from funnelops.backends.local.alerts import NoAlertPolicy
from funnelops.backends.local.apply_lease import ApplyLease, pause_for_tests
from funnelops.backends.local.apply_lock import apply_lock as session_lock
from funnelops.backends.local.home import LocalHome
from funnelops.backends.local.home_perms import private_home
from funnelops.backends.local.storage import BucketHandler, LocalStorage
from funnelops.backends.local.warehouse import (DatasetHandler, ExternalTableHandler, LocalWarehouse, TableHandler,
                                                ViewHandler)
from funnelops.backends.local.workflows import SchedulerHandler, SchedulerStore, TemplateHandler, TemplateStore
from funnelops.backends.local.runtime import LocalRuntime
from funnelops.backends.local.ledger_db import LedgerDB
from funnelops.backends.local.ledger import LocalLedger
from funnelops.backends.local.storage import NoArtifacts
from funnelops.resources import Resource

if TYPE_CHECKING:
    from funnelops.backends.types import ApplyHolder, QueryResult, RelationStats
    from funnelops.plan.model import Plan
    from funnelops.resources import Resource


class LocalBackend:
    """Implements `backends.base.Backend` over one home folder."""

    name = "local"
    max_parallel = 4
    scheduler_daemon = True  # schedulers fire while `funnelops scheduler serve` runs

    def __init__(self, home: Path, project_id: str, region: str, time_zone: str | None = None,
                 service_account: str | None = None, project_path: Path | None = None, *,
                 reinit: bool = False) -> None:
        self.home = private_home(Path(home))  # 0700 home, 0600 files (home_perms.py)
        self.paths = LocalHome(self.home)
        self.time_zone = time_zone
        self.storage = LocalStorage(self.paths.buckets)
        self.warehouse = LocalWarehouse(self.paths.warehouse, self.paths.buckets, time_zone)
        self.db = LedgerDB(self.paths.ledger, reinit=reinit)
        self.ledger = LocalLedger(self.home, self.db)
        self._apply_depth = 0
        self._session_depth = 0
        self._apply_lease = ApplyLease(self.db, self.home)
        self.templates = TemplateStore(self.db, project_id, region)
        self.schedulers = SchedulerStore(self.db, project_id, region, service_account)
        self.runtime = LocalRuntime(self.home, self.db, self.templates, self.schedulers, project_path)
        self._handlers: dict[str, Any] = {
            "bucket": BucketHandler(self.storage),
            "dataset": DatasetHandler(self.warehouse),
            "table": TableHandler(self.warehouse),
            "external_table": ExternalTableHandler(self.warehouse),
            "view": ViewHandler(self.warehouse),
            "artifacts": NoArtifacts(),
            "workflow_template": TemplateHandler(self.templates),
            "scheduler": SchedulerHandler(self.schedulers),
            "alert_policy": NoAlertPolicy(),
        }

    @classmethod
    def for_project(cls, loaded: Any, home: Path, *, reinit: bool = False) -> LocalBackend:
        p = loaded.spec.project
        backend = cls(home, p.id, p.region, p.time_zone, p.service_account, loaded.path, reinit=reinit)
        backend.runtime.project_env = getattr(loaded, "env", None)
        return backend

    def handler(self, kind: str) -> Any:
        return self._handlers[kind]

    def offline_requests(self, resources: Sequence[Resource]) -> list[dict[str, Any]]:
        """No REST requests here: the local backend writes folders, DuckDB and SQLite."""
        from funnelops.errors import UsageError

        raise UsageError("plan --refresh=false shows the REST requests the gcp backend would send; the local "
                         "backend sends none", "run `funnelops --backend gcp plan --refresh=false --json`")

    def owned_resources(self, stage: str) -> list[Resource]:
        """None: local runs read the project folder itself, nothing is uploaded."""
        return []

    def table_rows(self, name: str) -> int:
        return self._handlers["table"].rows(name)

    def read_query(self, sql: str) -> list[tuple[Any, ...]]:
        from funnelops.backends.local.warehouse_conn import warehouse
        from funnelops.spec.sqlrefs import to_duckdb

        with warehouse(self.paths.warehouse, write=False, time_zone=self.time_zone) as con:
            return [tuple(r) for r in con.execute(to_duckdb(sql)).fetchall()]

    def read_query_table(self, sql: str, *, max_rows: int | None = None, timeout: float | None = None,
                         on_wait: Callable[[str], None] | None = None) -> QueryResult:
        """One read-only query on a read-only connection, waiting for a writer up to `timeout`."""
        from funnelops.backends.local.query import read_table

        return read_table(self, sql, max_rows=max_rows, timeout=timeout, on_wait=on_wait)

    def relation_stats(self, name: str, kind: str, period_column: str | None = None) -> RelationStats:
        """Exact rows (a count, whatever the kind) and the period column's maximum."""
        from funnelops.backends.local.query import relation_stats

        return relation_stats(self, name, kind, period_column)

    def warehouse_location(self) -> str:
        return str(self.paths.warehouse)

    def data_uri(self, bucket: str, path: str = "") -> str:
        folder = self.paths.buckets / bucket
        return str(folder / path) + ("/" if path.endswith("/") else "") if path else str(folder) + "/"

    @contextmanager
    def apply_lock(self) -> Iterator[None]:
        """The home's apply lease (apply_lease.py), re-entrant within this backend object.

        Taken around plan and apply by create-infra, `apply FILE` and destroy; taking it checks
        (and, in a new home, creates) the ledger before anything
        changes, so a damaged ledger stops the apply up front.
        """
        if self._apply_depth == 0:
            self._apply_lease.acquire()
            try:
                pause_for_tests()
            except BaseException:
                self._apply_lease.release()
                raise
        self._apply_depth += 1
        try:
            yield
        finally:
            self._apply_depth -= 1
            if self._apply_depth == 0:
                self._apply_lease.release()

    def apply_holder(self) -> ApplyHolder | None:
        """The live holder of the home's apply lease (this process's own included), or None."""
        return self._apply_lease.holder()

    @contextmanager
    def apply_session(self) -> Iterator[None]:
        """One warehouse write connection for a whole apply, under the home's session lock
        (apply_lock.py: a force's template update waits for another's, it is not refused)."""
        if self._session_depth == 0:
            cm = session_lock(self.home)
            cm.__enter__()
            try:  # check (and, in a new home, create) the ledger before anything changes
                with self.db.read():
                    pass
            except BaseException:
                cm.__exit__(None, None, None)
                raise
        self._session_depth += 1
        try:
            with self.warehouse.session():
                yield
        finally:
            self._session_depth -= 1
            if self._session_depth == 0:
                cm.__exit__(None, None, None)

    def check_plan(self, plan: Plan) -> None:
        """Refuse, before anything changes, a plan the warehouse would fail midway (see preflight)."""
        from funnelops.backends.local.preflight import check_plan

        check_plan(self.warehouse, plan)

    def refresh(self) -> None:
        self.warehouse.invalidate()

    def close(self) -> None:
        pass
