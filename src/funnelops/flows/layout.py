"""How a trusted flow's raw source is laid out, read from its module constants.

Two layouts, as teams deliver extracts:

- *dated*: `FILES` carries date placeholders (`{yyyy}` `{mm}` `{dd}` `{yyyymm}` `{yyyymmdd}`), one
  file per day, month or year; a run reads the files of its period. The placeholders must name a
  unit: a day (`{yyyymmdd}`, or `{dd}` with `{yyyymm}` or `{yyyy}`+`{mm}`), a month (`{yyyymm}` or
  `{yyyy}`+`{mm}`) or a year (`{yyyy}` alone). `{mm}` or `{dd}` without a year cannot identify a
  period's files, so such a flow is refused when it is loaded, naming its file.
- *snapshot*: `FILES` has no placeholder (`"crm/leads.csv"`): one file holding the whole history,
  read on every run and filtered to the run's period by `DATE_COLUMN` (a raw column, parsed with
  `DATE_FORMATS` when given, else as an ISO date or timestamp). Rows of other periods are not
  quarantined (they belong to other runs) but counted as *out of period*, so kept + quarantined +
  rejected + out of period is every physical record. `PERIOD_FILTER = False` reads the file whole
  on every run (reference data): the run then replaces the flow's whole table.

`CSV = {"delimiter": ",", "quote": '"', "encoding": "utf-8", "header": True}` sets the dialect of
a CSV source, for both engines and for the record counting. This module is pure (no engine, no
I/O) so `validate`, `data load` and both engines judge a flow file the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from types import ModuleType
from typing import Any

from funnelops.flows.args import Period, _add_months

PLACEHOLDERS = ("yyyymmdd", "yyyymm", "yyyy", "mm", "dd")
_PH = re.compile(r"\{([^{}]*)\}")
_GROUP = {"yyyymmdd": r"\d{8}", "yyyymm": r"\d{6}", "yyyy": r"\d{4}", "mm": r"\d{2}", "dd": r"\d{2}"}
# DuckDB reads these without an extension; the record counting splits lines on b"\n", which
# holds for every one of them (UTF-16 would not).
ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "latin-1": "latin-1", "latin1": "latin-1",
             "iso-8859-1": "latin-1"}
CSV_KEYS = ("delimiter", "quote", "encoding", "header")


@dataclass(frozen=True)
class CsvOptions:
    """A CSV source's dialect: one-character delimiter and quote (also the escape, doubled)."""

    delimiter: str = ","
    quote: str = '"'
    encoding: str = "utf-8"     # a Python codec name among ENCODINGS' values
    header: bool = True


@dataclass(frozen=True)
class Layout:
    """One flow's source layout: `unit` is "day"/"month"/"year", or None for a snapshot."""

    template: str
    unit: str | None
    date_column: str | None = None
    date_formats: tuple[str, ...] = ()
    period_filter: bool = True
    csv: CsvOptions = CsvOptions()

    @property
    def snapshot(self) -> bool:
        return self.unit is None

    @property
    def filters(self) -> bool:
        """Whether period runs keep only the rows whose DATE_COLUMN falls in the period."""
        return self.snapshot and self.period_filter and self.date_column is not None


def placeholders(template: str) -> list[str]:
    """The `{...}` names of a template, in order (unknown names included, for the error)."""
    return _PH.findall(template)


