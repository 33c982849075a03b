"""Read the files a project references (table schema JSON, view SQL), relative to the project file.

This is the only step of validation that produces values: :func:`resolve_files` returns them and
the caller (`validate.resolve_and_check`) stores them on the loaded project, so no check writes
into the project as a side effect. A file that cannot be used is a located problem, and its item
is left out of what the checks see (no follow-on problems).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from funnelops.errors import ProblemCollector
from funnelops.spec.files import ProjectFileRefused, read_project_text
from funnelops.spec.models import ColumnSchema
from funnelops.spec.project import LoadedProject


@dataclass(frozen=True)
class Resolved:
    """Per item, in the order of the spec's lists: a table's columns and a view's SQL, or None
    where the item's file was unusable (the problem is already reported)."""

    table_columns: tuple[list[ColumnSchema] | None, ...]
    view_sql: tuple[str | None, ...]

    def table_schemas(self, loaded: LoadedProject) -> dict[str, list[ColumnSchema]]:
        """Columns by table address, as `LoadedProject.table_schemas` holds them."""
        return {t.address: list(cols) for t, cols in zip(loaded.spec.tables, self.table_columns) if cols is not None}

    def view_sql_by_address(self, loaded: LoadedProject) -> dict[str, str]:
        """Stripped SQL by view address, as `LoadedProject.view_sql` holds it."""
        return {v.address: sql.strip() for v, sql in zip(loaded.spec.views, self.view_sql) if sql is not None}


def resolve_files(loaded: LoadedProject, file: str, c: ProblemCollector) -> Resolved:
    """Every table's columns (inline or from its schema file) and every view's SQL (inline or
    from its query file); unusable files are reported into `c`."""
    return Resolved(_table_columns(loaded, file, c), _view_sql(loaded, file, c))


def _safe_relative(base: Path, rel: str) -> Path | None:
    """A file under the project's folder; None if `rel` escapes it."""
    target = (base / rel).resolve()
    try:
        target.relative_to(base.resolve())
    except ValueError:
        return None
    return target


def _table_columns(loaded: LoadedProject, file: str, c: ProblemCollector) -> tuple[list[ColumnSchema] | None, ...]:
    out: list[list[ColumnSchema] | None] = []
    schema_files: dict[str, list[ColumnSchema] | None] = {}  # many tables share one schema file
    for i, t in enumerate(loaded.spec.tables):
        cols = t.schema_
        if t.schema_file is not None:
            if t.schema_file in schema_files and schema_files[t.schema_file] is not None:
                cols = schema_files[t.schema_file]
            else:  # (a bad file is reported for every table that uses it)
                cols = schema_files[t.schema_file] = _load_schema_file(
                    loaded.base_dir, t.schema_file, file, loaded.line_of(("tables", i, "schema_file")),
                    f"tables[{t.name}].schema_file", c)
        out.append(cols)
    return tuple(out)


def _load_schema_file(base: Path, rel: str, file: str, line: int | None, field_: str,
                      c: ProblemCollector) -> list[ColumnSchema] | None:
    target = _safe_relative(base, rel)
    if target is None:
        c.add(file, line, field_, f"'{rel}' is outside the project folder", "keep schema files beside funnel.yaml")
        return None
    if not target.exists():
        c.add(file, line, field_, f"schema file '{rel}' not found", f"create {target} or fix the path")
        return None
    try:
        raw = json.loads(read_project_text(target))
    except ProjectFileRefused as exc:
        c.add(file, line, field_, f"schema file {exc}", "point it at a JSON file beside funnel.yaml")
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f"{rel}:{exc.lineno}" if isinstance(exc, json.JSONDecodeError) else rel
        c.add(file, line, field_, f"schema file {where} is not valid JSON: {exc}")
        return None
    if isinstance(raw, dict) and "fields" in raw:
        raw = raw["fields"]
    if not isinstance(raw, list):
        c.add(file, line, field_, f"schema file '{rel}' must be a JSON list of fields (BigQuery schema format)")
        return None
    cols = []
    bad = False
    for i, item in enumerate(raw):
        try:
            cols.append(ColumnSchema.model_validate(item))
        except ValidationError as exc:
            bad = True
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                msg = err["msg"].removeprefix("Value error, ")
                c.add(file, line, field_, f"{rel}: field [{i}] {loc}: {msg}")
    return None if bad else cols  # the bad fields are reported; no follow-on problems


def _view_sql(loaded: LoadedProject, file: str, c: ProblemCollector) -> tuple[str | None, ...]:
    out: list[str | None] = []
    for i, v in enumerate(loaded.spec.views):
        if v.query_file is None:
            out.append(v.query)
        else:
            out.append(_read_query_file(loaded, i, v.name, v.query_file, file, c))
    return tuple(out)


def _read_query_file(loaded: LoadedProject, i: int, name: str, rel: str, file: str,
                     c: ProblemCollector) -> str | None:
    line, field_ = loaded.line_of(("views", i, "query_file")), f"views[{name}].query_file"
    target = _safe_relative(loaded.base_dir, rel)
    if target is None or not target.exists():
        c.add(file, line, field_, f"SQL file '{rel}' not found" + (" (outside the project folder)" if target is None else ""),
              "fix the path; it is relative to the project file")
        return None
    try:
        return read_project_text(target)
    except ProjectFileRefused as exc:
        c.add(file, line, field_, f"SQL file {exc}", "point it at a .sql file beside funnel.yaml")
    except (OSError, UnicodeDecodeError) as exc:
        c.add(file, line, field_, f"cannot read SQL file '{rel}': {exc}", "save it as UTF-8 text")
    return None
