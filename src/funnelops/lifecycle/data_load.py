"""`funnelops data load`: a team's own extract files, put where a trusted flow reads them.

The flow's `FILES` decides the layout (see :mod:`funnelops.flows.layout`):

- *dated* (`crm/{yyyy}/{mm}/leads_{yyyymmdd}.csv`): the rows of the input CSV files are split by
  a date column (`--date-column`, else the flow's `DATE_COLUMN`) into one file per day, month or
  year as the placeholders say, each with the header and in the flow's CSV dialect. Every
  record keeps its exact text (a quoted value spanning lines included);
- *snapshot* (`crm/leads.csv`): the one input file is copied as is (the runtime filters it by
  `DATE_COLUMN` at run time). `.xlsx` inputs are copied as is, so they load into a snapshot
  `FILES` only: a workbook is never split.

Everything is read, split and checked before anything is written, so bad input (an unknown
flow, a missing date column, a date that does not parse, a header that is not the flow's
`COLUMNS`) is reported with file and line, exit 2, nothing written. An existing target with
other content is replaced only with `replace`; an identical one is left alone. Writes go
through the backend's `Storage.put_object` (local: temp file + rename; gcp: one upload each),
refused while any workflow run holds a lease: a run reading a half-loaded day would publish it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from funnelops.errors import UsageError
from funnelops.flows import layout
from funnelops.flows import source_checks as checks
from funnelops.flows.layout import CsvOptions, Layout

if TYPE_CHECKING:
    from funnelops.backends.base import Backend
    from funnelops.spec.project import LoadedProject

MAX_INPUT = 2 << 30     # bytes per input file held in memory at once


@dataclass
class Target:
    """One file the load writes into the raw bucket."""

    name: str                        # path inside the raw bucket
    rows: int
    inputs: list[str]
    data: bytes = field(repr=False, default=b"")
    state: str = "new"               # new | replaced | unchanged

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.name, "rows": self.rows, "state": self.state, "inputs": self.inputs}


@dataclass
class LoadReport:
    flow: str
    bucket: str
    layout: str                      # "dated (one file per day)" | "snapshot"
    targets: list[Target]

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.targets)

    def to_dict(self) -> dict[str, Any]:
        return {"flow": self.flow, "bucket": self.bucket, "layout": self.layout, "rows": self.rows,
                "files": [t.to_dict() for t in self.targets]}


def flow_module(loaded: LoadedProject, flow: str) -> ModuleType:
    """The trusted flow `flow` of the project (unknown: a did-you-mean UsageError)."""
    from funnelops.flows.registry import load_trusted, select, trusted_names

    select((flow,), trusted_names(loaded.base_dir), "trusted")
    return load_trusted(loaded.base_dir, flow)


def plan_load(loaded: LoadedProject, flow: str, inputs: list[Path], date_column: str | None = None) -> LoadReport:
    """Read and split `inputs` for `flow` without writing anything; raises UsageError on bad input."""
    module = flow_module(loaded, flow)
    source = layout.layout_of(module)
    bucket = loaded.spec.bucket_for("raw")
    if bucket is None:
        raise UsageError("the project has no bucket with role `raw`", "add one to the project's buckets")
    if not inputs:
        raise UsageError("give at least one file to load")
    for path in inputs:
        _check_input(path, source)
    columns = tuple(module.COLUMNS)
    if source.snapshot:
        if date_column is not None:
            raise UsageError(f"--date-column applies to a dated FILES; flow {flow} reads the snapshot "
                             f"{source.template}", "drop --date-column: the run filters the snapshot by the flow's "
                             "DATE_COLUMN")
        if len(inputs) != 1:
            raise UsageError(f"flow {flow} reads one snapshot file ({source.template}); {len(inputs)} files given",
                             "give the one file holding the whole history")
        targets = [_snapshot_target(inputs[0], source, columns, getattr(module, "ALLOW_EMPTY", False))]
        kind = "snapshot"
    else:
        column = date_column or getattr(module, "DATE_COLUMN", None)
        if column is None:
            raise UsageError(f"flow {flow} reads dated files ({source.template}) and declares no DATE_COLUMN",
                             "pass --date-column COL: the column whose date puts each row into its file")
        targets = _split(inputs, source, column, columns)
        kind = f"dated (one file per {source.unit})"
    return LoadReport(flow, bucket.name, kind, targets)


def load_data(loaded: LoadedProject, backend: Backend, flow: str, inputs: list[Path], *,
              date_column: str | None = None, replace: bool = False) -> LoadReport:
    """Split/copy `inputs` for `flow` and write them into the raw bucket through `backend`."""
    from funnelops.runs.busy import refuse_while_running

    report = plan_load(loaded, flow, inputs, date_column)
    storage = backend.storage
    refuse_while_running(backend.runtime.holders([w.name for w in loaded.spec.workflows]), "load raw data")
    clash = []
    # one listing, then a read of the targets that exist only (a year of days: one call, not 365)
    existing = set(storage.list_objects(report.bucket, _common_folder([t.name for t in report.targets])))
    for t in report.targets:
        old = storage.read_object(report.bucket, t.name) if t.name in existing else None
        if old is None:
            t.state = "new"
        elif old == t.data:
            t.state = "unchanged"
        else:
            t.state = "replaced"
            clash.append(t.name)
    if clash and not replace:
        more = f" and {len(clash) - 3} more" if len(clash) > 3 else ""
        raise UsageError(f"{len(clash)} target file(s) already hold other data: {', '.join(clash[:3])}{more}",
                         "pass --replace to overwrite them; nothing was written")
    for t in report.targets:
        if t.state != "unchanged":
            storage.put_object(report.bucket, t.name, t.data)
    return report


def _common_folder(names: list[str]) -> str:
    """The deepest folder every name is under ("" when they share none)."""
    parts = [n.split("/")[:-1] for n in names]
    common: list[str] = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return "/".join(common)


def _check_input(path: Path, source: Layout) -> None:
    if not path.is_file():
        raise UsageError(f"{path}: no such file" if not path.exists() else f"{path}: not a regular file")
    suffix = path.suffix.lower()
    want = Path(source.template).suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise UsageError(f"{path}: only .csv and .xlsx files can be loaded")
    if suffix != want:
        raise UsageError(f"{path}: the flow reads {want} files ({source.template}), this is {suffix}")
    if suffix == ".xlsx" and not source.snapshot:
        raise UsageError(f"{path}: a workbook is copied as is, so it loads into a snapshot FILES only; "
                         f"this flow reads dated files ({source.template})",
                         "save the rows as CSV and load that, or copy each workbook to its dated name")
    if path.stat().st_size > MAX_INPUT:
        raise UsageError(f"{path}: larger than {MAX_INPUT >> 30} GiB", "split it, or copy it into the raw bucket")


def _snapshot_target(path: Path, source: Layout, columns: tuple[str, ...], allow_empty: bool) -> Target:
    """The snapshot file as is, after the checks a run would make (header, not empty)."""
    data = path.read_bytes()
    if path.suffix.lower() == ".xlsx":
        rows = _workbook_rows(path, columns)
    else:
        opts = source.csv
        line, rows = checks.csv_facts(path, opts.encoding, header=opts.header)
        header = checks.parse_header(line, opts.delimiter, opts.quote)
        if opts.header and header is not None:
            _check_header(columns, header, path)
        _not_empty(path, header if opts.header else ([] if line else None), rows, allow_empty)
    return Target(source.template, rows, [str(path)], data)


def _workbook_rows(path: Path, columns: tuple[str, ...]) -> int:
    from python_calamine import CalamineWorkbook

    from funnelops.flows.raw import sheet_rows

    try:
        sheet = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python(skip_empty_area=False)
        good, bad = sheet_rows(sheet, columns, 0, path.name, file=str(path))
    except checks.FlowSourceError as exc:
        raise UsageError(exc.message, exc.hint) from None
    except Exception as exc:  # calamine's own error types for a corrupt workbook
        raise UsageError(f"{path}: cannot read the workbook: {exc}") from None
    return len(good) + len(bad)


def _check_header(columns: tuple[str, ...], header: list[str], path: Path) -> None:
    try:
        checks.column_positions(columns, header, str(path), file=str(path))
    except checks.FlowSourceError as exc:
        raise UsageError(f"{path}:1: {exc.message}", exc.hint) from None


def _not_empty(path: Path, header: list[str] | None, rows: int, allow_empty: bool) -> None:
    try:
        checks.check_not_empty(str(path), header, rows, allow_empty, file=str(path))
    except checks.FlowSourceError as exc:
        raise UsageError(exc.message, "nothing was written") from None


def _records(text: str, opts: CsvOptions) -> Iterator[tuple[int, str, list[str]]]:
    """(first line number, exact text, fields) of each CSV record of `text`; the text keeps its
    line endings, so a record is written back byte for byte."""
    consumed: list[str] = []

    def lines() -> Iterator[str]:
        for line in io.StringIO(text, newline=""):
            consumed.append(line)
            yield line

    reader = csv.reader(lines(), delimiter=opts.delimiter, quotechar=opts.quote, doublequote=True, strict=False)
    line_no = 1
    for fields in reader:
        raw, consumed[:] = "".join(consumed), []
        yield line_no, raw, fields
        line_no += raw.count("\n") or 1


def _split(inputs: list[Path], source: Layout, column: str, columns: tuple[str, ...]) -> list[Target]:
    """The rows of every input, grouped by the file their date puts them in."""
    opts, unit = source.csv, source.unit
    assert unit is not None
    groups: dict[date, list[str]] = {}
    sources: dict[date, set[str]] = {}
    header_text, header_fields = None, None
    for path in inputs:
        text = _decode(path, opts.encoding)
        records = _records(text, opts)
        first = next(records, None)
        if first is None:
            raise UsageError(f"{path} is empty (0 bytes, not even a header)", "nothing was written")
        if not opts.header:
            raise UsageError(f"flow reads CSV without a header (CSV header False): {path} cannot be split by "
                             "column name", "load files that carry a header, or put the files in place by hand")
        _, head_raw, fields = first
        names = [f.strip().lstrip("\ufeff") if k == 0 else f.strip() for k, f in enumerate(fields)]
        if column not in names:
            raise UsageError(f"{path}:1: no column {column!r}; the columns found are {', '.join(names)}",
                             "name the date column with --date-column COL")
        _check_header(columns, names, path)
        if header_fields is not None and names != header_fields:
            raise UsageError(f"{path}:1: its header differs from {inputs[0]}'s", "load files of one layout together")
        header_text, header_fields = header_text or head_raw, names
        k = names.index(column)
        for line, raw, fields in records:
            if not fields or fields == [""] and not raw.strip("\r\n"):
                continue
            value = fields[k] if k < len(fields) else None
            d = layout.parse_date(value, source.date_formats)
            if d is None:
                shown = "missing" if value is None else repr(value)
                fmt = " or ".join(source.date_formats) or "an ISO date (YYYY-MM-DD) or timestamp"
                raise UsageError(f"{path}:{line}: the {column} value {shown} is not a date",
                                 f"{column} must be {fmt} (the flow's DATE_FORMATS); nothing was written")
            key = _key(unit, d)
            groups.setdefault(key, []).append(raw if raw.endswith("\n") else raw + "\n")
            sources.setdefault(key, set()).add(str(path))
    if not groups:
        raise UsageError(f"no data rows in {', '.join(map(str, inputs))}", "nothing was written")
    assert header_text is not None
    head = header_text if header_text.endswith("\n") else header_text + "\n"
    return [Target(layout.fill(source.template, key), len(rows),
                   sorted(sources[key]), (head + "".join(rows)).encode(opts.encoding))
            for key, rows in sorted(groups.items())]


def _decode(path: Path, encoding: str) -> str:
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line}: not {encoding} text", "set the flow's CSV encoding (e.g. "
                         "CSV = {\"encoding\": \"latin-1\"}) or re-export the file as UTF-8") from None


def _key(unit: str, d: date) -> date:
    if unit == "month":
        return d.replace(day=1)
    if unit == "year":
        return date(d.year, 1, 1)
    return d