def unit_of(template: str) -> str | None:
    """"day", "month", "year", or None (no placeholder: a snapshot); raises ValueError when the
    placeholders are unknown or cannot identify a period's files."""
    names = placeholders(template)
    unknown = sorted({n for n in names if n not in PLACEHOLDERS})
    if unknown or ("{" in _PH.sub("", template) or "}" in _PH.sub("", template)):
        shown = ", ".join("{" + n + "}" for n in unknown) or "a stray brace"
        raise ValueError(f"FILES has {shown}; the date placeholders are "
                         + " ".join("{" + p + "}" for p in PLACEHOLDERS))
    s = set(names)
    if not s:
        return None
    has_month = "yyyymm" in s or {"yyyy", "mm"} <= s
    if "yyyymmdd" in s or ("dd" in s and has_month):
        return "day"
    if has_month and "dd" not in s:
        return "month"
    if s == {"yyyy"}:
        return "year"
    raise ValueError(f"FILES placeholders {' '.join('{' + n + '}' for n in names)} cannot identify a "
                     "period's files (a day needs {yyyymmdd}, or {dd} with {yyyymm} or {yyyy}+{mm}; a month "
                     "{yyyymm} or {yyyy}+{mm}; a year {yyyy})")


def fill(template: str, d: date) -> str:
    values = {"yyyymmdd": f"{d:%Y%m%d}", "yyyymm": f"{d:%Y%m}", "yyyy": f"{d:%Y}", "mm": f"{d:%m}", "dd": f"{d:%d}"}
    return _PH.sub(lambda m: values[m.group(1)], template)


def glob_of(template: str) -> str:
    return _PH.sub("*", template)


def pattern(template: str) -> re.Pattern:
    """A regex matching the template's file names; each placeholder is a named group (a repeated
    one must repeat the same digits)."""
    out, seen, pos = [], set(), 0
    for m in _PH.finditer(template):
        out.append(re.escape(template[pos:m.start()]))
        name = m.group(1)
        out.append(f"(?P={name})" if name in seen else f"(?P<{name}>{_GROUP[name]})")
        seen.add(name)
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("^" + "".join(out) + "$")


def match_date(m: re.Match) -> date | None:
    """The date a matched file name carries (day 1 for monthly, Jan 1 for yearly files); None
    when it is no date or its placeholders disagree (`2024/03/x_20240405.csv`)."""
    g = m.groupdict()
    years, months, days = set(), set(), set()
    if g.get("yyyymmdd"):
        years.add(g["yyyymmdd"][:4])
        months.add(g["yyyymmdd"][4:6])
        days.add(g["yyyymmdd"][6:])
    if g.get("yyyymm"):
        years.add(g["yyyymm"][:4])
        months.add(g["yyyymm"][4:])
    for key, bucket in (("yyyy", years), ("mm", months), ("dd", days)):
        if g.get(key):
            bucket.add(g[key])
    if len(years) != 1 or len(months) > 1 or len(days) > 1:
        return None
    try:
        return date(int(years.pop()), int(months.pop()) if months else 1, int(days.pop()) if days else 1)
    except ValueError:
        return None


def widen(period: Period, unit: str | None) -> Period:
    """The period a dated source is read for: whole months for monthly files, whole years for yearly."""
    if unit == "month":
        return period.widen_to_months()
    if unit == "year":
        end = period.end if (period.end.month, period.end.day) == (1, 1) else date(period.end.year + 1, 1, 1)
        return Period(period.granularity, date(period.start.year, 1, 1), end, period.label)
    return period


def period_dates(unit: str, period: Period) -> list[date]:
    """The file dates of a (widened) period: its days, month starts or year starts."""
    if unit == "day":
        return period.days()
    out, d = [], period.start.replace(day=1) if unit == "month" else date(period.start.year, 1, 1)
    while d < period.end:
        out.append(d)
        d = _add_months(d, 1) if unit == "month" else date(d.year + 1, 1, 1)
    return out


def parse_date(text: str | None, formats: tuple[str, ...] = ()) -> date | None:
    """A DATE_COLUMN value as a date: with `formats` the first that parses (strptime codes),
    else an ISO date or timestamp (`2024-03-05`, `2024-03-05 10:00:00`, `2024-03-05T10:00Z`);
    None when it parses with none. The same function serves both engines (parity by construction)."""
    if text is None:
        return None
    t = text.strip()
    if not t:
        return None
    if formats:
        for f in formats:
            try:
                return datetime.strptime(t, f).date()
            except ValueError:
                continue
        return None
    try:
        return date.fromisoformat(t) if len(t) == 10 else datetime.fromisoformat(t).date()
    except ValueError:
        return None


