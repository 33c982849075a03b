"""Replacing hive partitions of a trusted table atomically, under concurrent runs.

The initial load runs the DAY, MONTH and YEAR workflows at the same time, each possibly with
`--execution_type=full`, so several processes may replace the same partitions at once. New
partitions are written to a temporary folder on the same filesystem, then swapped in by rename
while an exclusive lock on the table is held: a partition is always either the old complete set
of files or the new one, never a mix, and never both. Readers (the refined flows) hold the same
lock shared while they read, so they never see a partition half-swapped.
"""

from __future__ import annotations

import shutil
import uuid
from contextlib import ExitStack, contextmanager
from datetime import date
from pathlib import Path
from typing import Callable, Iterable, Iterator

from funnelops.backends.local.warehouse_conn import file_lock


def lock_path(home: Path, bucket: str, table: str) -> Path:
    return Path(home) / "locks" / f"{bucket}--{table.strip('/').replace('/', '--')}.lock"


def partition_value(folder_name: str, key: str) -> date | None:
    prefix = key + "="
    if not folder_name.startswith(prefix):
        return None
    try:
        return date.fromisoformat(folder_name[len(prefix):])
    except ValueError:
        return None


def replace_partitions(table_dir: Path, new_dir: Path, key: str, in_scope: Callable[[date], bool],
                       lock: Path, trash_root: Path) -> tuple[int, int]:
    """Swap every partition of `new_dir` into `table_dir`, and remove the partitions of
    `table_dir` in scope that the new output does not have. Returns (written, removed)."""
    table_dir.mkdir(parents=True, exist_ok=True)
    new = {p.name: p for p in new_dir.iterdir() if p.is_dir()} if new_dir.is_dir() else {}
    for name in new:
        v = partition_value(name, key)
        if v is None or not in_scope(v):
            raise RuntimeError(f"refusing to write partition {name} outside the run's period")
    trash = trash_root / f"trash-{uuid.uuid4().hex}"
    trash.mkdir(parents=True, exist_ok=True)
    written = removed = 0
    try:
        with file_lock(lock, exclusive=True):
            old = {p.name: p for p in table_dir.iterdir()
                   if p.is_dir() and (v := partition_value(p.name, key)) is not None and in_scope(v)}
            for name in sorted(set(old) | set(new)):
                final = table_dir / name
                if final.exists():
                    final.rename(trash / name)
                    removed += name not in new
                if name in new:
                    new[name].rename(final)
                    written += 1
    finally:
        shutil.rmtree(trash, ignore_errors=True)
    return written, removed


@contextmanager
def shared_locks(paths: Iterable[Path]) -> Iterator[None]:
    """Hold shared locks on several tables (in a fixed order, so lockers never deadlock)."""
    with ExitStack() as stack:
        for p in sorted(set(paths)):
            stack.enter_context(file_lock(p, exclusive=False))
        yield
