"""The raw layer as delivered: finding a period's source files and staging them for a flow.

Staging is the runtime's job, not the flow's: it reads the files with plain DuckDB (CSV with an
explicit all-VARCHAR schema, BOM-tolerant, rows with the wrong number of columns set aside with
their line in a rejects table; Excel through python-calamine) and exposes one view per flow with
the raw columns plus lineage: `_file_index` (which file) and `_row` (the row's place in the input,
in file order). The flow then sees a plain DataFrame of strings.

Before reading, every file passes :mod:`funnelops.flows.source_checks` (regular file inside the
bucket, header matching `COLUMNS` by name, not empty); after the flow ran, :func:`check_complete`
proves that every physical record was kept, quarantined or rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from funnelops.flows import layout
from funnelops.flows import source_checks as checks
from funnelops.flows.args import Period
from funnelops.flows.layout import CsvOptions, Layout
from funnelops.flows.source_checks import FlowSourceError

XLSX_ROW_BASE = 1_000_000  # Excel rows: _row = file index * base + sheet row, so the line is recoverable


@dataclass
class Staged:
    view: str
    kind: str                                   # "csv" or "xlsx"
    files: list[tuple[int, date, str]]          # (index, extract date, path relative to the bucket)
    rejects: str                                # SQL: (_file_index, line, error_type, raw_record)
    extra: dict = field(default_factory=dict)
    records: dict[int, int] = field(default_factory=dict)   # physical records per file index
    paths: dict[int, Path] = field(default_factory=dict)
    base: str = ""                              # every staged row (before the period filter); "" = view
    out_of_period: dict[int, int] = field(default_factory=dict)  # rows of other periods per file index
    header_lines: int = 1                       # lines before the first record of a CSV file

    @property
    def all_rows(self) -> str:
        return self.base or self.view


def _is_daily(template: str) -> bool:
    """Whether a dated template names one file per day (kept for callers of the old name)."""
    return layout.unit_of(template) == "day"


def source_files(raw_root: Path, source: Layout | str, period: Period | None) -> list[tuple[date, Path]]:
    """(extract date, path) of the period's files that exist; every file when `period` is None.

    `period` is already widened to the source's unit (see :func:`layout.widen`). A snapshot is
    its one file, dated by the period it is read for (its quarantine partition), or by its
    modification day when read whole.
    """
    lay = layout.as_layout(source)
    template = lay.template
    if lay.unit is None:
        p = raw_root / template
        if not (p.is_symlink() or p.is_file()):
            return []
        checks.check_confined(raw_root, p)
        return [(snapshot_date(period, p.stat().st_mtime), p)]
    if period is None:
        rx = layout.pattern(template)
        out = []
        for p in raw_root.glob(layout.glob_of(template)):
            m = rx.match(p.relative_to(raw_root).as_posix())
            if not m:
                continue
            d = layout.match_date(m)
            if d is None:
                continue
            checks.check_confined(raw_root, p)
            out.append((d, p))
        return sorted(out)
    out = []
    for d in layout.period_dates(lay.unit, period):
        p = raw_root / layout.fill(template, d)
        if p.is_symlink() or p.is_file():      # a link (even a dangling one) is refused, not skipped
            checks.check_confined(raw_root, p)
            out.append((d, p))
    return out


def snapshot_date(period: Period | None, mtime: float) -> date:
    """The extract date of a snapshot file: the start of the period read, else its modification day."""
    from datetime import UTC, datetime

    return period.start if period is not None else datetime.fromtimestamp(mtime, UTC).date()


def expected_files(source: Layout | str, period: Period | None) -> str:
    lay = layout.as_layout(source)
    if lay.unit is None:
        return lay.template
    if period is None:
        return layout.glob_of(lay.template)
    dates = layout.period_dates(lay.unit, period)
    first = layout.fill(lay.template, dates[0])
    return first if len(dates) == 1 else f"{first} ... (one per {lay.unit})"


def _check_readable(raw_root: Path, files: list[tuple[date, Path]]) -> None:
    for _, p in files:
        try:
            with open(p, "rb") as f:
                f.read(1)
        except OSError as exc:
            raise FlowSourceError(f"cannot read source file {p.relative_to(raw_root)}: {exc.strerror or exc}",
                                  "check the file's permissions, or replace it with a readable copy",
                                  file=str(p)) from None


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def stage(con, name: str, raw_root: Path, files: list[tuple[date, Path]], columns: tuple[str, ...],
          allow_empty: bool = False, source: Layout | None = None, period: Period | None = None) -> Staged:
    """Stage `files` as view `name` in the DuckDB connection `con`; a file whose header does not
    name `columns`, or that has no data rows (unless `allow_empty`), fails before anything is read.

    A snapshot `source` read for a `period` keeps only the rows whose DATE_COLUMN falls in it
    (or cannot be parsed: the flow's rules judge those); the others are counted per file as
    out of period, so the record count still closes."""
    opts = source.csv if source is not None else CsvOptions()
    _check_readable(raw_root, files)
    listed = [(i, d, p.relative_to(raw_root).as_posix()) for i, (d, p) in enumerate(files)]
    con.execute(f"CREATE OR REPLACE TABLE {name}_files (_file_index INTEGER, extract_date DATE, "
                f"source_file VARCHAR, abs_path VARCHAR)")
    con.executemany(f"INSERT INTO {name}_files VALUES (?, ?, ?, ?)",
                    [(i, d, rel, str(files[i][1])) for i, d, rel in listed])
    if all(p.suffix.lower() == ".csv" for _, p in files):
        staged = _stage_csv(con, name, raw_root, files, columns, listed, allow_empty, opts)
    elif all(p.suffix.lower() == ".xlsx" for _, p in files):
        staged = _stage_xlsx(con, name, raw_root, files, columns, listed, allow_empty)
    else:
        raise FlowSourceError(f"flow {name}: source files must be all .csv or all .xlsx")
    staged.paths = {i: p for i, (_, p) in enumerate(files)}
    if source is not None and source.filters and period is not None:
        _filter_period(con, staged, columns, source, period)
    return staged


def _date_map(con, table: str, column: str, formats: tuple[str, ...]) -> str:
    """A table `(v, d)` giving the date of each distinct value of `column` in `table`, parsed
    by :func:`layout.parse_date`, the very function the Spark path calls (both engines put a
    row in the same period). Distinct values of a date column are few: one parse per value."""
    mapping = f"{table}_dates"
    values = [r[0] for r in con.execute(f"SELECT DISTINCT {_ident(column)} FROM {table} "
                                        f"WHERE {_ident(column)} IS NOT NULL").fetchall()]
    con.execute(f"CREATE OR REPLACE TABLE {mapping} (v VARCHAR, d DATE)")
    pairs = [(v, layout.parse_date(v, formats)) for v in values]
    if pairs:
        con.executemany(f"INSERT INTO {mapping} VALUES (?, ?)", pairs)
    return mapping


def _filter_period(con, staged: Staged, columns: tuple[str, ...], source: Layout, period: Period) -> None:
    """Keep the rows of `period` in the flow's view; count the rows of other periods.

    The staged rows are materialized once (`<view>_all`, with `_row` numbered over the whole
    file, so a quarantined row's line stays right) and the view filters them."""
    assert source.date_column is not None
    view, base, dc = staged.view, f"{staged.view}_all", _ident(source.date_column)
    if staged.kind == "csv":
        con.execute(f"CREATE OR REPLACE TABLE {base} AS SELECT * FROM {view}")
        con.execute(f"DROP VIEW {view}")
    else:
        con.execute(f"ALTER TABLE {view} RENAME TO {base}")
    mapping = _date_map(con, base, source.date_column, source.date_formats)
    outside = f"m.d < DATE '{period.start}' OR m.d >= DATE '{period.end}'"
    cols = ", ".join(f"a.{_ident(c)}" for c in (*columns, "_file_index", "_row"))
    joined = f"{base} a LEFT JOIN {mapping} m ON a.{dc} = m.v"
    con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT {cols} FROM {joined} "
                f"WHERE NOT coalesce({outside}, false) ORDER BY a._row")
    staged.base = base
    staged.out_of_period = dict(con.execute(f"SELECT a._file_index, count(*) FROM {joined} WHERE {outside} "
                                            f"GROUP BY 1").fetchall())


def _by_name(columns: tuple[str, ...], positions: dict[int, list[int]]) -> str:
    """The select list that reads each column by name: read_csv names the fields by position
    (as `columns`), so for a file with another column order, column k is the field named
    `columns[pos[k]]` of that file's rows."""
    out = []
    for k, c in enumerate(columns):
        branches = [f"WHEN {i} THEN {_ident(columns[pos[k]])}" for i, pos in positions.items() if pos[k] != k]
        out.append(f"CASE file_index {' '.join(branches)} ELSE {_ident(c)} END AS {_ident(c)}"
                   if branches else _ident(c))
    return ", ".join(out)


def _stage_csv(con, name, raw_root, files, columns, listed, allow_empty, opts: CsvOptions) -> Staged:
    records, positions = {}, {}
    for i, (_, p) in enumerate(files):
        shown = p.relative_to(raw_root).as_posix()
        line, records[i] = checks.csv_facts(p, opts.encoding, header=opts.header)
        header = checks.parse_header(line, opts.delimiter, opts.quote)
        if not opts.header:
            header = None if line is None else []
        elif header is not None:
            pos = checks.column_positions(columns, header, shown, file=str(p))
            if pos is not None:
                positions[i] = pos
        checks.check_not_empty(shown, header, records[i], allow_empty, file=str(p))
    paths = "[" + ", ".join(_sql_str(str(p)) for _, p in files) + "]"
    schema = "{" + ", ".join(f"{_sql_str(c)}: 'VARCHAR'" for c in columns) + "}"
    cols = _by_name(columns, positions)
    con.execute(
        f"CREATE OR REPLACE VIEW {name} AS SELECT {cols}, CAST(file_index AS INTEGER) AS _file_index, "
        f"row_number() OVER () AS _row FROM read_csv({paths}, header = {str(opts.header).lower()}, "
        f"columns = {schema}, auto_detect = false, delim = {_sql_str(opts.delimiter)}, "
        f"quote = {_sql_str(opts.quote)}, escape = {_sql_str(opts.quote)}, "
        f"encoding = {_sql_str(opts.encoding)}, store_rejects = true, "
        f"rejects_table = '{name}_rej', rejects_scan = '{name}_rejscan')")
    rejects = (f"SELECT f._file_index, e.line, "
               f"CASE WHEN e.error_type IN ('TOO MANY COLUMNS', 'MISSING COLUMNS') THEN 'column_count' "
               f"ELSE 'unparsable_line' END AS rule, e.csv_line AS raw_record "
               f"FROM (SELECT DISTINCT ON (s.file_path, e.line) s.file_path, e.line, e.error_type, e.csv_line "
               f"      FROM {name}_rej e JOIN {name}_rejscan s USING (scan_id, file_id) "
               f"      ORDER BY s.file_path, e.line, e.error_type) e "
               f"JOIN {name}_files f ON f.abs_path = e.file_path")
    return Staged(name, "csv", listed, rejects, records=records, header_lines=1 if opts.header else 0)


def _cell(v) -> str | None:
    if v is None or v == "":
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def _header_row(sheet: list, columns: tuple[str, ...]) -> int | None:
    """The header row: the first row naming at least half of `columns` (a title row above it
    names none); its exact match against `columns` is checked by the caller."""
    need = max(1, (len(columns) + 1) // 2)
    for r, cells in enumerate(sheet):
        names = {str(c).strip() for c in cells if c is not None}
        if len(names & set(columns)) >= need:
            return r
    return None


def sheet_rows(sheet: list, columns: tuple[str, ...], i: int, shown, file: str | None = None) -> tuple[list, list]:
    """The rows of a first sheet after its header row, each column read under its header name,
    shared by both engines: `(*cells, i, _row)` kept and `(i, line, rule, raw)` rejected.
    Blank rows are skipped; a row with non-empty cells beyond the header is rejected."""
    header_at = _header_row(sheet, columns)
    if header_at is None:
        raise FlowSourceError(f"source workbook {shown} has no header row naming the flow's COLUMNS "
                              f"({', '.join(columns)})", "the first sheet must hold the table, under a header row",
                              file=file or str(shown))
    header = ["" if v is None else str(v).strip() for v in sheet[header_at]]
    pos = checks.column_positions(columns, header, str(shown), file=file) or list(range(len(columns)))
    rows, rejects = [], []
    for r in range(header_at + 1, len(sheet)):
        cells = [_cell(v) for v in sheet[r]]
        if all(c is None for c in cells):
            continue
        line = r + 1
        if any(c is not None for c in cells[len(columns):]):
            rejects.append((i, line, "column_count", ",".join(c or "" for c in cells)))
            continue
        cells = (cells + [None] * len(columns))[:len(columns)]
        rows.append((*(cells[p] for p in pos), i, i * XLSX_ROW_BASE + line))
    return rows, rejects


def _stage_xlsx(con, name, raw_root, files, columns, listed, allow_empty) -> Staged:
    """Read the first sheet of each workbook: rows after the header row (the row whose first cell
    is the first column name); blank rows are skipped, extra non-empty cells are rejected."""
    from python_calamine import CalamineWorkbook

    rows, rejects, records = [], [], {}
    for i, (_, p) in enumerate(files):
        try:
            sheet = CalamineWorkbook.from_path(str(p)).get_sheet_by_index(0).to_python(skip_empty_area=False)
        except Exception as exc:  # calamine raises its own error types for corrupt files
            raise FlowSourceError(f"cannot read source workbook {p.relative_to(raw_root)}: {exc}",
                                  "replace it with a valid .xlsx file", file=str(p)) from None
        good, bad = sheet_rows(sheet, columns, i, p.relative_to(raw_root), file=str(p))
        records[i] = len(good) + len(bad)
        checks.check_not_empty(p.relative_to(raw_root).as_posix(), [], records[i], allow_empty,
                               file=str(p))
        rows += good
        rejects += bad
    cols = ", ".join(f"{_ident(c)} VARCHAR" for c in columns)
    con.execute(f"CREATE OR REPLACE TABLE {name} ({cols}, _file_index INTEGER, _row BIGINT)")
    if rows:
        con.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * (len(columns) + 2))})", rows)
    con.execute(f"CREATE OR REPLACE TABLE {name}_rej (_file_index INTEGER, line BIGINT, rule VARCHAR, raw_record VARCHAR)")
    if rejects:
        con.executemany(f"INSERT INTO {name}_rej VALUES (?, ?, ?, ?)", rejects)
    return Staged(name, "xlsx", listed, f"SELECT _file_index, line, rule, raw_record FROM {name}_rej",
                  records=records)


