"""The raw layout grammar: which placeholder sets name a period's files, how names are parsed."""

from __future__ import annotations

from datetime import date

import pytest

from funnelops.flows import layout
from funnelops.flows.args import resolve_period


@pytest.mark.parametrize("template, unit", [
    ("a/{yyyy}/{mm}/x_{yyyymmdd}.csv", "day"), ("a/{yyyy}/{mm}/{dd}.csv", "day"), ("a/{yyyymm}{dd}.csv", "day"),
    ("a/{yyyymm}.xlsx", "month"), ("a/{yyyy}-{mm}.csv", "month"), ("a/{yyyy}.csv", "year"),
    ("a/leads.csv", None)])
def test_units(template, unit):
    assert layout.unit_of(template) == unit


@pytest.mark.parametrize("template", ["a/{mm}.csv", "a/{dd}.csv", "a/{yyyy}/{dd}.csv", "a/{YYYY}.csv",
                                      "a/{date}.csv", "a/{yyyy.csv"])
def test_placeholder_sets_that_name_no_period_are_refused(template):
    with pytest.raises(ValueError, match="FILES"):
        layout.unit_of(template)


def test_names_are_parsed_by_every_placeholder_and_must_agree():
    rx = layout.pattern("x/{yyyy}/{mm}/x_{yyyymmdd}.csv")
    assert layout.match_date(rx.match("x/2024/03/x_20240305.csv")) == date(2024, 3, 5)
    assert layout.match_date(rx.match("x/2024/04/x_20240305.csv")) is None     # folder and name disagree
    assert layout.match_date(layout.pattern("x/{yyyy}.csv").match("x/2024.csv")) == date(2024, 1, 1)
    assert layout.pattern("{yyyy}/{yyyy}.csv").match("2024/2025.csv") is None   # a repeat repeats the digits
    assert layout.match_date(layout.pattern("{yyyy}/{mm}/{dd}.csv").match("2024/02/30.csv")) is None


def test_yearly_period_and_files():
    p = layout.widen(resolve_period("DAY", "2024-03-05", "UTC"), "year")
    assert (p.start, p.end) == (date(2024, 1, 1), date(2025, 1, 1))
    assert layout.period_dates("year", p) == [date(2024, 1, 1)]
    assert layout.fill("{yyyy}/{yyyymm}.csv", date(2024, 3, 1)) == "2024/202403.csv"


@pytest.mark.parametrize("text, formats, want", [
    ("2024-03-05", (), date(2024, 3, 5)), ("2024-03-05 10:00:00", (), date(2024, 3, 5)),
    ("2024-03-05T10:00:00Z", (), date(2024, 3, 5)), (" 2024-03-05 ", (), date(2024, 3, 5)),
    ("05/03/2024", (), None), ("05/03/2024", ("%Y-%m-%d", "%d/%m/%Y"), date(2024, 3, 5)), ("", (), None),
    (None, (), None), ("2024-02-30", (), None)])
def test_parse_date(text, formats, want):
    assert layout.parse_date(text, formats) == want


@pytest.mark.parametrize("value, message", [
    ({"delimiter": ";;"}, "delimiter"), ({"sep": ";"}, "unknown key"), ({"encoding": "utf-16"}, "encoding"),
    ({"header": "yes"}, "header"), ({"delimiter": '"'}, "differ"), ([";"], "dict")])
def test_bad_csv_options(value, message):
    with pytest.raises(ValueError, match=message):
        layout.csv_options(value)


def test_csv_options_normalise_the_encoding():
    assert layout.csv_options({"encoding": "ISO-8859-1", "delimiter": ";"}) == layout.CsvOptions(";", '"', "latin-1")
