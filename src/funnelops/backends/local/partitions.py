"""Replacing hive partitions of a trusted table atomically, under concurrent runs.

The initial load runs the DAY, MONTH and YEAR workflows at the same time, each possibly with
`--execution_type=full`, so several processes may replace the same partitions at once. New
partitions are written to a temporary folder on the same filesystem, then swapped in by rename
while an exclusive lock on the table is held: a partition is always either the old complete set
of files or the new one, never a mix, and never both. Readers (the refined flows) hold the same
lock shared while they read, so they never see a partition half-swapped.

Each partition is swapped with one `renameat2(RENAME_EXCHANGE)` (see :mod:`.atomic`), so even a
kill -9 mid-swap leaves it whole, old or new. Where the exchange is not supported it takes two
renames; a journal (`<home>/tmp/swap-*.json`) written before the first rename lets the next
run's start (:func:`recover_swaps`) put back an old partition stranded in the trash.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from contextlib import ExitStack, contextmanager
from datetime import date
from pathlib import Path
from collections.abc import Callable, Iterable, Iterator

from funnelops.backends.local.home import LocalHome
from funnelops.backends.local.warehouse_conn import file_lock
from funnelops.errors import BackendError
from funnelops.flows.atomic import exchange, fault_point

JOURNAL_PREFIX = "swap-"


def lock_path(home: Path, bucket: str, table: str) -> Path:
    return LocalHome(home).locks / f"{bucket}--{table.strip('/').replace('/', '--')}.lock"


def partition_value(folder_name: str, key: str) -> date | None:
    prefix = key + "="
    if not folder_name.startswith(prefix):
        return None
    try:
        return date.fromisoformat(folder_name[len(prefix):])
    except ValueError:
        return None


def replace_partitions(table_dir: Path, new_dir: Path, key: str, in_scope: Callable[[date], bool],
                       lock: Path, trash_root: Path, *,
                       before_commit: Callable[[], None] | None = None) -> tuple[int, int]:
    """Swap every partition of `new_dir` into `table_dir`, and remove the partitions of
    `table_dir` in scope that the new output does not have. Returns (written, removed).

    `before_commit` runs under the exclusive table lock right before the first rename (a last
    check that this run may still write, e.g. that it still holds its lease); raising there
    leaves the table untouched. A journal in `trash_root` records the swap until it is
    committed, so a swap cut short by kill -9 is settled by :func:`recover_swaps`.
    """
    table_dir.mkdir(parents=True, exist_ok=True)
    new = {p.name: p for p in new_dir.iterdir() if p.is_dir()} if new_dir.is_dir() else {}
    for name in new:
        v = partition_value(name, key)
        if v is None or not in_scope(v):
            raise RuntimeError(f"refusing to write partition {name} outside the run's period")
    token = uuid.uuid4().hex
    trash = trash_root / f"trash-{token}"
    journal = trash_root / f"{JOURNAL_PREFIX}{token}.json"
    written = removed = 0
    with file_lock(lock, exclusive=True):
        old = {p.name: p for p in table_dir.iterdir()
               if p.is_dir() and (v := partition_value(p.name, key)) is not None and in_scope(v)}
        names = sorted(set(old) | set(new))
        if before_commit is not None:
            before_commit()
        if not names:
            return 0, 0
        trash.mkdir(parents=True, exist_ok=True)
        entry = {"table_dir": str(table_dir), "new_dir": str(new_dir), "trash": str(trash),
                 "lock": str(lock), "partitions": names, "state": "swapping", "pid": os.getpid()}
        _write_journal(journal, entry)
        try:
            for name in names:
                final = table_dir / name
                if name in new:
                    _swap_in(new[name], final, trash / name)
                    written += 1
                elif final.exists():
                    final.rename(trash / name)
                    removed += 1
            _write_journal(journal, {**entry, "state": "committed"})
            fault_point("swap-committed")
        except BaseException:
            _settle(entry)  # put back every old partition whose place is empty
            journal.unlink(missing_ok=True)
            raise
    shutil.rmtree(trash, ignore_errors=True)
    journal.unlink(missing_ok=True)
    return written, removed


def _swap_in(src: Path, final: Path, trash_slot: Path) -> None:
    """Move partition `src` to `final`; the old partition, if any, ends up at `trash_slot`."""
    if not final.exists():
        src.rename(final)
        return
    if exchange(src, final):  # one system call: `final` is never missing
        fault_point("swap-mid")
        src.rename(trash_slot)
        return
    final.rename(trash_slot)  # no exchange here: two renames, the journal covers the gap
    fault_point("swap-mid")
    src.rename(final)


def _write_journal(path: Path, entry: dict) -> None:
    """Write the journal atomically (temp file, fsync, rename): a reader sees all of it or none."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(entry, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _settle(entry: dict) -> list[str]:
    """Finish a swap that did not finish: an uncommitted swap gets back every old partition whose
    place is empty (so each partition is the old or the new complete set); then the trash and
    the swap's leftover input go. Returns the partitions put back."""
    table_dir, trash = Path(entry["table_dir"]), Path(entry["trash"])
    restored = []
    if entry.get("state") != "committed":
        for name in entry.get("partitions", []):
            kept = trash / name
            if kept.is_dir() and not (table_dir / name).exists():
                kept.rename(table_dir / name)
                restored.append(name)
    shutil.rmtree(trash, ignore_errors=True)
    new_dir = Path(entry["new_dir"])
    if new_dir.is_relative_to(trash.parent):  # never delete anything outside the scratch space
        shutil.rmtree(new_dir, ignore_errors=True)
    return restored