def line_sql(staged: Staged, checked: str) -> str:
    """SQL giving `(_file_index, _row, source_line)` for the quarantined rows of table `checked`.

    CSV: a row's line is its place among the accepted rows of its file, plus the header, plus the
    rejected lines before it (line r_j, j-th reject, precedes accepted row k when r_j - j <= k).
    """
    if staged.kind == "xlsx":
        return (f"SELECT _file_index, _row, CAST(_row - _file_index * {XLSX_ROW_BASE} AS BIGINT) AS source_line "
                f"FROM {checked} WHERE dq_rule IS NOT NULL")
    # rows the period filter left out still take their place in the file: number from all rows
    firsts_from = staged.base or checked
    return f"""
        WITH firsts AS (SELECT _file_index, min(_row) AS r0 FROM {firsts_from} GROUP BY _file_index),
        rej AS (SELECT _file_index, line, row_number() OVER (PARTITION BY _file_index ORDER BY line) AS j
                FROM ({staged.rejects})),
        q AS (SELECT c._file_index, c._row, c._row - f.r0 + 1 AS k
              FROM {checked} c JOIN firsts f USING (_file_index) WHERE c.dq_rule IS NOT NULL)
        SELECT q._file_index, q._row,
               CAST(q.k + {staged.header_lines} + (SELECT count(*) FROM rej WHERE rej._file_index = q._file_index
                                                         AND rej.line - rej.j <= q.k) AS BIGINT) AS source_line
        FROM q"""


