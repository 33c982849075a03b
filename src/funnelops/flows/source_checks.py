"""Checks on raw source files that keep bad deliveries from silently changing trusted data.

Shared by both engines (DuckDB staging in :mod:`funnelops.flows.raw`, Spark staging in
:mod:`funnelops.flows.spark_io`), so a delivery is judged the same way wherever it runs:

- confinement: a source is a regular file inside the raw bucket, never a symbolic link (a link
  could make a run read `/etc/passwd` into trusted data or the quarantine);
- header: the file's header names exactly the flow's `COLUMNS`; in another order the file is
  read by name, with a missing, unexpected or repeated name the file fails, naming them;
- emptiness: a file with no data rows would replace that period's trusted partition with
  nothing, so a header-only file fails the run unless the flow declares `ALLOW_EMPTY`, and a
  0-byte file always does (even an empty extract carries its header: 0 bytes is a failed
  transfer, and there is no header to check);
- completeness: every physical record of a CSV is kept, quarantined or rejected; a quoted field
  that never closes makes DuckDB swallow the rest of the file into one rejected record, which
  is found by comparing against the physical line count and fails the file, naming the line.
"""

from __future__ import annotations

import csv
from pathlib import Path

from funnelops.errors import FunnelopsError

HEADER_LIMIT = 1 << 20          # bytes of a header line we are willing to parse


class FlowSourceError(FunnelopsError):
    """A source file is missing, unreadable or malformed: the run fails and the message names the file."""


def check_confined(raw_root: Path, path: Path) -> None:
    """Refuse `path` unless it and every folder between it and `raw_root` are real (no symlink).

    The bucket root itself may be a link (a home on another disk); what is inside it may not.
    """
    try:
        rel = path.relative_to(raw_root)
    except ValueError:
        raise FlowSourceError(f"source file {path} is outside the raw bucket {raw_root}",
                              file=str(path)) from None
    cur = raw_root
    for part in rel.parts:
        cur = cur / part
        if cur.is_symlink():
            what = "file" if cur == path else "folder"
            raise FlowSourceError(
                f"source {what} {cur.relative_to(raw_root)} in the raw bucket is a symbolic link "
                f"(to {_readlink(cur)}); sources must be regular files inside the bucket",
                "copy the file into the raw bucket instead of linking it", file=str(cur))


def _readlink(p: Path) -> str:
    try:
        return str(p.readlink())
    except OSError:
        return "?"


def parse_header(text: str | None, delimiter: str = ",", quote: str = '"') -> list[str] | None:
    """The column names of a header line (BOM and surrounding blanks removed); None if no line."""
    if text is None:
        return None
    text = text.lstrip("\ufeff").rstrip("\r\n")
    try:
        names = next(csv.reader([text], delimiter=delimiter, quotechar=quote, doublequote=True))
    except (csv.Error, StopIteration):
        names = [text]
    return [n.strip() for n in names]


def column_positions(columns: tuple[str, ...], header: list[str], shown: str,
                     file: str | None = None) -> list[int] | None:
    """For each flow column, its position in the file; None when the file has them in order.

    Raises FlowSourceError naming the missing, unexpected and repeated names: reading such a file
    by position would put values under the wrong column (CANAL read as SEGMENTO).
    """
    header = list(header)
    while header and header[-1] == "":          # trailing empty cells (Excel, a trailing comma)
        header.pop()
    if header == list(columns):
        return None
    missing = [c for c in columns if c not in header]
    unexpected = [h or f"(unnamed column {k + 1})" for k, h in enumerate(header) if h not in columns]
    repeated = sorted({h for h in header if h and header.count(h) > 1})
    if missing or unexpected or repeated:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                ([f"unexpected {', '.join(unexpected)}"] if unexpected else []) + \
                ([f"repeated {', '.join(repeated)}"] if repeated else [])
        raise FlowSourceError(
            f"source file {shown}: its header does not match the flow's COLUMNS ({'; '.join(parts)})",
            "fix the extract's header, or update COLUMNS in the flow file", file=file or shown)
    return [header.index(c) for c in columns]


def csv_facts(path: Path, encoding: str = "utf-8", header: bool = True) -> tuple[str | None, int]:
    """(first line or None for a 0-byte file, physical records after the header).

    A physical record is a non-empty line (DuckDB and the Spark path skip empty lines too); a
    file without a header (`CSV = {"header": False}`) counts its first line as a record too.
    Counted in one buffered pass: about 0.2 s per million lines.
    """
    records = 0
    with open(path, "rb") as f:
        first = f.readline(HEADER_LIMIT)
        if not first:
            return None, 0
        if not first.endswith(b"\n") and len(first) == HEADER_LIMIT:
            f.readline()                         # an absurd header: skip the rest of the line
        if not header and first.strip(b"\r\n"):
            records += 1
        for line in f:
            if line.strip(b"\r\n"):
                records += 1
    return first.decode(encoding, errors="replace"), records


def check_not_empty(shown: str, header: list[str] | None, records: int, allow_empty: bool,
                    file: str | None = None) -> None:
    """An empty source is a failed delivery (it would delete the period's trusted rows)."""
    if records or (allow_empty and header is not None):
        return
    if header is None:
        raise FlowSourceError(
            f"source file {shown} is empty (0 bytes, not even a header); the run stops so the trusted "
            f"data of its period is kept", "re-deliver the extract: an empty extract still carries its "
            "header line (ALLOW_EMPTY accepts header-only files, never 0-byte ones)", file=file or shown)
    raise FlowSourceError(
        f"source file {shown} has a header but no data rows; the run stops so the trusted data of "
        f"its period is kept", "re-deliver the extract; if an empty period is legal for this flow, "
        "set ALLOW_EMPTY = True in its flow file", file=file or shown)


def first_line_of(path: Path, fragment: str) -> int | None:
    """The physical line number (1-based) of the first line of `path` equal to `fragment`."""
    target = fragment.rstrip("\r\n")
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            if raw.decode("utf-8", errors="replace").rstrip("\r\n").lstrip("\ufeff") == target:
                return n
    return None


def swallowed_message(shown: str, path: Path, raw_record: str | None, records: int, accounted: int) -> str:
    """Why a CSV has fewer parsed + rejected records than physical lines, naming the line."""
    lost = records - accounted
    if raw_record:
        head = raw_record.lstrip("\r\n").split("\n", 1)[0]
        line = first_line_of(path, head)
        if line is not None:
            return (f"source file {shown}: line {line} opens a quoted field that is never closed, "
                    f"so the {lost} record(s) after it cannot be read")
    return (f"source file {shown}: {records} records, but only {accounted} could be read or set aside "
            f"({lost} would be lost)")
