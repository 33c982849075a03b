"""Refined flows checked before any run: the SQL header, the target, what the query reads and writes.

A refined flow (`<project>/sql/refined/<name>.sql`) is one BigQuery SELECT under a header
(`-- target:`, `-- replace: period | all`, `-- granularities:`), read the same way as
:func:`funnelops.flows.registry.load_refined` reads it. Every problem is located at the SQL
file's line.

- :func:`check_refined_flows` (one of validate's CHECKS, every command): the header, a target
  that is a table of the project for each granularity the flow runs at, and a query that reads
  only the trusted external tables (what a run refuses). The query itself is parsed by
  `sql_safety.check_refined_sql`, with the verdict cached, so this costs no parse either.
- :func:`inspect_refined` (the `validate` command only): the query parsed again for its output
  columns, and translated to DuckDB's dialect for the local backend, with warnings for what
  cannot be decided without running it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from funnelops.errors import Problem, ProblemCollector, did_you_mean

if TYPE_CHECKING:
    from funnelops.spec.project import LoadedProject
    from funnelops.spec.validate import Checked

REFINED_DIR = ("sql", "refined")  # as funnelops.flows.registry.REFINED_DIR
GRANULARITIES = ("DAY", "MONTH", "YEAR")
SUFFIX = {"DAY": "daily", "MONTH": "monthly", "YEAR": "yearly"}
_HEADER = re.compile(r"^--\s*(target|replace|granularities)\s*:\s*(.+?)\s*$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HEADER_HINT = ("a refined SQL file starts with `-- target: dataset.table` (`{granularity}` may name one table "
               "per granularity), `-- replace: period | all` and optionally `-- granularities: MONTH, YEAR`")


@dataclass
class RefinedSource:
    """One refined SQL file's header as written, with the line of each field."""

    name: str
    path: Path
    sql: str
    fields: dict[str, tuple[str, int]]     # header field -> (value, line)

    def line(self, key: str) -> int:
        return self.fields.get(key, ("", 1))[1]

    @property
    def replace(self) -> str:
        return self.fields.get("replace", ("period", 1))[0]

    def granularities(self) -> tuple[str, ...]:
        raw = self.fields.get("granularities", (",".join(GRANULARITIES), 1))[0]
        return tuple(g.strip().upper() for g in raw.split(","))

    def targets(self) -> dict[str, str]:
        """Granularity -> `dataset.table` the flow writes at it."""
        target = self.fields.get("target", ("", 1))[0]
        return {g: target.replace("{granularity}", SUFFIX[g]) for g in self.granularities() if g in SUFFIX}


def refined_sources(base: Path) -> list[RefinedSource]:
    """The refined SQL files that can be read (unreadable ones are sql_safety's to report)."""
    folder = base.joinpath(*REFINED_DIR)
    out = []
    for path in sorted(folder.glob("*.sql")) if folder.is_dir() else []:
        try:
            sql = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        fields = {}
        for n, line in enumerate(sql.splitlines(), 1):
            m = _HEADER.match(line)
            if m:
                fields[m.group(1)] = (m.group(2), n)
        out.append(RefinedSource(path.stem, path, sql, fields))
    return out


def header_problems(src: RefinedSource) -> list[tuple[int, str, str, str | None]]:
    """(line, field, message, hint) for a header the runtime would refuse."""
    out: list[tuple[int, str, str, str | None]] = []
    target = src.fields.get("target", ("", 1))[0]
    parts = target.replace("{granularity}", "x").split(".")
    if len(parts) != 2 or not all(_IDENT.match(p) for p in parts):
        msg = (f"target {target!r} is not `dataset.table`" if target else "needs a `-- target: dataset.table` "
               "header line")
        out.append((src.line("target"), "target", msg, HEADER_HINT))
    if src.replace not in ("period", "all"):
        out.append((src.line("replace"), "replace", f"`-- replace:` is {src.replace!r}; it must be period or all",
                    "period replaces the run's period (the query returns period_start), all replaces every row"))
    bad = [g for g in src.granularities() if g not in GRANULARITIES]
    if bad:
        out.append((src.line("granularities"), "granularities", f"unknown granularit{'y' if len(bad) == 1 else 'ies'} "
                    f"{', '.join(bad)}; `-- granularities:` takes {', '.join(GRANULARITIES)}", None))
    return out


