"""Sample raw data from the project's own generator, written safely into the local raw bucket.

The data a project needs for a demo belongs to the project (`data: {generator: generate.py}` in its
definition: a .py file inside the project folder); funnelops never imports a project by name, it
loads that file by path. What stays here is the safety every generator gets:

- nothing is written while any run holds a lease (exit 3): a run reading raw files that are being
  replaced would write trusted data from torn input;
- a folder the generator owns that already holds files is replaced only with `replace` (exit 2);
- the files are written into a scratch folder under `<home>/tmp`, then each owned folder is moved
  into the raw bucket by rename: a reader sees the old tree or the new one, never a half-written
  one, and a kill -9 midway leaves the bucket as it was (the next call sweeps the scratch away).

The generator module's contract (checked by :func:`load_generator`):

- `TREES`: the folders inside the raw bucket it owns, each a tuple of folder names
  (`("FUNNEL", "TERADATA")`) or a relative path (`"FUNNEL/TERADATA"`);
- `generate(dest, rows, start, end, seed)`: writes every file under `dest` (laid out like the raw
  bucket) and returns a report with `to_dict() -> dict`, a `bucket_dir` attribute (set here to the
  raw bucket's folder) and optionally `summary() -> str`, the text the CLI prints. It may also take
  `progress=`, a callable `(done, total, unit, detail)` it calls as files land (the CLI draws it).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import re
import shutil
import sys
import uuid
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from funnelops.errors import UsageError
from funnelops.flows.atomic import fault_point, replace_dir
from funnelops.reporting import QUIET, Progress, Reporter
from funnelops.spec.mains import generator_problem

if TYPE_CHECKING:
    from funnelops.spec.project import LoadedProject

STAGE_PREFIX = "generate-"
# Most projects have real extracts, not a generator: the hint leads with loading them.
NO_GENERATOR_HINT = ("to use your own files, put them where a flow reads them: `funnelops data load FILE... "
                     "--flow NAME`; to generate sample data instead, declare a generator in the project file: "
                     "`data: {generator: generate.py}` (a .py file in the project folder, like the example's "
                     "projects/funnel/generate.py)")
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=-]*$")


def load_generator(loaded: LoadedProject) -> ModuleType:
    """Load the project's sample-data generator afresh, by path, and check its contract.

    Raises UsageError (exit 2) when the project declares none, names a file it may not run, or
    the module does not keep the contract."""
    data = loaded.spec.data
    if data is None:
        raise UsageError(f"the project {loaded.path} declares no sample-data generator (no `data:` block), so "
                         "`data generate` has nothing to run; nothing was written", NO_GENERATOR_HINT)
    problem = generator_problem(data.generator, loaded.base_dir)
    if problem is not None:
        raise UsageError(f"data.generator: {problem}", NO_GENERATOR_HINT)
    path = (Path(loaded.base_dir).resolve() / data.generator).resolve()
    # a name of its own per file: registered in sys.modules (dataclasses look their module up there)
    name = f"funnelops_user_data.generator_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load the sample-data generator {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    owned_trees(module, path)  # raises on a bad TREES
    if not callable(getattr(module, "generate", None)):
        raise UsageError(f"sample-data generator {path}: missing `generate(dest, rows, start, end, seed)`")
    return module


def owned_trees(module: ModuleType, path: Path | str = "") -> list[tuple[str, ...]]:
    """The generator's `TREES` as tuples of folder names, each checked to stay inside the bucket."""
    trees = getattr(module, "TREES", None)
    out: list[tuple[str, ...]] = []
    for tree in trees if isinstance(trees, (tuple, list)) else ():
        parts = tuple(tree.split("/")) if isinstance(tree, str) else tuple(tree)
        if not parts or not all(isinstance(p, str) and _NAME.match(p) and p.strip(".") for p in parts):
            raise UsageError(f"sample-data generator {path}: TREES entry {tree!r} is not a plain "
                                      "relative folder inside the raw bucket")
        out.append(parts)
    if not out:
        raise UsageError(f"sample-data generator {path}: `TREES` must list the folders it writes "
                                  "in the raw bucket, e.g. TREES = ((\"FUNNEL\", \"TERADATA\"),)")
    return out