def check_complete(con, staged: Staged, checked: str, flow: str) -> None:
    """Fail unless every physical record of every file is in `checked` (kept or quarantined) or
    among the staging rejects: nothing a run reads may vanish without a trace.

    The fast path compares counts. A CSV short of records is looked at again: quoted values
    that span lines make fewer records than lines (legal); a reject spanning lines is a quoted
    field that never closed and swallowed the lines after it (the file fails, naming the line);
    otherwise the flow's transform dropped rows.
    """
    got = dict(con.execute(f"SELECT _file_index, count(*) FROM {checked} GROUP BY 1").fetchall())
    rej = dict(con.execute(f"SELECT _file_index, count(*) FROM ({staged.rejects}) GROUP BY 1").fetchall())
    out = staged.out_of_period
    short = [i for i, n in staged.records.items() if got.get(i, 0) + rej.get(i, 0) + out.get(i, 0) < n]
    if not short:
        return
    staged_rows = {i: (0, 0) for i in short}
    if staged.kind == "csv":
        cols = [r[0] for r in con.execute(f"DESCRIBE {staged.view}").fetchall() if not r[0].startswith("_")]
        newlines = " + ".join(f"coalesce(length({_ident(c)}) - length(replace({_ident(c)}, chr(10), '')), 0)"
                              for c in cols) or "0"
        staged_rows.update({i: (n, int(nl or 0)) for i, n, nl in con.execute(
            f"SELECT _file_index, count(*), sum({newlines}) FROM {staged.all_rows} "
            f"WHERE _file_index IN ({', '.join(str(i) for i in short)}) GROUP BY 1").fetchall()})
    shown = {i: rel for i, _, rel in staged.files}
    for i in short:
        n, extra_lines = staged_rows[i]
        if staged.kind == "csv" and n + extra_lines + rej.get(i, 0) < staged.records[i]:
            spanning = con.execute(
                f"SELECT raw_record FROM ({staged.rejects}) WHERE _file_index = ? "
                f"AND strpos(trim(raw_record, chr(10) || chr(13)), chr(10)) > 0 ORDER BY line LIMIT 1",
                [i]).fetchone()
            raise FlowSourceError(
                checks.swallowed_message(shown[i], staged.paths[i], spanning[0] if spanning else None,
                                         staged.records[i], n + rej.get(i, 0)),
                "fix the quoting in the extract and re-deliver it; the trusted data was not changed",
                file=str(staged.paths[i]))
        given = (n if staged.kind == "csv" else staged.records[i] - rej.get(i, 0)) - out.get(i, 0)
        if got.get(i, 0) < given:
            raise FlowSourceError(
                f"trusted flow {flow}: transform() returned {got.get(i, 0)} of the {given} rows of {shown[i]}; "
                f"rows must be marked with a dq_rule, never filtered out",
                "quarantine unwanted rows with a rule instead of filtering them")
