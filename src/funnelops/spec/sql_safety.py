"""Project SQL is one read-only query, nothing else; and no two names collide in DuckDB.

A view's SQL and a refined flow's SQL run against the local warehouse (views at apply, refined
flows at every run) and on BigQuery. Anything in them beyond one query would run there too: a
second statement (`SELECT 1; DROP TABLE ...`), a `COPY ... TO '/any/path'`, `SELECT ... INTO`
(which DuckDB turns into `CREATE TABLE`), or a table function reading files
(`read_csv('/etc/passwd')`). So every piece of project SQL must parse (sqlglot, BigQuery
dialect) as exactly one query whose FROM items are an allowlist: named tables (`dataset.table`
or a CTE), subqueries, `UNNEST` and `VALUES`. The check runs at `validate` (located) and again
right before the SQL is executed (defence in depth: the transpiled DuckDB text is parsed once
more), and the DuckDB connections themselves cannot reach files outside the home's buckets.

Names: BigQuery's dataset and table names are case-sensitive, DuckDB's are not, so
`Funnel_Daily` beside `funnel_daily` is one object locally; such pairs are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from funnelops.spec.sqlrefs import SqlError

if TYPE_CHECKING:
    from funnelops.errors import ProblemCollector
    from funnelops.spec.project import LoadedProject

REFINED_DIR = ("sql", "refined")  # as funnelops.flows.registry.REFINED_DIR (not imported: keep validate light)
# Schemas DuckDB (the local warehouse) keeps for itself: a dataset may not be one of them.
RESERVED_DATASETS = ("main", "information_schema", "pg_catalog", "temp", "system")


class UnsafeSql(SqlError):
    """The SQL parses but is not exactly one read-only query (or reads a table function).

    `line` is the 1-based line, within the SQL text, of what was refused (None if unknown).
    """

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def _forbidden_types() -> tuple[type, ...]:
    from sqlglot import exp

    names = ("DDL", "DML", "Command", "Copy", "Set", "Pragma", "Use", "Transaction", "Commit", "Rollback",
             "Into", "Describe", "Create", "Drop", "Alter", "Insert", "Update", "Delete", "Merge", "Attach",
             "Detach", "Install", "Export", "Declare", "Execute", "Analyze", "Show", "Refresh", "Cache",
             "Uncache", "LoadData", "Summarize", "Grant", "Revoke", "Kill", "TruncateTable")
    return tuple(getattr(exp, n) for n in names if isinstance(getattr(exp, n, None), type))


def _line_of(node: Any) -> int | None:
    """The line sqlglot recorded for a node, or for the first node under it that has one."""
    for n in node.walk():
        line = (n._meta or {}).get("line") if getattr(n, "_meta", None) else None
        if line:
            return int(line)
    return None


def _statement_lines(sql: str, dialect: str) -> list[int]:
    """The line each statement starts on (statements split at top-level semicolons)."""
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.tokens import TokenType

    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(sql)
    except Exception:
        return []
    starts, new = [], True
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            new = True
        elif new:
            starts.append(tok.line)
            new = False
    return starts


def parse_query(sql: str, dialect: str = "bigquery"):
    """The one query `sql` holds, parsed; raises SqlError (no parse) or UnsafeSql (anything else)."""
    import sqlglot
    from sqlglot import exp

    try:
        # a comment after the last `;` parses as an empty statement (exp.Semicolon): not one
        trees = [t for t in sqlglot.parse(sql, read=dialect)
                 if t is not None and not isinstance(t, getattr(exp, "Semicolon", ()))]
    except sqlglot.errors.SqlglotError as exc:  # ParseError, TokenError...
        first = (getattr(exc, "errors", None) or [{}])[0]
        line = first.get("line") if isinstance(first, dict) else None
        raise SqlError((str(exc).splitlines() or [type(exc).__name__])[0],
                       int(line) if isinstance(line, int) and line > 0 else None) from None
    if not trees:
        raise UnsafeSql("the SQL holds no query")
    if len(trees) > 1:
        lines = _statement_lines(sql, dialect)
        raise UnsafeSql(f"the SQL holds {len(trees)} statements; only one query (SELECT/WITH ...) is allowed",
                        lines[1] if len(lines) > 1 else None)
    tree = trees[0]
    if not isinstance(tree, exp.Query):
        if not isinstance(tree, _forbidden_types()):  # `SELEC x` parses as a bare expression
            start = " ".join(sql.split())[:40]
            raise UnsafeSql(f"the SQL is not a query: it does not start with SELECT or WITH ('{start}')",
                            _line_of(tree))
        raise UnsafeSql(f"the SQL is a {tree.key.upper()} statement, not a query; only SELECT/WITH ... is allowed",
                        _line_of(tree))
    check_tree(tree)
    return tree


def check_tree(tree) -> None:
    """Refuse statements nested in a query and FROM items that are not on the allowlist."""
    from sqlglot import exp

    for node in tree.find_all(*_forbidden_types()):
        kind = "SELECT ... INTO" if isinstance(node, exp.Into) else node.key.upper()
        raise UnsafeSql(f"{kind} is not allowed in a query", _line_of(node))
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    for clause in tree.find_all(exp.From, exp.Join):
        item = clause.this
        if isinstance(item, exp.Lateral) and isinstance(item.this, exp.Subquery):
            continue
        if not isinstance(item, (exp.Table, exp.Subquery, exp.Unnest, exp.Values)):
            raise UnsafeSql(f"'{item.sql()[:60]}' cannot be read in FROM; read a table, a view, a subquery, "
                            "UNNEST or VALUES", _line_of(item))
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            fn = table.this.sql()[:60] if table.this is not None else table.sql()[:60]
            raise UnsafeSql(f"table function '{fn}' is not allowed; read the project's tables and views "
                            "(dataset.table)", _line_of(table))
        if not table.db and table.name.lower() not in ctes:
            raise UnsafeSql(f"'{table.name}' is neither a `dataset.table` nor a WITH name", _line_of(table))


def checked_duckdb(sql: str) -> str:
    """Transpiled DuckDB text, checked again as DuckDB parses it (the execution-time guard)."""
    parse_query(sql, "duckdb")
    return sql


def problem_message(exc: SqlError, source: str | None = None, *, with_line: bool = True) -> str:
    """The text of a SQL problem: `source` names a SQL file (its line follows); with_line=False
    when the problem's own line is the SQL's line already."""
    where = ""
    line = getattr(exc, "line", None) if with_line else None
    if source:
        where = f"{source}:{line}: " if line else f"{source}: "
    elif line:
        where = f"line {line} of the query: "
    if isinstance(exc, UnsafeSql):
        return f"{where}{exc}"
    return f"{where}SQL does not parse as BigQuery: {exc}"


# -- the validate hook ---------------------------------------------------------------------------
def check_project(loaded: LoadedProject, file: str, c: ProblemCollector) -> None:
    """Validate's hook: case-insensitive name collisions, reserved datasets, refined SQL files."""
    check_name_collisions(loaded, file, c)
    check_refined_sql(loaded.base_dir, c)