def csv_options(value: Any) -> CsvOptions:
    """`CSV` of a flow module as options; raises ValueError naming the bad key or value."""
    if value is None:
        return CsvOptions()
    if not isinstance(value, dict):
        raise ValueError("CSV must be a dict such as {\"delimiter\": \";\", \"encoding\": \"latin-1\"}")
    unknown = [k for k in value if k not in CSV_KEYS]
    if unknown:
        raise ValueError(f"CSV has unknown key(s) {', '.join(map(str, unknown))} (known: {', '.join(CSV_KEYS)})")
    delim, quote = value.get("delimiter", ","), value.get("quote", '"')
    for key, v in (("delimiter", delim), ("quote", quote)):
        if not isinstance(v, str) or len(v) != 1 or v in "\r\n":
            raise ValueError(f"CSV {key} must be one character, got {v!r}")
    if delim == quote:
        raise ValueError("CSV delimiter and quote must differ")
    enc = value.get("encoding", "utf-8")
    if not isinstance(enc, str) or enc.lower() not in ENCODINGS:
        raise ValueError(f"CSV encoding {enc!r} is not supported (use utf-8 or latin-1)")
    header = value.get("header", True)
    if not isinstance(header, bool):
        raise ValueError("CSV header must be True or False")
    return CsvOptions(delim, quote, ENCODINGS[enc.lower()], header)


def problems(module: ModuleType) -> list[str]:
    """What is wrong with a flow module's layout constants (FILES, DATE_COLUMN, DATE_FORMATS,
    PERIOD_FILTER, CSV); empty when they keep the contract."""
    out: list[str] = []
    files = getattr(module, "FILES", None)
    if not isinstance(files, str) or not files.strip():
        return ["FILES must be a path inside the raw bucket"]
    try:
        unit = unit_of(files)
    except ValueError as exc:
        out.append(str(exc))
        unit = "day"
    date_column = getattr(module, "DATE_COLUMN", None)
    formats = getattr(module, "DATE_FORMATS", ())
    period_filter = getattr(module, "PERIOD_FILTER", True)
    if not isinstance(period_filter, bool):
        out.append("PERIOD_FILTER must be True or False")
    if date_column is not None and (not isinstance(date_column, str)
                                    or date_column not in tuple(getattr(module, "COLUMNS", ()) or ())):
        out.append(f"DATE_COLUMN {date_column!r} must be one of COLUMNS")
    if isinstance(formats, str) or not all(isinstance(f, str) and "%" in f for f in formats or ()):
        out.append("DATE_FORMATS must be a tuple of strptime formats such as (\"%d/%m/%Y\",)")
    if unit is None and period_filter is not False and date_column is None:
        out.append(f"FILES {files!r} has no date placeholder, so it is a snapshot read on every run: set "
                   "DATE_COLUMN (the raw column that dates each row) to filter it to the run's period, or "
                   "PERIOD_FILTER = False to read it whole (reference data)")
    try:
        csv_options(getattr(module, "CSV", None))
    except ValueError as exc:
        out.append(str(exc))
    return out


def layout_of(module: ModuleType) -> Layout:
    """The layout of a module that passed :func:`problems`."""
    formats = getattr(module, "DATE_FORMATS", ()) or ()
    return Layout(module.FILES, unit_of(module.FILES), getattr(module, "DATE_COLUMN", None), tuple(formats),
                  getattr(module, "PERIOD_FILTER", True), csv_options(getattr(module, "CSV", None)))


def as_layout(source: Layout | str) -> Layout:
    """A Layout from a Layout or a bare template (callers that only know FILES)."""
    return source if isinstance(source, Layout) else Layout(source, unit_of(source))
