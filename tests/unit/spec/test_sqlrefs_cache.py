"""The on-disk cache of view references: used when present, keyed by the SQL, optional."""

from __future__ import annotations

import json

from funnelops.spec import sqlrefs

SQL = "SELECT a FROM `p.ds_one.t1` JOIN ds_two.t2 USING (a)"


def fresh(monkeypatch, tmp_path, no_cache: bool = False):
    monkeypatch.setenv("FUNNELOPS_CACHE_DIR", str(tmp_path))
    if no_cache:
        monkeypatch.setenv("FUNNELOPS_NO_CACHE", "1")
    else:
        monkeypatch.delenv("FUNNELOPS_NO_CACHE", raising=False)
    monkeypatch.setattr(sqlrefs, "_cache", sqlrefs._RefsCache())
    sqlrefs.table_refs.cache_clear()


def test_a_parse_is_stored_and_a_stored_answer_is_used(monkeypatch, tmp_path):
    fresh(monkeypatch, tmp_path)
    assert sqlrefs.table_refs(SQL) == ("ds_one.t1", "ds_two.t2")
    [file] = list(tmp_path.glob("sqlrefs-*.json"))
    data = json.loads(file.read_text())
    key = sqlrefs._RefsCache.key(SQL)
    assert data[key] == ["ds_one.t1", "ds_two.t2"]
    # a new process (fresh cache object) answers from the file, not from a parse
    data[key] = ["from.cache"]
    file.write_text(json.dumps(data))
    fresh(monkeypatch, tmp_path)
    assert sqlrefs.table_refs(SQL) == ("from.cache",)


def test_no_cache_parses_and_writes_nothing(monkeypatch, tmp_path):
    fresh(monkeypatch, tmp_path, no_cache=True)
    assert sqlrefs.table_refs(SQL) == ("ds_one.t1", "ds_two.t2")
    assert not list(tmp_path.glob("sqlrefs-*.json"))


def test_invalid_sql_is_never_cached(monkeypatch, tmp_path):
    fresh(monkeypatch, tmp_path)
    try:
        sqlrefs.table_refs("SELECT FROM WHERE (")
    except sqlrefs.SqlError:
        pass
    else:
        raise AssertionError("invalid SQL parsed")
    assert not list(tmp_path.glob("sqlrefs-*.json"))