def check_name_collisions(loaded: LoadedProject, file: str, c: ProblemCollector) -> None:
    """Names equal but for case are one object in DuckDB: a create of one would hit the other."""
    spec, ln = loaded.spec, loaded.line_of
    seen: dict[str, tuple[str, tuple]] = {}
    for i, d in enumerate(spec.datasets):
        path = ("datasets", i, "id")
        if d.id.lower() in RESERVED_DATASETS:
            c.add(file, ln(path), f"datasets[{d.id}]", f"'{d.id}' is a schema the local warehouse reserves",
                  "choose another dataset id")
        first = seen.get(d.id.lower())
        if first is not None and first[0] != d.id:
            c.add(file, ln(path), f"datasets[{d.id}]",
                  f"dataset '{d.id}' differs from '{first[0]}' (line {ln(first[1])}) only by case",
                  "names are case-insensitive in the local warehouse; rename one")
        seen.setdefault(d.id.lower(), (d.id, path))
    relations: dict[str, tuple[str, tuple]] = {}
    for kind in ("tables", "external_tables", "views"):
        for i, item in enumerate(getattr(spec, kind)):
            path = (kind, i, "name")
            key = item.address.lower()
            first = relations.get(key)
            if first is not None and first[0] != item.address:
                c.add(file, ln(path), f"{kind}[{item.name}]",
                      f"'{item.address}' differs from '{first[0]}' (line {ln(first[1])}) only by case",
                      "table, external table and view names are case-insensitive in the local warehouse; "
                      "rename one")
            relations.setdefault(key, (item.address, path))


def check_refined_sql(base: Path, c: ProblemCollector) -> None:
    """Every refined SQL file is one query (the flow inserts its rows; it may not do more)."""
    from funnelops.spec.sqlrefs import table_refs

    folder = base.joinpath(*REFINED_DIR)
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.sql")):
        rel = path.relative_to(base).as_posix()
        try:
            sql = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            c.add(str(path), None, f"refined flow {path.stem}", f"cannot read {rel}: {exc}", "save it as UTF-8 text")
            continue
        try:
            table_refs(sql)  # parses and checks (a cached verdict when the file did not change)
        except SqlError as exc:
            c.add(str(path), getattr(exc, "line", None), f"refined flow {path.stem}",
                  problem_message(exc, with_line=False),
                  "a refined SQL file is one SELECT (WITH ... allowed); the flow replaces the period with its rows")