def generate_raw(loaded: LoadedProject, home: Path, rows: int, start: date, end: date, seed: int, *,
                 replace: bool = False, reporter: Reporter = QUIET) -> Any:
    """Run the project's generator for `rows` rows over days `start`..`end` and move its folders
    into the local raw bucket atomically; returns the generator's report. A generator whose
    `generate` takes `progress` reports through it (`Progress` events on `reporter`)."""
    if rows < 1:
        raise UsageError("--rows must be at least 1")
    if end < start:
        raise UsageError(f"--end {end} is before --start {start}")
    bucket = loaded.spec.bucket_for("raw")
    if bucket is None:
        raise UsageError("the project has no bucket with role `raw`", "add one to the project's buckets")
    generator = load_generator(loaded)
    trees = owned_trees(generator)
    home = Path(home)
    raw_root = home / "buckets" / bucket.name
    _refuse_unless_free(loaded, home, raw_root, trees, replace)
    tmp_root = home / "tmp"
    _sweep_stale_stages(tmp_root)
    stage = tmp_root / f"{STAGE_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"
    stage.mkdir(parents=True)
    try:
        extra = {"progress": _progress_to(reporter)} if _takes_progress(generator.generate) else {}
        reporter.emit(Progress("generate", 0, rows, "rows", "starting"))  # the clock starts now
        report = generator.generate(stage, rows, start, end, int(seed), **extra)
        report.bucket_dir = str(raw_root)
        if not extra:  # a generator without progress: its end is the one milestone
            reporter.emit(Progress("generate", rows, rows, "rows", "done"))
        _refuse_unless_free(loaded, home, raw_root, trees, replace)  # again: a run may have started meanwhile
        fault_point("generate-before-commit")
        for tree in trees:
            dest = raw_root.joinpath(*tree)
            dest.parent.mkdir(parents=True, exist_ok=True)
            stage.joinpath(*tree).mkdir(parents=True, exist_ok=True)
            replace_dir(stage.joinpath(*tree), dest, stage / f"old-{'-'.join(tree)}")
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return report


def _takes_progress(fn: Any) -> bool:
    """Whether a generator's `generate` accepts `progress=` (older generators do not: still fine)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "progress" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _progress_to(reporter: Reporter) -> Any:
    """The callback a generator calls, `progress(done, total=None, unit="rows", detail="")`, as events."""
    def progress(done: int, total: int | None = None, unit: str = "rows", detail: str = "") -> None:
        reporter.emit(Progress("generate", int(done), None if total is None else int(total), str(unit), str(detail)))
    return progress


def summary_text(report: Any) -> str:
    """The report's own summary, or a plain line when the generator gives none."""
    summary = getattr(report, "summary", None)
    if callable(summary):
        return str(summary())
    return f"generated sample data into {getattr(report, 'bucket_dir', 'the raw bucket')}"


def _refuse_unless_free(loaded: LoadedProject, home: Path, raw_root: Path, trees: list[tuple[str, ...]], replace: bool) -> None:
    """Refuse while any run holds a lease (exit 3), or when a tree holds files and not `replace` (exit 2)."""
    from funnelops.backends import open_backend
    from funnelops.runs.busy import refuse_while_running

    backend = open_backend("local", loaded, home)  # generated data lands in the local raw bucket
    try:
        holders = backend.runtime.holders([w.name for w in loaded.spec.workflows])
    finally:
        backend.close()
    refuse_while_running(holders, "generate raw data")
    if replace:
        return
    for tree in trees:
        folder = raw_root.joinpath(*tree)
        found = _first_entry(folder)
        if found is not None:
            raise UsageError(f"{folder} is not empty (it holds {found.relative_to(folder)}, maybe more): "
                             "generating would replace what is there",
                             "pass --replace to delete it and write the generated data, or move those files "
                             "elsewhere first; nothing was written")


def _first_entry(folder: Path) -> Path | None:
    """The first file (or symlink) anywhere under `folder`; None if it holds only empty folders."""
    if not folder.is_dir():
        return None
    for root, dirs, files in os.walk(folder):
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        for name in sorted(files) + links:
            return Path(root) / name
    return None


def _sweep_stale_stages(tmp_root: Path) -> None:
    """Delete scratch folders of generators that died (kill -9 leaves them behind)."""
    from funnelops.procs import pid_alive

    if not tmp_root.is_dir():
        return
    for stale in tmp_root.glob(f"{STAGE_PREFIX}*"):
        pid = stale.name[len(STAGE_PREFIX):].split("-", 1)[0]
        if stale.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
