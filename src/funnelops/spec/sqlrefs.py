"""What a BigQuery-dialect query reads, and its DuckDB translation.

Views are ordered by the tables they read, found by parsing the SQL (never by regex), and the
same parse gives the DuckDB text the local warehouse runs: BigQuery's `project.dataset.table`
becomes DuckDB's `dataset.table` (a dataset is a schema there).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path


class SqlError(ValueError):
    """The SQL does not parse as BigQuery. `line`: the 1-based line, within the SQL text, where
    parsing stopped (None if unknown)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class _RefsCache:
    """Parsed references kept on disk, keyed by the SQL's hash and sqlglot's version.

    Every command loads the project, and importing sqlglot costs more than the rest of a forced
    run's start: with the references cached, a project whose views did not change never imports
    it. FUNNELOPS_CACHE_DIR (or XDG_CACHE_HOME) moves it; FUNNELOPS_NO_CACHE=1 turns it off.
    """

    def __init__(self) -> None:
        self._data: dict[str, list[str]] | None = None
        self._path: Path | None = None

    def _file(self) -> Path | None:
        if os.environ.get("FUNNELOPS_NO_CACHE") == "1":
            return None
        if self._path is None:
            from importlib.metadata import PackageNotFoundError, version

            try:
                ver = version("sqlglot")
            except PackageNotFoundError:
                return None
            root = os.environ.get("FUNNELOPS_CACHE_DIR") or os.path.join(
                os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "funnelops")
            # v2: only SQL that passed funnelops.spec.sql_safety is cached (a v1 file may hold
            # references of SQL that would be refused now, so it is never read).
            self._path = Path(root) / f"sqlrefs-v2-{ver}.json"
        return self._path

    @staticmethod
    def key(sql: str) -> str:
        return hashlib.sha256(sql.encode("utf-8")).hexdigest()

    def get(self, sql: str) -> tuple[str, ...] | None:
        path = self._file()
        if path is None:
            return None
        if self._data is None:
            try:
                self._data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._data = {}
        hit = self._data.get(self.key(sql))
        return tuple(hit) if isinstance(hit, list) else None

    def put(self, sql: str, refs: tuple[str, ...]) -> None:
        path = self._file()
        if path is None:
            return
        if self._data is None:
            self.get(sql)
        assert self._data is not None
        self._data[self.key(sql)] = list(refs)
        try:  # atomic: concurrent commands never read a torn file
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sqlrefs-")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self._data, fh)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only home is fine: we parse again next time


_cache = _RefsCache()


@lru_cache(maxsize=4096)
def table_refs(sql: str) -> tuple[str, ...]:
    """The `dataset.table` names a query reads (CTE names excluded), sorted."""
    cached = _cache.get(sql)
    if cached is not None:
        return cached
    refs = _parse_refs(sql)
    _cache.put(sql, refs)
    return refs


def _parse_refs(sql: str) -> tuple[str, ...]:
    from sqlglot import exp

    from funnelops.spec.sql_safety import parse_query

    tree = parse_query(sql, "bigquery")  # one query, or SqlError/UnsafeSql: never cached
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
    """Transpile BigQuery SQL to DuckDB, dropping the project part of table names.

    Only one query is ever transpiled (UnsafeSql otherwise), and the DuckDB text is checked
    again as DuckDB's dialect parses it: this is the guard right before execution.
    """
    from sqlglot import exp

    from funnelops.spec.sql_safety import checked_duckdb, parse_query

    tree = parse_query(sql, "bigquery")

    def strip_catalog(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and node.args.get("catalog") is not None:
            node.set("catalog", None)
        return node

    tree = tree.transform(strip_catalog)
    return checked_duckdb(tree.sql(dialect="duckdb"))
