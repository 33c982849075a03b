"""What a BigQuery-dialect query reads, and its DuckDB translation.

Views are ordered by the tables they read, found by parsing the SQL (never by regex), and the
same parse gives the DuckDB text the local warehouse runs: BigQuery's `project.dataset.table`
becomes DuckDB's `dataset.table` (a dataset is a schema there).
"""

from __future__ import annotations

from functools import lru_cache


class SqlError(ValueError):
    """The SQL does not parse as BigQuery."""


@lru_cache(maxsize=4096)
def table_refs(sql: str) -> tuple[str, ...]:
    """The `dataset.table` names a query reads (CTE names excluded), sorted."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="bigquery")
    except sqlglot.errors.SqlglotError as exc:  # ParseError, TokenError...
        raise SqlError((str(exc).splitlines() or [type(exc).__name__])[0]) from None
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    refs = set()
    for t in tree.find_all(exp.Table):
        if not t.name:
            continue
        if not t.db and t.name in ctes:
            continue
        refs.add(f"{t.db}.{t.name}" if t.db else t.name)
    return tuple(sorted(refs))


@lru_cache(maxsize=4096)
def to_duckdb(sql: str) -> str:
    """Transpile BigQuery SQL to DuckDB, dropping the project part of table names."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="bigquery")
    except sqlglot.errors.SqlglotError as exc:  # ParseError, TokenError...
        raise SqlError((str(exc).splitlines() or [type(exc).__name__])[0]) from None

    def strip_catalog(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and node.args.get("catalog") is not None:
            node.set("catalog", None)
        return node

    tree = tree.transform(strip_catalog)
    return tree.sql(dialect="duckdb")
