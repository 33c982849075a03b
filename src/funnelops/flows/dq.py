"""Data-quality building blocks for trusted flows, in the PySpark API of the active engine.

Every rule is a boolean Column that is true when a row FAILS it; :func:`first_failing` turns an
ordered list of rules into one `dq_rule` column (NULL = keep the row). Parsing never raises on
bad input on either engine: values are checked against a strict pattern before any cast, and
dates go through `try_to_timestamp` (a plain `to_timestamp` fails on DuckDB and under Spark's
ANSI mode). Rows carry three lineage columns from staging, `_file_index`, `_row` (the order of
the row in the input, which makes "first occurrence wins" deterministic) and `_raw_record`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from types import FrameType
from typing import Any

from funnelops.errors import Problem, ProjectError
from funnelops.flows.dq_formats import DEFAULT_FORMATS, DateFormat, FormatError, compile_formats
from funnelops.flows.engine import api

MONTH_PATTERN = r"^[0-9]{4}-[0-9]{2}$"
COUNT_PATTERN = r"^[0-9]{1,9}$"
LINEAGE = ("_file_index", "_row", "_raw_record")
RULE_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
RESERVED_RULES = {
    "column_count": "staging uses it for a line with the wrong number of fields",
    "unparsable_line": "staging uses it for a line the CSV reader cannot parse",
    "date_in_period": "the runtime uses it for a row dated outside the run's period",
}
"""Rule names the runtime itself writes into the quarantine: a flow rule of the same name
would be indistinguishable from them in the counts."""


def _F():
    return api()["F"]


def _caller() -> tuple[str, int | None]:
    """The file and line of the flow code that called a helper (the first frame outside dq)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") in (__name__, "funnelops.flows.dq_formats"):
        frame = frame.f_back
    if frame is None:
        return "<flow>", None
    return frame.f_code.co_filename, frame.f_lineno


def _bad_call(field: str, message: str, hint: str | None) -> ProjectError:
    """A located error for a helper called with arguments it cannot honour on both engines."""
    file, line = _caller()
    return ProjectError([Problem(file, line, field, message, hint)],
                        "fix the flow file named above, then run `funnelops validate`")


def text(col_name: str):
    """Trimmed text; blank becomes NULL (an empty CSV field is a missing value)."""
    F = _F()
    trimmed = F.trim(F.col(col_name))
    return F.when(trimmed != F.lit(""), trimmed)


def _formats(helper: str, formats: str | tuple[str, ...] | list[str]) -> list[DateFormat]:
    try:
        return compile_formats(formats)
    except FormatError as exc:
        raise _bad_call(f"dq.{helper}(formats=...)", exc.message, exc.hint) from None


def _parse(col_name: str, compiled: list[DateFormat]):
    """TIMESTAMP of the first format whose pattern the trimmed value matches; else NULL.

    The strict pattern decides the accepted shape (identically on both engines); the engine's
    `try_to_timestamp` then only judges calendar validity (`2024-02-30` -> NULL)."""
    F = _F()
    c = F.trim(F.col(col_name))
    out = None
    for fmt in compiled:
        value = F.translate(c, fmt.letters, " " * len(fmt.letters)) if fmt.letters else c
        parsed = F.try_to_timestamp(value, F.lit(fmt.spark))
        out = F.when(c.rlike(fmt.regex), parsed) if out is None else out.when(c.rlike(fmt.regex), parsed)
    return out


def timestamp(col_name: str, formats: str | tuple[str, ...] | list[str] = DEFAULT_FORMATS):
    """Text -> TIMESTAMP (wall time, no zone); a value no format matches, or an impossible date -> NULL.

    `formats` are Python `strptime` formats tried in order, translated for each engine (see
    :mod:`funnelops.flows.dq_formats`): `%Y %m %d %H %M %S %f` and literal separators or letters.
    The default accepts `2024-03-05 08:00:00`, `2024-03-05T08:00:00` and a plain `2024-03-05`
    (midnight). Leading and trailing blanks are ignored.
    """
    return _parse(col_name, _formats("timestamp", formats))


def date(col_name: str, formats: str | tuple[str, ...] | list[str] = DEFAULT_FORMATS):
    """Text -> DATE with the same `formats` as :func:`timestamp` (a time of day is dropped)."""
    F = _F()
    return F.to_date(_parse(col_name, _formats("date", formats)))


def month_start(col_name: str):
    """`yyyy-MM` -> the DATE of the first day of that month; anything else -> NULL."""
    F = _F()
    c = F.trim(F.col(col_name))
    ts = F.try_to_timestamp(F.concat(c, F.lit("-01 00:00:00")), F.lit("yyyy-MM-dd HH:mm:ss"))
    return F.when(c.rlike(MONTH_PATTERN), F.to_date(ts))


