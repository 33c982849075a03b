"""Staging raw files and replacing trusted partitions with Spark, on any Hadoop filesystem URI.

The Spark path reads the raw bucket where it lives (``gs://<raw bucket>`` on Dataproc, whose GCS
connector is a Hadoop filesystem; ``file://`` or a plain path in tests), so listing, existence
and deletion go through Hadoop's ``FileSystem`` rather than ``pathlib``. Staging gives a flow
the same DataFrame as :mod:`funnelops.flows.raw` gives it on DuckDB: the raw columns as strings
plus ``_file_index`` and ``_row`` (increasing in file order, so "first occurrence wins" picks the
same row on both engines), and sets aside what DuckDB's CSV reader rejects (rows with too many or
too few fields) with their line and text. Here the physical line is known exactly, so ``_row``
encodes it: ``_row = _file_index * row_base + line``.

CSV is read line by line (``textFile`` + ``zipWithIndex`` per file, parsed with the ``csv``
module): Spark's CSV reader cannot report line numbers or keep a too-long row aside. Each
physical line is one record (kept, quarantined or rejected), so a quoted field that never closes
costs its own line only. Excel workbooks are small and read on the driver with python-calamine,
as on DuckDB. Headers, empty files and symbolic links are judged by the same
:mod:`funnelops.flows.source_checks` as on DuckDB.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING

from funnelops.flows import layout
from funnelops.flows import raw as rawmod
from funnelops.flows import source_checks as checks
from funnelops.flows.args import Period
from funnelops.flows.layout import CsvOptions, Layout
from funnelops.flows.raw import FlowSourceError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

CSV_ROW_BASE = 10 ** 12          # lines per file before `_row` values of two files could overlap
HEADER = "header"                # the record kind of a file's first line


@dataclass
class SparkStaged:
    df: DataFrame                               # the flow's input
    rejects: DataFrame                          # (_file_index, line, rule, raw_record)
    files: list[tuple[int, date, str]]          # (index, extract date, path relative to the bucket)
    row_base: int
    cached: list = field(default_factory=list)  # RDDs cached for this flow, released after writing
    out_of_period: dict[int, int] = field(default_factory=dict)  # snapshot rows of other periods per file

    def release(self) -> None:
        for rdd in self.cached:
            rdd.unpersist()


def join_uri(root: str, rel: str) -> str:
    return root.rstrip("/") + "/" + rel.lstrip("/")


def _fs(session, uri: str):
    """The Hadoop FileSystem that serves `uri` (local, gs://, hdfs://...)."""
    jvm = session.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(session.sparkContext._jsc.hadoopConfiguration()), path


def list_dirs(session, uri: str) -> list[str]:
    """Names of the sub-folders of `uri` (none when it does not exist)."""
    fs, path = _fs(session, uri)
    if not fs.exists(path):
        return []
    return sorted(s.getPath().getName() for s in fs.listStatus(path) if s.isDirectory())


def delete(session, uri: str) -> None:
    fs, path = _fs(session, uri)
    fs.delete(path, True)


def source_files(session, raw_root: str, source: Layout | str, period: Period | None) -> list[tuple[date, str]]:
    """(extract date, path relative to `raw_root`) of the period's files, like raw.source_files
    (`period` already widened to whole months for monthly sources, as the caller does there).

    One glob of the whole template (a prefix listing on GCS) then a filter on the date in the
    name, instead of one existence check per day: a YEAR run of a daily extract would otherwise
    make 365 round trips per flow.
    """
    lay = layout.as_layout(source)
    template = lay.template
    if lay.unit is None:
        return _snapshot_file(session, raw_root, template, period)
    glob = layout.glob_of(template)
    rx = layout.pattern(template)
    fs, root_path = _fs(session, raw_root)
    root = root_path.toUri().getPath().rstrip("/") + "/"
    statuses = fs.globStatus(session.sparkContext._jvm.org.apache.hadoop.fs.Path(join_uri(raw_root, glob))) or []
    out = []
    for st in statuses:
        if not st.isFile():
            continue
        full = st.getPath().toUri().getPath()
        rel = full[len(root):] if full.startswith(root) else full
        m = rx.match(rel)
        if not m:
            continue
        d = layout.match_date(m)
        if d is None:
            continue
        if period is not None and not (period.start <= d < period.end):
            continue
        local = _local_path(raw_root)
        if local is not None:            # gs:// has no links; a local folder may
            checks.check_confined(local, local / rel)
        out.append((d, rel))
    return sorted(out)


def _snapshot_file(session, raw_root: str, rel: str, period: Period | None) -> list[tuple[date, str]]:
    """A snapshot source: its one file when it exists (dated as :func:`raw.snapshot_date` does)."""
    fs, path = _fs(session, join_uri(raw_root, rel))
    if not fs.exists(path) or not fs.getFileStatus(path).isFile():
        return []
    local = _local_path(raw_root)
    if local is not None:
        checks.check_confined(local, local / rel)
    return [(rawmod.snapshot_date(period, fs.getFileStatus(path).getModificationTime() / 1000), rel)]


def _local_path(uri: str) -> Path | None:
    if uri.startswith("file://"):
        return Path(uri[len("file://"):])
    return None if re.match(r"^[a-z][a-z0-9+.-]*://", uri) else Path(uri)


# -- CSV ---------------------------------------------------------------------------------------
def parse_line(text: str, ncols: int, opts: CsvOptions = CsvOptions()) -> tuple[str | None, list[str | None]]:
    """One CSV line -> (reject rule or None, cells). Empty unquoted fields are NULL, as in DuckDB."""
    try:
        cells = next(csv.reader([text], delimiter=opts.delimiter, quotechar=opts.quote, doublequote=True,
                                strict=True))
    except (csv.Error, StopIteration):
        return "unparsable_line", []
    if len(cells) != ncols:
        return "column_count", []
    return None, [c if c != "" else None for c in cells]


def _csv_records(file_index: int, ncols: int, opts: CsvOptions = CsvOptions()):
    """The mapper of one file's (line bytes, 0-based index) pairs, decoded with the source's
    encoding: the header (line 1, as DuckDB's `header = true` takes it) becomes a HEADER record
    for the caller to check; blank lines are skipped. A stray BOM can only open a file, so it
    sits on the header line and goes with it."""

    def parse(pair):
        raw, idx = pair
        text = raw.decode(opts.encoding, errors="replace") if isinstance(raw, bytes) else raw
        line = idx + 1
        if line == 1 and opts.header:
            return [(HEADER, file_index, line, text, [])]
        text = text[:-1] if text.endswith("\r") else text
        if text.strip() == "":
            return []
        if line == 1:
            text = text.lstrip("\ufeff")
        rule, cells = parse_line(text, ncols, opts)
        return [(rule, file_index, line, text, cells)]

    return parse


def _lines(sc, uri: str, encoding: str):
    """(line, 0-based index) pairs of one file. Hadoop's text reader decodes UTF-8 only (other
    bytes become U+FFFD before Python sees them), so a file in another encoding is read whole as
    bytes and split here, each line decoded by the mapper."""
    if encoding == "utf-8":
        return sc.textFile(uri, minPartitions=1).zipWithIndex()

    def split(pair):
        data = pair[1]
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        return [(line, k) for k, line in enumerate(lines)]

    return sc.binaryFiles(uri, minPartitions=1).flatMap(split)


def _check_files(parsed, files, columns, allow_empty: bool, opts: CsvOptions = CsvOptions()) -> dict[int, list[int]]:
    """Check each file's header and emptiness on the parsed records (two small jobs over the
    cached RDD); returns the column positions of files whose header has another order."""
    heads = dict(parsed.filter(lambda r: r[0] == HEADER).map(lambda r: (r[1], r[3])).collect())
    counts = parsed.filter(lambda r: r[0] != HEADER).map(lambda r: r[1]).countByValue()
    perms = {}
    for i, (_, rel) in enumerate(files):
        header = checks.parse_header(heads.get(i), opts.delimiter, opts.quote)
        if not opts.header:
            header = [] if counts.get(i, 0) else None
        elif header is not None:
            pos = checks.column_positions(columns, header, rel)
            if pos is not None:
                perms[i] = pos
        checks.check_not_empty(rel, header, counts.get(i, 0), allow_empty)
    return perms


def stage_csv(session, raw_root: str, files: list[tuple[date, str]], columns: tuple[str, ...],
              allow_empty: bool = False, source: Layout | None = None, period: Period | None = None) -> SparkStaged:
    from pyspark.sql import types as T

    import sys

    from pyspark import cloudpickle

    # The parsers run in Python workers, which may not have funnelops importable (a cluster's
    # workers get it from the launcher's zip only when pyFiles are set): ship them by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cloudpickle.register_pickle_by_value(layout)
    sc = session.sparkContext
    ncols = len(columns)
    opts = source.csv if source is not None else CsvOptions()
    parts = []
    for i, (_, rel) in enumerate(files):
        parts.append(_lines(sc, join_uri(raw_root, rel), opts.encoding).flatMap(_csv_records(i, ncols, opts)))
    parsed = (sc.union(parts) if len(parts) > 1 else parts[0]).cache()
    perms = _check_files(parsed, files, columns, allow_empty, opts)
    base = CSV_ROW_BASE

    def kept(r):
        cells = r[4] if r[1] not in perms else [r[4][p] for p in perms[r[1]]]
        return (*cells, r[1], r[1] * base + r[2])

    good = parsed.filter(lambda r: r[0] is None).map(kept)
    out: dict[int, int] = {}
    if source is not None and source.filters and period is not None:
        good, out = _filter_period(good, columns, source, period)
    bad = parsed.filter(lambda r: r[0] not in (None, HEADER)).map(lambda r: (r[1], r[2], r[0], r[3]))
    schema = T.StructType([T.StructField(c, T.StringType()) for c in columns]
                          + [T.StructField("_file_index", T.IntegerType()), T.StructField("_row", T.LongType())])
    rej_schema = T.StructType([T.StructField("_file_index", T.IntegerType()), T.StructField("line", T.LongType()),
                               T.StructField("rule", T.StringType()), T.StructField("raw_record", T.StringType())])
    listed = [(i, d, rel) for i, (d, rel) in enumerate(files)]
    return SparkStaged(session.createDataFrame(good, schema), session.createDataFrame(bad, rej_schema),
                       listed, base, [parsed], out)


def _outside(source: Layout, period: Period, columns: tuple[str, ...]):
    """The test a staged row `(*cells, _file_index, _row)` fails when it belongs to another period
    (a date that does not parse stays in: the flow's rules judge it)."""
    k, formats, start, end = columns.index(source.date_column), source.date_formats, period.start, period.end

    def outside(row) -> bool:
        d = layout.parse_date(row[k], formats)
        return d is not None and not (start <= d < end)

    return outside


def _filter_period(good, columns: tuple[str, ...], source: Layout, period: Period):
    """Rows of the period, and the count per file of the rows of other periods (one small job)."""
    outside = _outside(source, period, columns)
    n = len(columns)
    out = dict(good.filter(outside).map(lambda r: r[n]).countByValue())
    return good.filter(lambda r: not outside(r)), out


# -- Excel -------------------------------------------------------------------------------------
def read_local(uri: str) -> bytes:
    """A whole local file (`file://` URI or plain path); the default of the Excel staging.

    Other filesystems (``gs://``) are read by a function the backend injects (see the gcp flows
    runtime), so this module imports no client library.
    """
    if re.match(r"^[a-z][a-z0-9+.-]*://", uri) and not uri.startswith("file://"):
        raise FlowSourceError(f"cannot read {uri}: no reader for this filesystem was given",
                              "run the gcp path through its flows runtime (FUNNELOPS_BACKEND=gcp)")
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    with open(path, "rb") as f:
        return f.read()


def stage_xlsx(session, raw_root: str, files: list[tuple[date, str]], columns: tuple[str, ...],
               read_bytes: Callable[[str], bytes] | None = None, allow_empty: bool = False,
               source: Layout | None = None, period: Period | None = None) -> SparkStaged:
    from pyspark.sql import types as T
    from python_calamine import CalamineWorkbook

    rows, rejects = [], []
    for i, (_, rel) in enumerate(files):
        try:
            data = (read_bytes or read_local)(join_uri(raw_root, rel))
            sheet = (CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0)
                     .to_python(skip_empty_area=False))
        except Exception as exc:  # a missing object, a corrupt workbook: name the file
            raise FlowSourceError(f"cannot read source workbook {rel}: {exc}",
                                  "replace it with a valid .xlsx file", file=rel) from None
        good, bad = rawmod.sheet_rows(sheet, columns, i, rel)
        checks.check_not_empty(rel, [], len(good) + len(bad), allow_empty)
        rows += good
        rejects += bad
    schema = T.StructType([T.StructField(c, T.StringType()) for c in columns]
                          + [T.StructField("_file_index", T.IntegerType()), T.StructField("_row", T.LongType())])
    rej_schema = T.StructType([T.StructField("_file_index", T.IntegerType()), T.StructField("line", T.LongType()),
                               T.StructField("rule", T.StringType()), T.StructField("raw_record", T.StringType())])
    listed = [(i, d, rel) for i, (d, rel) in enumerate(files)]
    out: dict[int, int] = {}
    if source is not None and source.filters and period is not None:
        outside = _outside(source, period, columns)
        for r in rows:
            if outside(r):
                out[r[len(columns)]] = out.get(r[len(columns)], 0) + 1
        rows = [r for r in rows if not outside(r)]
    return SparkStaged(session.createDataFrame(rows, schema), session.createDataFrame(rejects, rej_schema),
                       listed, rawmod.XLSX_ROW_BASE, out_of_period=out)


def stage(session, raw_root: str, files: list[tuple[date, str]], columns: tuple[str, ...],
          allow_empty: bool = False, read_bytes: Callable[[str], bytes] | None = None,
          source: Layout | None = None, period: Period | None = None) -> SparkStaged:
    """Stage all-CSV or all-Excel `files`; `read_bytes` reads a whole workbook (default: local);
    a snapshot `source` read for a `period` keeps that period's rows (see raw.stage)."""
    if all(rel.lower().endswith(".csv") for _, rel in files):
        return stage_csv(session, raw_root, files, columns, allow_empty, source, period)
    if all(rel.lower().endswith(".xlsx") for _, rel in files):
        return stage_xlsx(session, raw_root, files, columns, read_bytes, allow_empty, source, period)
    raise FlowSourceError("source files must be all .csv or all .xlsx")
