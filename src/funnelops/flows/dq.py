"""Data-quality building blocks for trusted flows, in the PySpark API of the active engine.

Every rule is a boolean Column that is true when a row FAILS it; :func:`first_failing` turns an
ordered list of rules into one `dq_rule` column (NULL = keep the row). Parsing never raises on
bad input on either engine: values are checked against a strict pattern before any cast, and
dates go through `try_to_timestamp` (a plain `to_timestamp` fails on DuckDB and under Spark's
ANSI mode). Rows carry three lineage columns from staging, `_file_index`, `_row` (the order of
the row in the input, which makes "first occurrence wins" deterministic) and `_raw_record`.
"""

from __future__ import annotations

from collections.abc import Iterable

from funnelops.flows.engine import api

TS_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"
MONTH_PATTERN = r"^[0-9]{4}-[0-9]{2}$"
AMOUNT_PATTERN = r"^-?[0-9]{1,15}(\.[0-9]{1,2})?$"
COUNT_PATTERN = r"^[0-9]{1,9}$"
LINEAGE = ("_file_index", "_row", "_raw_record")
RULES = ("column_count", "id_not_null", "parsable_date", "amount_numeric", "amount_non_negative",
         "known_stage", "target_present", "date_in_period", "duplicate")


def _F():
    return api()["F"]


def text(col_name: str):
    """Trimmed text; blank becomes NULL (an empty CSV field is a missing value)."""
    F = _F()
    trimmed = F.trim(F.col(col_name))
    return F.when(trimmed != F.lit(""), trimmed)


def timestamp(col_name: str):
    """`yyyy-MM-dd HH:mm:ss` -> TIMESTAMP; anything else (or an impossible date) -> NULL."""
    F = _F()
    c = F.trim(F.col(col_name))
    return F.when(c.rlike(TS_PATTERN), F.try_to_timestamp(c, F.lit("yyyy-MM-dd HH:mm:ss")))


def month_start(col_name: str):
    """`yyyy-MM` -> the DATE of the first day of that month; anything else -> NULL."""
    F = _F()
    c = F.trim(F.col(col_name))
    ts = F.try_to_timestamp(F.concat(c, F.lit("-01 00:00:00")), F.lit("yyyy-MM-dd HH:mm:ss"))
    return F.when(c.rlike(MONTH_PATTERN), F.to_date(ts))


def amount(col_name: str):
    """A plain decimal (`1234`, `-5.5`) -> DECIMAL(18,2); thousands separators, `N/A`... -> NULL."""
    F = _F()
    c = F.trim(F.col(col_name))
    return F.when(c.rlike(AMOUNT_PATTERN), c.cast("decimal(18,2)"))


def count(col_name: str):
    F = _F()
    c = F.trim(F.col(col_name))
    return F.when(c.rlike(COUNT_PATTERN), c.cast("bigint"))


def lineage(raw_columns: Iterable[str]) -> list:
    """The lineage columns to carry through a flow; `_raw_record` rebuilds the delivered line."""
    F = _F()
    record = F.concat_ws(",", *[F.coalesce(F.col(c), F.lit("")) for c in raw_columns])
    return [F.col("_file_index").alias("_file_index"), F.col("_row").alias("_row"), record.alias("_raw_record")]


def first_failing(rules: list[tuple[str, object]]):
    """The name of the first rule a row fails, or NULL when it passes them all."""
    F = _F()
    out = None
    for name, failed in rules:
        if name not in RULES:
            raise ValueError(f"unknown rule '{name}' (known: {', '.join(RULES)})")
        out = F.when(failed, F.lit(name)) if out is None else out.when(failed, F.lit(name))
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