def _valid_entry(entry: object, tmp_root: Path) -> bool:
    """A journal we may act on: its trash and input inside `tmp_root`, its table inside the
    home's buckets, plain partition names (a damaged or forged journal moves nothing)."""
    if not isinstance(entry, dict):
        return False
    try:
        trash, new_dir, table, lock = (Path(entry[k]).resolve()
                                       for k in ("trash", "new_dir", "table_dir", "lock"))
        names = list(entry["partitions"])
    except (KeyError, TypeError, ValueError):
        return False
    root = tmp_root.resolve()
    return (trash.parent == root and trash.name.startswith("trash-") and new_dir.is_relative_to(root)
            and table.is_relative_to(LocalHome(root.parent).buckets) and lock.parent == LocalHome(root.parent).locks
            and all(isinstance(n, str) and n and "/" not in n and n not in (".", "..") for n in names))


def recover_swaps(tmp_root: Path, lock_timeout: float = 1.0) -> list[str]:
    """At a run's start: settle the swaps that a killed process left behind in `tmp_root`.

    A swap holds its table's exclusive lock from its journal's first write to its commit, so a
    journal still there under that lock belongs to a dead process. A table whose lock is busy
    (a live swap, or long readers) is left for the next run. Returns "table/partition" for every
    partition put back.
    """
    restored: list[str] = []
    if not tmp_root.is_dir():
        return restored
    for journal in sorted(tmp_root.glob(f"{JOURNAL_PREFIX}*.json")):
        try:
            entry = json.loads(journal.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not _valid_entry(entry, tmp_root):
            continue
        try:
            with file_lock(Path(entry["lock"]), exclusive=True, timeout=lock_timeout):
                if not journal.exists():
                    continue  # its owner finished meanwhile
                entry = json.loads(journal.read_text(encoding="utf-8"))
                if not _valid_entry(entry, tmp_root):
                    continue
                restored += [f"{entry['table_dir']}/{n}" for n in _settle(entry)]
                journal.unlink(missing_ok=True)
        except (BackendError, OSError, ValueError):
            continue  # busy or unreadable: the next run tries again
    for tmp in tmp_root.glob(f"{JOURNAL_PREFIX}*.json.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - tmp.stat().st_mtime > 3600:  # a journal write cut short long ago
                tmp.unlink()
    return restored


@contextmanager
def shared_locks(paths: Iterable[Path]) -> Iterator[None]:
    """Hold shared locks on several tables (in a fixed order, so lockers never deadlock)."""
    with ExitStack() as stack:
        for p in sorted(set(paths)):
            stack.enter_context(file_lock(p, exclusive=False))
        yield
