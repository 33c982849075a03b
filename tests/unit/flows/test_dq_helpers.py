"""The `dq` helpers on SQLFrame/DuckDB, one expression at a time; expected values worked out by hand.

The same cases run on real PySpark in tests/spark/test_dq_parity.py (`CASES` is shared).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from funnelops.errors import ProjectError
from funnelops.flows.dq_formats import FormatError, compile_format
from funnelops.flows.engine import DuckEngine, activate

VALUES = ["2024-03-05", "2024-03-05 08:09:10", "2024-03-05T08:09:10", " 2024-03-05 ", "05/03/2024",
          "05/03/2024 08:09", "2024-3-5", "2024-02-30", "2024-02-29", "2024-03-05 08:09:10.25", "12.3456",
          "12.34567", "-0,5", "1.234,5", "42", "", None]


def helper_columns():
    """(name, column) pairs over the string column `v`, built with the active engine's API."""
    from funnelops.flows import dq
    from funnelops.flows.engine import F

    return [
        ("ts", dq.timestamp("v")),
        ("d", dq.date("v")),
        ("dmy", dq.date("v", formats="%d/%m/%Y")),
        ("dmy_hm", dq.timestamp("v", formats=("%d/%m/%Y %H:%M", "%d/%m/%Y"))),
        ("frac", dq.timestamp("v", formats="%Y-%m-%d %H:%M:%S.%f")),
        ("dec4", dq.decimal("v", scale=4)),
        ("amt", dq.amount("v")),
        ("comma", dq.decimal("v", scale=2, decimal_mark=",")),
        ("int", dq.decimal("v", scale=0, precision=10)),
        ("rule", dq.first_failing([dq.rule("v_missing", F.col("v").isNull()),
                                   dq.rule("not_a_date", dq.date("v").isNull())])),
    ]


EXPECTED = {  # value -> the non-NULL columns
    "2024-03-05": {"ts": datetime(2024, 3, 5), "d": date(2024, 3, 5)},
    "2024-03-05 08:09:10": {"ts": datetime(2024, 3, 5, 8, 9, 10), "d": date(2024, 3, 5)},
    "2024-03-05T08:09:10": {"ts": datetime(2024, 3, 5, 8, 9, 10), "d": date(2024, 3, 5)},
    " 2024-03-05 ": {"ts": datetime(2024, 3, 5), "d": date(2024, 3, 5)},
    "05/03/2024": {"dmy": date(2024, 3, 5), "dmy_hm": datetime(2024, 3, 5)},
    "05/03/2024 08:09": {"dmy_hm": datetime(2024, 3, 5, 8, 9)},
    "2024-02-29": {"ts": datetime(2024, 2, 29), "d": date(2024, 2, 29)},
    "2024-03-05 08:09:10.25": {"frac": datetime(2024, 3, 5, 8, 9, 10, 250000)},
    "12.3456": {"dec4": Decimal("12.3456")},
    "-0,5": {"comma": Decimal("-0.50")},
    "42": {"dec4": Decimal("42.0000"), "amt": Decimal("42.00"), "comma": Decimal("42.00"), "int": Decimal("42")},
}


def duck_rows() -> dict[str | None, dict]:
    activate("duckdb")
    engine = DuckEngine("UTC")
    try:
        engine.con.execute("CREATE TABLE t (i INTEGER, v VARCHAR)")
        engine.con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(VALUES)))
        df = engine.table("t")
        out = df.select(df["v"], *[c.alias(n) for n, c in helper_columns()])
        cur = engine.con.execute(engine.to_sql(out))  # DuckDB's own types (SQLFrame's collect makes floats)
        names = [d[0] for d in cur.description]
        return {r[0]: dict(zip(names, r)) for r in cur.fetchall()}
    finally:
        engine.close()


def expected_row(value: str | None) -> dict:
    row = {n: None for n in ("ts", "d", "dmy", "dmy_hm", "frac", "dec4", "amt", "comma", "int")}
    row.update(EXPECTED.get(value, {}))
    row["rule"] = "v_missing" if value is None else (None if row["d"] else "not_a_date")
    return {"v": value, **row}


