"""Trusted flows checked before any run: the module contract, located at the flow file's line.

A trusted flow is Python (`<project>/flows/trusted/<name>.py`) that a run imports and reads a few
constants from. Until `validate` looked at them, a missing `TARGET`, a typo in `FILES` or a syntax
error surfaced only in a run's log, without the file. Two passes, one set of rules:

- :func:`check_trusted_flows` (one of validate's CHECKS, so every command that loads the project
  runs it, the flows program included) never executes the flow: it parses the file with `ast`
  and judges the contract constants written as literals, each at the line that binds it. It costs
  a few milliseconds and imports nothing heavy.
- :func:`inspect_trusted` (the `validate` command only) executes each module as a run would
  (binding the local engine's `F`), so an import error or a computed constant is judged too, and
  returns warnings for what may fail at run time but is not certain.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from funnelops.errors import ProblemCollector, did_you_mean

if TYPE_CHECKING:
    from funnelops.spec.validate import Checked

TRUSTED_DIR = ("flows", "trusted")  # as funnelops.flows.registry.TRUSTED_DIR
REQUIRED = ("FILES", "COLUMNS", "TARGET", "PARTITION", "OUTPUT", "transform")
OPTIONAL = ("ALLOW_EMPTY", "DATE_COLUMN", "DATE_FORMATS", "CSV", "MAX_QUARANTINE_SHARE", "PERIOD_FILTER")
CSV_KEYS = ("delimiter", "quote", "encoding", "header")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CONTRACT_HINT = "see the flow contract in docs/flows.md"


class _Unknown:
    """A constant that is bound but not a literal (computed, imported): judged only when executed."""

    def __repr__(self) -> str:
        return "<not a literal>"


UNKNOWN: Any = _Unknown()


@dataclass
class FlowSource:
    """One trusted flow file as written: its top-level bindings, their lines and literal values."""

    name: str
    path: Path
    lines: dict[str, int] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    star: bool = False        # `from x import *`: any name may be bound
    first_line: int = 1       # where the contract constants start (missing ones are reported there)

    def line(self, attr: str) -> int:
        return self.lines.get(attr, self.first_line)


def flow_paths(base: Path) -> list[Path]:
    """The trusted flow files (helpers starting with `_` excluded), in name order."""
    folder = base.joinpath(*TRUSTED_DIR)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))


def _bindings(tree: ast.Module, src: FlowSource) -> None:
    """Top-level names the module binds; a literal value is kept, anything else is UNKNOWN."""
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and node.value is not None:
                    src.lines[t.id] = node.lineno
                    try:
                        src.values[t.id] = ast.literal_eval(node.value)
                    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                        src.values[t.id] = UNKNOWN
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            src.lines[node.name] = node.lineno
            src.values[node.name] = UNKNOWN if isinstance(node, ast.FunctionDef) else "not a function"
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    src.star = True
                else:
                    src.lines[alias.asname or alias.name.split(".")[0]] = node.lineno
                    src.values[alias.asname or alias.name.split(".")[0]] = UNKNOWN
        else:  # if/try/with/for at top level: names bound inside are bound, values unknown
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store) or isinstance(sub, ast.FunctionDef):
                    name = sub.id if isinstance(sub, ast.Name) else sub.name
                    src.lines.setdefault(name, getattr(sub, "lineno", 1))
                    src.values[name] = UNKNOWN
    contract = [src.lines[a] for a in (*REQUIRED, *OPTIONAL) if a in src.lines]
    src.first_line = min(contract) if contract else 1


def read_flow(path: Path, c: ProblemCollector) -> FlowSource | None:
    """Parse one flow file; a file that cannot be read or parsed is reported (file:line) -> None."""
    from funnelops.spec.files import ProjectFileRefused, read_project_text

    name = path.stem
    where = f"trusted flow {name}"
    if not _IDENT.match(name):
        c.add(str(path), None, where, "the file name must be an identifier (letters, digits and `_`, not "
              "starting with a digit): it names the flow's table, lock and quarantine",
              f"rename it, e.g. to {re.sub(r'[^A-Za-z0-9_]', '_', name).lstrip('0123456789') or 'flow'}.py")
        return None
    try:
        text = read_project_text(path)
    except (ProjectFileRefused, OSError, UnicodeDecodeError) as exc:
        c.add(str(path), None, where, f"cannot read the flow: {exc}", "keep trusted flows as plain UTF-8 .py files")
        return None
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        c.add(str(path), exc.lineno, where, f"syntax error: {exc.msg}", "fix the Python syntax at that line")
        return None
    src = FlowSource(name, path)
    _bindings(tree, src)
    return src


def _is_str_seq(v: Any) -> bool:
    return isinstance(v, tuple | list) and all(isinstance(x, str) and x for x in v)


def _known(*values: Any) -> bool:
    return not any(v is UNKNOWN for v in values)


def contract_problems(src: FlowSource, values: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(attribute, message, hint) for every broken rule of the contract among `values`.

    A value that is UNKNOWN is not judged (the executing pass sees the real one)."""
    from funnelops.flows.registry import files_problem

    out: list[tuple[str, str, str | None]] = []
    for attr in REQUIRED:
        if attr not in values and not src.star:
            out.append((attr, f"missing `{attr}`" + (" (the function `transform(raw)`)" if attr == "transform"
                                                    else ""), CONTRACT_HINT))
    v = {k: values.get(k, UNKNOWN) for k in (*REQUIRED, *OPTIONAL)}
    files, columns, output = v["FILES"], v["COLUMNS"], v["OUTPUT"]
    if _known(files):
        if not isinstance(files, str) or not files:
            out.append(("FILES", "FILES must be a path (a string) inside the raw bucket", None))
        else:
            problem = files_problem(files)
            if problem:
                out.append(("FILES", problem, None))
            elif "{" not in files and "DATE_COLUMN" not in values and values.get("PERIOD_FILTER", True) is not False:
                out.append(("FILES", f"FILES {files!r} has no date placeholder, so it is a snapshot read on "
                            "every run: name the raw column that dates each row in DATE_COLUMN",
                            "DATE_COLUMN = \"created_at\"; or PERIOD_FILTER = False for reference data read whole"))
    for attr, seq in (("COLUMNS", columns), ("OUTPUT", output)):
        if not _known(seq):
            continue
        if not _is_str_seq(seq):
            out.append((attr, f"{attr} must be a tuple or list of column names (strings)", None))
        elif len(set(seq)) != len(seq):
            dup = next(x for x in seq if seq.count(x) > 1)
            out.append((attr, f"{attr} repeats '{dup}'", None))
    for attr in ("TARGET", "PARTITION"):
        val = v[attr]
        if _known(val) and not (isinstance(val, str) and _IDENT.match(val)):
            out.append((attr, f"{attr} must be an identifier (letters, digits and `_`), not {val!r}", None))
    if _known(v["PARTITION"], output) and _is_str_seq(output) and isinstance(v["PARTITION"], str) \
            and v["PARTITION"] not in output:
        out.append(("PARTITION", f"PARTITION '{v['PARTITION']}' is not one of OUTPUT",
                    did_you_mean(v["PARTITION"], output)))
    if "transform" in values and _known(v["transform"]) and not callable(v["transform"]):
        out.append(("transform", "transform must be a function `transform(raw)`", None))
    out += _optional_problems(v, columns)
    return out


