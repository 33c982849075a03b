"""The local home's layout, spelled once.

    buckets/<bucket>/...     a bucket is a folder (settings in .bucket.json)
    warehouse.duckdb         a dataset is a schema; tables, external tables and views
    ledger.sqlite            lifecycle stages, templates, schedulers, runs, leases, events
    runs/<id>/<step>.log     per-step logs of workflow runs
    tmp/                     scratch files of the flows (project SQL may write there)
    locks/                   the apply lock and the per-table file locks

Every module of the local backend asks a `LocalHome` for these paths instead of joining the
names itself, so the layout cannot drift between the CLI, the supervisor and the flows' guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LocalHome:
    root: Path

    def __init__(self, root: Path | str) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def buckets(self) -> Path:
        return self.root / "buckets"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.sqlite"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    def run_logs(self, run_id: int | str) -> Path:
        """The folder of one run's step logs (and its supervisor's log)."""
        return self.runs / str(run_id)

    def bucket(self, name: str) -> Path:
        return self.buckets / name
