"""Date/time format strings for the `dq` helpers: one user-facing syntax, translated per engine.

Flows write formats in Python's `strptime` syntax (`"%d/%m/%Y"`), the one most people already
know; a flow runs on SQLFrame over DuckDB locally and on PySpark on a cluster, whose parsers
take different syntaxes (DuckDB `strptime`, Spark `DateTimeFormatter` patterns) and disagree on
details (DuckDB's `%m` accepts `3`, Spark's `MM` wants `03`; Spark needs letters quoted). So a
format is compiled once into:

- a strict regular expression (RE2/Java compatible) every value must match before any parse, so
  both engines see exactly the same accepted shapes and only calendar validity is left to them;
- the Spark pattern the engine's `try_to_timestamp` receives (SQLFrame translates it to DuckDB's
  `strptime`), with literal letters (the ISO `T`) replaced by spaces in both the pattern and the
  value: SQLFrame mistranslates quoted literals, and a space needs no quoting anywhere;
- the DuckDB `strptime` format, for code that writes DuckDB SQL directly (raw staging).

Supported directives: `%Y` (4 digits), `%m` `%d` `%H` `%M` `%S` (2 digits each), `%f` (1 to 6
digits of a fraction of a second). Literals: `- / : . , _`, space, and ASCII letters (`T`, `Z`).
Every format must contain `%Y`, `%m` and `%d`: the helpers produce dates or timestamps.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from funnelops.errors import UsageError

# directive -> (Spark pattern, regex of what it accepts, DuckDB strptime)
DIRECTIVES: dict[str, tuple[str, str, str]] = {
    "Y": ("yyyy", "[0-9]{4}", "%Y"),
    "m": ("MM", "[0-9]{2}", "%m"),
    "d": ("dd", "[0-9]{2}", "%d"),
    "H": ("HH", "[0-9]{2}", "%H"),
    "M": ("mm", "[0-9]{2}", "%M"),
    "S": ("ss", "[0-9]{2}", "%S"),
    "f": ("SSSSSS", "[0-9]{1,6}", "%f"),
}
PUNCTUATION = "-/:.,_ "
LETTERS = string.ascii_letters
REQUIRED = ("Y", "m", "d")

ISO_DATE = "%Y-%m-%d"
ISO_DATETIME = "%Y-%m-%d %H:%M:%S"
ISO_T = "%Y-%m-%dT%H:%M:%S"
DEFAULT_FORMATS = (ISO_DATE, ISO_DATETIME, ISO_T)
"""What `dq.date` and `dq.timestamp` accept when a flow names no formats."""


class FormatError(UsageError):
    """A format string the helpers cannot translate faithfully to both engines."""


@dataclass(frozen=True)
class DateFormat:
    """One compiled format (see the module docstring)."""

    source: str          # as the flow wrote it: "%d/%m/%Y"
    regex: str           # "^[0-9]{2}/[0-9]{2}/[0-9]{4}$"
    spark: str           # "dd/MM/yyyy" (literal letters already turned into spaces)
    duckdb: str          # "%d/%m/%Y"   (idem)
    letters: str         # the literal letters the value carries, in order ("T"), to become spaces

    @property
    def has_time(self) -> bool:
        return "%H" in self.source


def compile_format(fmt: str) -> DateFormat:
    """Translate one `strptime` format; raises FormatError naming what is not supported."""
    if not isinstance(fmt, str) or not fmt:
        raise FormatError(f"date format {fmt!r} is not a non-empty string",
                          'write formats like "%Y-%m-%d" or "%d/%m/%Y %H:%M:%S"')
    regex, spark, duck, letters, seen = ["^"], [], [], [], []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%":
            d = fmt[i + 1] if i + 1 < len(fmt) else ""
            if d not in DIRECTIVES:
                raise FormatError(f"date format {fmt!r}: %{d} is not supported",
                                  f"use {' '.join('%' + k for k in DIRECTIVES)} and literal separators")
            if d in seen:
                raise FormatError(f"date format {fmt!r}: %{d} appears twice", None)
            seen.append(d)
            s, r, k = DIRECTIVES[d]
            spark.append(s)
            regex.append(r)
            duck.append(k)
            i += 2
            continue
        if ch in PUNCTUATION:
            spark.append(ch)
            duck.append(ch)
            regex.append("\\." if ch == "." else ch)
        elif ch in LETTERS:
            spark.append(" ")
            duck.append(" ")
            regex.append(ch)
            letters.append(ch)
        else:
            raise FormatError(f"date format {fmt!r}: the character {ch!r} is not supported",
                              f"literals may be letters, spaces or one of {PUNCTUATION.strip()!r}")
        i += 1
    missing = [f"%{d}" for d in REQUIRED if d not in seen]
    if missing:
        raise FormatError(f"date format {fmt!r} lacks {', '.join(missing)}", "a format must name a whole date")
    if "f" in seen and "S" not in seen:
        raise FormatError(f"date format {fmt!r}: %f needs %S", None)
    regex.append("$")
    return DateFormat(fmt, "".join(regex), "".join(spark), "".join(duck), "".join(letters))


def compile_formats(formats: str | tuple[str, ...] | list[str]) -> list[DateFormat]:
    """A format, or several tried in order (the first that matches a value wins)."""
    if isinstance(formats, str):
        formats = (formats,)
    out = [compile_format(f) for f in formats]
    if not out:
        raise FormatError("no date format given", f"leave `formats` out for the default {DEFAULT_FORMATS}")
    return out