def _optional_problems(v: dict[str, Any], columns: Any) -> list[tuple[str, str, str | None]]:
    out: list[tuple[str, str, str | None]] = []
    for attr in ("ALLOW_EMPTY", "PERIOD_FILTER"):
        if attr in v and _known(v[attr]) and not isinstance(v[attr], bool):
            out.append((attr, f"{attr} must be True or False", None))
    dc = v["DATE_COLUMN"]
    if _known(dc):
        if not isinstance(dc, str) or not dc:
            out.append(("DATE_COLUMN", "DATE_COLUMN must be the name of a raw column (a string)", None))
        elif _known(columns) and _is_str_seq(columns) and dc not in columns:
            out.append(("DATE_COLUMN", f"DATE_COLUMN '{dc}' is not one of COLUMNS", did_you_mean(dc, columns)))
    fmts = v["DATE_FORMATS"]
    if _known(fmts) and not (_is_str_seq(fmts) and fmts and all("%" in f for f in fmts)):
        out.append(("DATE_FORMATS", "DATE_FORMATS must be a non-empty tuple of strptime formats",
                    'e.g. DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y")'))
    out += _csv_problems(v["CSV"])
    share = v["MAX_QUARANTINE_SHARE"]
    if _known(share) and (isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1):
        out.append(("MAX_QUARANTINE_SHARE", f"MAX_QUARANTINE_SHARE must be a number above 0 and at most 1, "
                    f"not {share!r}", "0.5 fails a run that quarantines more than half of what it read"))
    return out


def _csv_problems(csv: Any) -> list[tuple[str, str, str | None]]:
    import codecs

    if not _known(csv):
        return []
    if not isinstance(csv, dict):
        return [("CSV", "CSV must be a dict of reading options", 'e.g. CSV = {"delimiter": ";"}')]
    out: list[tuple[str, str, str | None]] = []
    for key in csv:
        if key not in CSV_KEYS:
            out.append(("CSV", f"unknown CSV option {key!r}", did_you_mean(str(key), CSV_KEYS)))
    for key in ("delimiter", "quote"):
        if key in csv and not (isinstance(csv[key], str) and len(csv[key]) == 1):
            out.append(("CSV", f"CSV {key} must be one character, not {csv[key]!r}", None))
    if "header" in csv and not isinstance(csv["header"], bool):
        out.append(("CSV", "CSV header must be True or False", None))
    if "encoding" in csv:
        try:
            codecs.lookup(csv["encoding"])
        except (LookupError, TypeError):
            out.append(("CSV", f"CSV encoding {csv['encoding']!r} is not a known encoding", "e.g. utf-8, latin-1"))
    return out


def _report(src: FlowSource, problems: list[tuple[str, str, str | None]], c: ProblemCollector) -> None:
    for attr, message, hint in problems:
        c.add(str(src.path), src.line(attr), f"trusted flow {src.name}.{attr}", message, hint)


def check_trusted_flows(p: Checked, c: ProblemCollector) -> None:
    """Every trusted flow parses and keeps the contract as far as its literals show; two flows
    never write the same trusted table."""
    targets: dict[str, FlowSource] = {}
    for path in flow_paths(p.loaded.base_dir):
        src = read_flow(path, c)
        if src is None:
            continue
        _report(src, contract_problems(src, src.values), c)
        target = src.values.get("TARGET")
        if isinstance(target, str) and target:
            first = targets.setdefault(target, src)
            if first is not src:
                c.add(str(src.path), src.line("TARGET"), f"trusted flow {src.name}.TARGET",
                      f"flow {first.name} ({first.path.name}:{first.line('TARGET')}) writes TARGET '{target}' too",
                      "each flow writes its own trusted table")