def check_refined_flows(p: Checked, c: ProblemCollector) -> None:
    """Each refined flow's header is one the runtime reads, its targets are tables of the project,
    and its query reads only external tables (the trusted layer)."""
    from funnelops.spec.sqlrefs import SqlError, table_refs

    # names set aside for their own field errors count as known (`spec/partial.py`): one problem each
    spec = p.spec
    extra = set(p.known.relations) - {r.address for kind in ("tables", "external_tables", "views")
                                      for r in getattr(spec, kind)}
    tables = {t.address for t in spec.tables} | extra
    externals = {e.address for e in spec.external_tables} | extra
    for src in refined_sources(p.loaded.base_dir):
        where = f"refined flow {src.name}"
        problems = header_problems(src)
        for line, fld, msg, hint in problems:
            c.add(str(src.path), line, f"{where}.{fld}", msg, hint)
        if problems:
            continue
        for gran, address in src.targets().items():
            if address not in tables:
                c.add(str(src.path), src.line("target"), f"{where}.target",
                      f"target {address} (at {gran}) is not a table of the project",
                      did_you_mean(address, tables) or "add it to `tables:` or fix the target")
                break
        try:
            refs = table_refs(src.sql)
        except SqlError:
            continue  # reported, located, by sql_safety.check_refined_sql
        for ref in refs:
            if ref not in externals:
                c.add(str(src.path), _line_of_name(src.sql, ref), f"{where}.query",
                      f"reads {ref}, which is not an external table of the project",
                      did_you_mean(ref, externals) or "refined SQL reads the trusted layer's external tables")


def _line_of_name(sql: str, name: str) -> int:
    """The first line that mentions `name` (a table reference), else 1."""
    last = name.split(".")[-1]
    for n, line in enumerate(sql.splitlines(), 1):
        if not line.lstrip().startswith("--") and re.search(r"\b" + re.escape(last) + r"\b", line):
            return n
    return 1


def inspect_refined(loaded: LoadedProject, backend: str) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) that need the query parsed: its output columns against the target
    tables and the replace mode, and (local backend) its DuckDB translation."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    columns = {t: [c.name for c in cols] for t, cols in (loaded.table_schemas or {}).items()}
    for src in refined_sources(loaded.base_dir):
        if header_problems(src):
            continue
        err, warn = _inspect_one(src, backend, columns)
        errors += err
        warnings += warn
    return errors, warnings


def _inspect_one(src: RefinedSource, backend: str, table_columns: dict[str, list[str]]
                 ) -> tuple[list[Problem], list[Problem]]:
    from funnelops.spec.sql_safety import parse_query, problem_message
    from funnelops.spec.sqlrefs import SqlError, to_duckdb

    file, where = str(src.path), f"refined flow {src.name}"
    errors: list[Problem] = []
    warnings: list[Problem] = []
    try:
        tree = parse_query(src.sql, "bigquery")
        if backend == "local":
            to_duckdb(src.sql)
    except SqlError as exc:
        return [Problem(file, getattr(exc, "line", None), f"{where}.query",
                        problem_message(exc, with_line=False))], []
    out = list(tree.named_selects)
    if not out or any(c in ("", "*") for c in out):
        (errors if backend == "gcp" else warnings).append(Problem(
            file, _select_line(src.sql), f"{where}.query",
            "the query's output columns cannot all be named (`*` or an expression without an alias)",
            "alias every output column as the target table names it (BigQuery inserts by name)"))
        return errors, warnings
    for gran, address in src.targets().items():
        have = table_columns.get(address)
        if have is None:
            continue
        unknown = [c for c in out if c not in have]
        if unknown:
            errors.append(Problem(file, _select_line(src.sql), f"{where}.query",
                                  f"{address} has no column(s) {', '.join(unknown)}",
                                  "alias the query's columns as the table's schema names them"))
        if src.replace == "period":
            errors += _period_problems(src, address, have, out, gran)
        break
    if src.replace == "period" and not any(table_columns.get(a) for a in src.targets().values()):
        if "period_start" not in out or "granularity" not in out:
            warnings.append(Problem(file, src.line("replace"), f"{where}.replace",
                                    "`replace: period` deletes by period_start (and granularity): the query "
                                    "returns " + ", ".join(c for c in ("period_start", "granularity") if c in out)
                                    + " only and the target's columns are unknown here", None))
    return errors, warnings


def _period_problems(src: RefinedSource, address: str, have: list[str], out: list[str], gran: str) -> list[Problem]:
    file, where = str(src.path), f"refined flow {src.name}.replace"
    probs = []
    if "period_start" not in have:
        probs.append(Problem(file, src.line("replace"), where,
                             f"`replace: period` needs a period_start column, and {address} has none",
                             "use `-- replace: all` or add the column"))
    elif "period_start" not in out:
        probs.append(Problem(file, src.line("replace"), where,
                             "`replace: period` needs the query to return period_start: without it the rows are "
                             "inserted with none and the next run of the period cannot replace them",
                             "return the period's first day AS period_start (e.g. @period_start)"))
    if "granularity" in have and "granularity" not in out:
        probs.append(Problem(file, src.line("replace"), where,
                             f"{address} has a granularity column the query does not return: a run replaces "
                             "the rows of its granularity only, so these rows would never be replaced",
                             "return @granularity AS granularity"))
    return probs


def _select_line(sql: str) -> int:
    """The line of the first SELECT outside comments (where output columns are written), else 1."""
    for n, line in enumerate(sql.splitlines(), 1):
        if not line.lstrip().startswith("--") and re.search(r"\bselect\b", line, re.I):
            return n
    return 1