def decimal(col_name: str, scale: int = 2, precision: int = 18, decimal_mark: str = "."):
    """A plain decimal with at most `scale` fraction digits -> DECIMAL(precision, scale); else NULL.

    Accepted: an optional `-`, 1 to `precision - scale` digits, then optionally `decimal_mark`
    (`.` or `,`) and 1 to `scale` digits (`1234`, `-5.5`, `0.1234` with scale 4). Thousands
    separators, currency signs, more fraction digits than `scale` or `N/A` give NULL: a value is
    never rounded or guessed. `scale=0` accepts integers only.
    """
    F = _F()
    if isinstance(precision, bool) or not isinstance(precision, int) or not 1 <= precision <= 38:
        raise _bad_call("dq.decimal(precision=...)", f"precision {precision!r} is not an integer from 1 to 38", None)
    if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale < precision:
        raise _bad_call("dq.decimal(scale=...)", f"scale {scale!r} is not an integer from 0 to {precision - 1}",
                        "scale counts the digits after the decimal mark, below precision")
    if decimal_mark not in (".", ","):
        raise _bad_call("dq.decimal(decimal_mark=...)", f"decimal mark {decimal_mark!r} is not '.' or ','", None)
    mark = "\\." if decimal_mark == "." else ","
    fraction = f"({mark}[0-9]{{1,{scale}}})?" if scale else ""
    pattern = f"^-?[0-9]{{1,{precision - scale}}}{fraction}$"
    c = F.trim(F.col(col_name))
    number = F.regexp_replace(c, F.lit(","), F.lit(".")) if decimal_mark == "," else c
    return F.when(c.rlike(pattern), number.cast(f"decimal({precision},{scale})"))


def amount(col_name: str, scale: int = 2):
    """A money amount: :func:`decimal` with `scale` fraction digits (default 2) -> DECIMAL(18, scale)."""
    return decimal(col_name, scale=scale)


def count(col_name: str):
    F = _F()
    c = F.trim(F.col(col_name))
    return F.when(c.rlike(COUNT_PATTERN), c.cast("bigint"))


def lineage(raw_columns: Iterable[str]) -> list:
    """The lineage columns to carry through a flow; `_raw_record` rebuilds the delivered line."""
    F = _F()
    record = F.concat_ws(",", *[F.coalesce(F.col(c), F.lit("")) for c in raw_columns])
    return [F.col("_file_index").alias("_file_index"), F.col("_row").alias("_row"), record.alias("_raw_record")]


def rule(name: str, failed: Any) -> tuple[str, Any]:
    """A named rule for :func:`first_failing`: `failed` is a boolean Column, true when a row FAILS.

    `name` is what the quarantine records for the row (per rule, with its file and line): any
    identifier (letters, digits, `_`, not starting with a digit, up to 64 characters) except the
    names the runtime writes itself (`column_count`, `unparsable_line`, `date_in_period`).
    """
    if not isinstance(name, str) or not re.match(RULE_NAME, name):
        raise _bad_call("dq.rule", f"rule name {name!r} is not an identifier",
                        "use letters, digits and _ (not starting with a digit), up to 64 characters")
    if name in RESERVED_RULES:
        raise _bad_call("dq.rule", f"rule name '{name}' is reserved: {RESERVED_RULES[name]}", "pick another name")
    if failed is None or isinstance(failed, (bool, int, str)):
        raise _bad_call("dq.rule", f"rule '{name}' has condition {failed!r}, not a Column",
                        "write a column expression, e.g. F.col(\"amount\") < F.lit(0)")
    return name, failed


def first_failing(rules: list[tuple[str, Any]]):
    """The name of the first rule a row fails, or NULL when it passes them all.

    Each entry is `dq.rule("name", condition)` (or the plain `("name", condition)` tuple).
    """
    F = _F()
    out = None
    for entry in rules:
        if not (isinstance(entry, tuple) and len(entry) == 2):
            raise _bad_call("dq.first_failing", f"{entry!r} is not a rule",
                            "list rules as dq.rule(\"name\", condition)")
        name, failed = rule(*entry)
        out = F.when(failed, F.lit(name)) if out is None else out.when(failed, F.lit(name))
    if out is None:
        raise _bad_call("dq.first_failing", "no rule given", "list at least one dq.rule(\"name\", condition)")
    return out


def deduplicate(df, key: str, rule_col: str = "dq_rule"):
    """Mark every valid row after the first one (by `_row`) with the same `key` as `duplicate`.

    Only rows that passed every other rule compete, so a broken row never hides a good one.
    One DataFrame step: SQLFrame pays for every step when it builds the query.
    """
    F, Window = _F(), api()["Window"]
    ok = F.col(rule_col).isNull()
    first = Window.partitionBy(F.col(key), ok).orderBy(F.col("_row"))
    dup = F.when(ok & (F.row_number().over(first) > F.lit(1)), F.lit("duplicate"))
    return df.withColumn(rule_col, F.coalesce(F.col(rule_col), dup))


def finish(df, output: Iterable[str], rule_col: str = "dq_rule"):
    """The shape the runtime expects: output columns, `dq_rule`, then lineage (raw text only for bad rows)."""
    F = _F()
    cols = [F.col(c).alias(c) for c in output]
    return df.select(*cols, F.col(rule_col).alias("dq_rule"),
                     F.col("_file_index").alias("_file_index"), F.col("_row").alias("_row"),
                     F.when(F.col(rule_col).isNotNull(), F.col("_raw_record")).alias("_raw_record"))
