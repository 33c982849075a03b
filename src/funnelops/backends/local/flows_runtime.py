"""The local backend's flows runtime: DuckDB engines over the home's folders, the SQLite lease.

The flows program (:mod:`funnelops.flows.cli`) gets this through
:func:`funnelops.backends.flows_runtime`; here is the only place that knows where a local home
keeps the flows' data: bucket folders, scratch space on the same filesystem, table locks, the
warehouse file.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import date
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable

from funnelops.backends.local.home import LocalHome
from funnelops.backends.local import partitions
from funnelops.backends.local.guard import verify_lease_held, workflow_lease
from funnelops.backends.local.home_perms import private_home
from funnelops.backends.local.warehouse_conn import DEFAULT_TIMEOUT_S, confined_memory, file_lock, home_dirs, warehouse
from funnelops.flows.engines.base import FlowsRuntime, Verify
from funnelops.flows.engines.duckdb_refined import DuckRefined
from funnelops.flows.engines.duckdb_trusted import DuckTrusted


class LocalFolders:
    """:class:`funnelops.flows.engines.base.FolderStore` of a local home."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)

    @property
    def scratch(self) -> Path:
        """Scratch space on the same filesystem as the buckets, so finished output moves by rename."""
        p = LocalHome(self.home).tmp
        p.mkdir(parents=True, exist_ok=True)
        return p

    def bucket_dir(self, bucket: str) -> Path:
        return LocalHome(self.home).bucket(bucket)

    def lock(self, bucket: str, table: str, *, exclusive: bool, wait: bool = True) -> AbstractContextManager[None]:
        return file_lock(partitions.lock_path(self.home, bucket, table), exclusive=exclusive,
                         timeout=DEFAULT_TIMEOUT_S if wait else 0)

    def reading(self, tables: Iterable[tuple[str, str]]) -> AbstractContextManager[None]:
        return partitions.shared_locks([partitions.lock_path(self.home, b, t) for b, t in tables])

    def replace_partitions(self, bucket: str, table: str, new_dir: Path, key: str,
                           in_scope: Callable[[date], bool], *, before_commit: Verify) -> None:
        partitions.replace_partitions(self.bucket_dir(bucket) / table, new_dir, key, in_scope,
                                      partitions.lock_path(self.home, bucket, table), self.scratch,
                                      before_commit=before_commit)

    def memory(self, time_zone: str) -> Any:
        return confined_memory(home_dirs(self.home), time_zone)

    def warehouse(self, time_zone: str) -> AbstractContextManager[Any]:
        return warehouse(LocalHome(self.home).warehouse, write=True, time_zone=time_zone)

    def recover(self) -> list[str]:
        return partitions.recover_swaps(self.scratch)


class LocalGuard:
    """The workflow's SQLite lease (see :mod:`funnelops.backends.local.guard`): taken by a run
    started by hand, verified for a step of a supervised run, re-checked at every commit point."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)

    def hold(self) -> AbstractContextManager[None]:
        return workflow_lease(self.home)

    def verify(self) -> None:
        verify_lease_held(self.home)


def local_flows_runtime(home: Path, loaded: Any = None) -> FlowsRuntime:
    """The flows runtime of the local home `home` (made private: 0700 folders, 0600 files)."""
    private_home(home)  # a run started by hand writes private files too
    store = LocalFolders(home)
    return FlowsRuntime(trusted=lambda ctx: DuckTrusted.open(ctx, store),
                        refined=lambda ctx: DuckRefined.open(ctx, store),
                        guard=LocalGuard(home), label="", recover=store.recover)
