"""Finding a project's flows: trusted flows are Python files, refined flows are SQL files.

A flow's name is its file name without the suffix, and must be an identifier (`won_deals.py`,
not `won-deals.py` or `1x.py`): it names tables, locks and quarantine folders. Files starting
with `_` in the trusted folder are helpers, not flows.

`projects/` is user code, never imported by name from `src/`: trusted flows are loaded from
`<project dir>/flows/trusted/*.py` by file path, fresh on every load, so the module binds the
`F`/`Window` of the engine active at that moment. Refined flows are
`<project dir>/sql/refined/*.sql` with a small header:

    -- target: funnel_refined.funnel_{granularity}   ({granularity} -> daily/monthly/yearly)
    -- replace: period | all                          (delete-then-insert scope)
    -- granularities: MONTH, YEAR                     (optional; other runs skip the flow)
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from funnelops.errors import UsageError, did_you_mean
from funnelops.flows import layout
from funnelops.flows.args import GRANULARITIES

TRUSTED_DIR = ("flows", "trusted")
REFINED_DIR = ("sql", "refined")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SUFFIX = {"DAY": "daily", "MONTH": "monthly", "YEAR": "yearly"}


class FlowDefinitionError(UsageError):
    """A flow file does not follow the contract; names the file."""


@dataclass(frozen=True)
class RefinedFlow:
    name: str
    path: Path
    sql: str
    target: str            # `dataset.table`, may contain {granularity}
    replace: str           # "period" or "all"
    granularities: tuple[str, ...]

    def table_for(self, granularity: str) -> tuple[str, str]:
        dataset, table = self.target.replace("{granularity}", SUFFIX[granularity]).split(".")
        return dataset, table


def _names(folder: Path, suffix: str, layer: str) -> list[str]:
    """Flow names of `folder`; a file name that is no identifier is an error naming the file."""
    if not folder.is_dir():
        return []
    paths = sorted(p for p in folder.glob(f"*{suffix}") if not (suffix == ".py" and p.name.startswith("_")))
    bad = [p for p in paths if not _IDENT.match(p.stem)]
    if bad:
        raise FlowDefinitionError(
            f"{layer} flow file {bad[0]}: the file name must be an identifier (letters, digits and `_`, "
            f"not starting with a digit)" + (f"; also {', '.join(p.name for p in bad[1:])}" if bad[1:] else ""),
            f"rename it, e.g. to {_suggest(bad[0].stem)}{suffix}")
    return [p.stem for p in paths]


def _suggest(stem: str) -> str:
    out = re.sub(r"[^A-Za-z0-9_]", "_", stem)
    return out if _IDENT.match(out) else f"flow_{out}"


def trusted_names(project_dir: Path) -> list[str]:
    return _names(project_dir.joinpath(*TRUSTED_DIR), ".py", "trusted")


def refined_names(project_dir: Path) -> list[str]:
    return _names(project_dir.joinpath(*REFINED_DIR), ".sql", "refined")


def select(requested: tuple[str, ...] | None, known: list[str], layer: str) -> list[str]:
    """None -> all known flows; () -> none; otherwise the named ones, in the order given."""
    if requested is None:
        return list(known)
    unknown = [n for n in requested if n not in known]
    if unknown:
        hints = [h for h in (did_you_mean(n, known) for n in unknown) if h]
        raise UsageError(f"unknown {layer} flow(s): {', '.join(unknown)}; known {layer} flows: "
                         f"{', '.join(known) or '(none)'}", "; ".join(hints) or None)
    return list(dict.fromkeys(requested))


def files_problem(files: str) -> str | None:
    """Why the runtime cannot use the `FILES` layout `files`, or None.

    Shared by the runtime (:func:`load_trusted`) and `validate` (`spec/flow_checks.py`), and
    decided by the raw layer's own parser (:func:`funnelops.flows.layout.unit_of`), so validate
    accepts exactly what a run can read: placeholders naming a day, a month or a year, or none (a
    snapshot source, judged with DATE_COLUMN by the caller).
    """
    if files.startswith("/") or ".." in files.split("/") or "\\" in files:
        return "FILES must be a relative path inside the raw bucket (no leading `/`, no `..`)"
    try:
        layout.unit_of(files)
    except ValueError as exc:
        return str(exc)
    if not files.lower().endswith((".csv", ".xlsx")):
        return "FILES must name .csv or .xlsx files"
    return None


def load_trusted(project_dir: Path, name: str) -> ModuleType:
    """Load `<project>/flows/trusted/<name>.py` afresh and check its contract.

    The flow contract (module attributes):

    - `FILES`: the source path inside the raw bucket, all `.csv` or all `.xlsx`: dated, with
      placeholders naming a day, month or year (`{yyyy}/{mm}/leads_{yyyymmdd}.csv`), or a
      snapshot without any (`crm/leads.csv`), filtered by `DATE_COLUMN` (see
      :mod:`funnelops.flows.layout`, which also reads `DATE_FORMATS`, `PERIOD_FILTER` and `CSV`).
    - `COLUMNS`: the column names the source's header must carry. A file with the same names
      in another order is read by name; a missing, unexpected or repeated name fails the run.
    - `TARGET`, `PARTITION`, `OUTPUT`: the trusted table, its DATE partition column (one of
      `OUTPUT`) and the output columns.
    - `transform(raw)`: returns every input row with `dq_rule` (NULL = keep), ending with
      `dq.finish(df, OUTPUT)`; rows are never filtered out.
    - `ALLOW_EMPTY` (optional, default False): whether a source file with a header and no data
      rows is a legal empty period. Without it such a file fails the run and the period's
      trusted partition is kept; with it the partition is replaced by nothing (a day without
      won deals). A 0-byte file always fails: it has no header, so it is a failed transfer.
    """
    if not _IDENT.match(name):
        raise FlowDefinitionError(f"trusted flow name `{name}` must be an identifier")
    path = project_dir.joinpath(*TRUSTED_DIR, f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"funnelops_user_flows.trusted.{name}", path)
    if spec is None or spec.loader is None:
        raise FlowDefinitionError(f"cannot load trusted flow {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    problems = []
    for attr in ("FILES", "COLUMNS", "TARGET", "PARTITION", "OUTPUT", "transform"):
        if not hasattr(module, attr):
            problems.append(f"missing `{attr}`")
    if not problems:
        if not _IDENT.match(module.TARGET) or not _IDENT.match(module.PARTITION):
            problems.append("TARGET and PARTITION must be identifiers")
        if module.PARTITION not in module.OUTPUT:
            problems.append("PARTITION must be one of OUTPUT")
        problem = files_problem(module.FILES) if isinstance(module.FILES, str) else "FILES must be a path"
        problems += [problem] if problem else layout.problems(module)
        if not all(isinstance(c, str) and c for c in module.COLUMNS):
            problems.append("COLUMNS must be column names")
        elif len(set(module.COLUMNS)) != len(module.COLUMNS):
            problems.append("COLUMNS must not repeat a name")
        if not isinstance(getattr(module, "ALLOW_EMPTY", False), bool):
            problems.append("ALLOW_EMPTY must be True or False")
    if problems:
        raise FlowDefinitionError(f"trusted flow {path}: {'; '.join(problems)}")
    return module


def _read_sql(path: Path) -> str:
    """A refined flow's SQL: a regular file of sane size (never a FIFO or a device)."""
    from funnelops.spec.files import ProjectFileRefused, read_project_text

    try:
        return read_project_text(path)
    except ProjectFileRefused as exc:
        raise FlowDefinitionError(f"refined flow {exc}", "keep refined SQL as plain .sql files") from None


def load_refined(project_dir: Path, name: str) -> RefinedFlow:
    path = project_dir.joinpath(*REFINED_DIR, f"{name}.sql")
    sql = _read_sql(path)
    header: dict[str, str] = {}
    for line in sql.splitlines():
        m = re.match(r"^--\s*(target|replace|granularities)\s*:\s*(.+?)\s*$", line)
        if m:
            header[m.group(1)] = m.group(2)
    target = header.get("target", "")
    parts = target.replace("{granularity}", "x").split(".")
    if len(parts) != 2 or not all(_IDENT.match(p) for p in parts):
        raise FlowDefinitionError(f"refined flow {path}: needs a `-- target: dataset.table` header line")
    replace = header.get("replace", "period")
    if replace not in ("period", "all"):
        raise FlowDefinitionError(f"refined flow {path}: `-- replace:` must be period or all")
    grans = tuple(g.strip().upper() for g in header.get("granularities", ",".join(GRANULARITIES)).split(","))
    if any(g not in GRANULARITIES for g in grans):
        raise FlowDefinitionError(f"refined flow {path}: `-- granularities:` takes {', '.join(GRANULARITIES)}")
    return RefinedFlow(name, path, sql, target, replace, grans)