def test_helpers_parse_what_their_formats_say_and_nothing_else():
    got = duck_rows()
    for value in VALUES:
        assert got[value] == expected_row(value), value


def test_plain_iso_date_is_a_timestamp_by_default():
    """On main dq.timestamp accepted only `yyyy-MM-dd HH:mm:ss`: every plain date was quarantined."""
    got = duck_rows()
    assert got["2024-03-05"]["ts"] == datetime(2024, 3, 5)


@pytest.mark.parametrize("fmt, regex, spark, duck", [
    ("%d/%m/%Y", "^[0-9]{2}/[0-9]{2}/[0-9]{4}$", "dd/MM/yyyy", "%d/%m/%Y"),
    ("%Y-%m-%dT%H:%M:%S", "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$", "yyyy-MM-dd HH:mm:ss",
     "%Y-%m-%d %H:%M:%S"),
    ("%Y.%m.%d", r"^[0-9]{4}\.[0-9]{2}\.[0-9]{2}$", "yyyy.MM.dd", "%Y.%m.%d"),
])
def test_formats_compile_to_one_pattern_per_engine(fmt, regex, spark, duck):
    c = compile_format(fmt)
    assert (c.regex, c.spark, c.duckdb) == (regex, spark, duck)


@pytest.mark.parametrize("fmt, says", [
    ("%b %d %Y", "%b is not supported"), ("%Y-%m", "lacks %d"), ("%Y-%m-%d'", "character \"'\""),
    ("%Y-%m-%d %d", "%d appears twice"), ("", "not a non-empty string"), ("%Y-%m-%d %f", "%f needs %S"),
])
def test_unsupported_formats_are_refused_with_a_reason(fmt, says):
    with pytest.raises(FormatError) as e:
        compile_format(fmt)
    assert says in e.value.message


def test_bad_helper_arguments_name_the_flow_line():
    activate("duckdb")
    from funnelops.flows import dq
    from funnelops.flows.engine import F

    cases = [
        (lambda: dq.timestamp("v", formats="%d.%b"), "dq.timestamp(formats=...)", "%b is not supported"),
        (lambda: dq.decimal("v", scale=18), "dq.decimal(scale=...)", "from 0 to 17"),
        (lambda: dq.decimal("v", decimal_mark="'"), "dq.decimal(decimal_mark=...)", "is not '.' or ','"),
        (lambda: dq.rule("bad name", F.col("v").isNull()), "dq.rule", "is not an identifier"),
        (lambda: dq.rule("date_in_period", F.col("v").isNull()), "dq.rule", "is reserved"),
        (lambda: dq.rule("ok", True), "dq.rule", "not a Column"),
        (lambda: dq.first_failing([]), "dq.first_failing", "no rule given"),
    ]
    for call, field, says in cases:
        with pytest.raises(ProjectError) as e:
            call()
        [p] = e.value.problems
        assert (p.file, p.field) == (__file__, field)
        assert p.line is not None and says in p.message, p


def test_user_named_rules_mark_the_first_failing_row():
    activate("duckdb")
    from funnelops.flows import dq
    from funnelops.flows.engine import F

    engine = DuckEngine("UTC")
    try:
        engine.con.execute("CREATE TABLE t AS SELECT * FROM (VALUES ('a@x', 1), ('nope', 2), (NULL, 3)) v(email, n)")
        df = engine.table("t")
        out = df.select(df["n"], dq.first_failing([
            dq.rule("email_present", F.col("email").isNull()),
            dq.rule("Email_Has_At_2", ~F.col("email").contains("@")),
        ]).alias("dq_rule")).orderBy("n")
        assert [(r["n"], r["dq_rule"]) for r in out.collect()] == [(1, None), (2, "Email_Has_At_2"),
                                                                    (3, "email_present")]
    finally:
        engine.close()
