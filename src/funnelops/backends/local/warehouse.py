"""The local warehouse: BigQuery's datasets, tables, external tables and views on DuckDB.

A dataset is a schema; a native table a table; an external table a view over `read_parquet` of
its bucket folder (hive partitioning); a view a view whose SQL is transpiled from BigQuery's
dialect. What DuckDB cannot hold (labels, descriptions, partitioning, clustering) is kept in
`main._funnelops_meta`, keyed by address; only objects listed there are managed (and ever
deleted). Observation reads everything in one snapshot; drift (an object dropped or a view
edited by hand) shows as a difference between the live catalog and the recorded metadata.
"""

from __future__ import annotations

import json
import threading
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Iterable, Iterator

from funnelops.backends.base import Observed
from funnelops.backends.local.warehouse_conn import scalar, warehouse
from funnelops.resources import Resource
from funnelops.backends.local.ledger_integrity import is_duckdb_corruption, warehouse_error

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

META_TABLE = "main._funnelops_meta"
SYSTEM_SCHEMAS = {"main", "information_schema", "pg_catalog"}
EDITED = "(edited outside funnelops)"

_TO_DUCK = {"STRING": "VARCHAR", "BYTES": "BLOB", "INTEGER": "BIGINT", "FLOAT": "DOUBLE",
            "NUMERIC": "DECIMAL(38,9)", "BIGNUMERIC": "DECIMAL(38,18)", "BOOLEAN": "BOOLEAN",
            "TIMESTAMP": "TIMESTAMP WITH TIME ZONE", "DATE": "DATE", "TIME": "TIME",
            "DATETIME": "TIMESTAMP", "JSON": "JSON"}
_FROM_DUCK = {v: k for k, v in _TO_DUCK.items()}


def q(ident: str) -> str:
    """Quote an identifier (spec names are already validated to [A-Za-z0-9_])."""
    return '"' + ident.replace('"', '""') + '"'


def rel(address: str) -> str:
    ds, name = address.split(".", 1)
    return f"{q(ds)}.{q(name)}"


def duck_column_type(bq_type: str, mode: str) -> str:
    t = _TO_DUCK[bq_type]
    return t + "[]" if mode == "REPEATED" else t


def column_ddl(col: dict[str, str]) -> str:
    ddl = f"{q(col['name'])} {duck_column_type(col['type'], col['mode'])}"
    return ddl + (" NOT NULL" if col["mode"] == "REQUIRED" else "")


class LocalWarehouse:
    """Shared by the four warehouse handlers: one snapshot to observe, one session to apply."""

    def __init__(self, path: Path, buckets_root: Path, time_zone: str | None = None) -> None:
        self.path = Path(path)
        self.buckets_root = Path(buckets_root)
        self.time_zone = time_zone
        self._snapshot: dict[str, Any] | None = None
        self._con: DuckDBPyConnection | None = None
        self._session_cm: AbstractContextManager[DuckDBPyConnection] | None = None
        self._depth = 0
        self._lock = threading.RLock()

    # -- observing -------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self._lock, self._named_corruption():
            if self._snapshot is None:
                if self._con is not None:
                    self._snapshot = self._read_catalog(self._con)
                else:
                    with warehouse(self.path, write=False) as con:
                        self._snapshot = self._read_catalog(con)
            return self._snapshot

    @contextmanager
    def _named_corruption(self) -> Iterator[None]:
        """A DuckDB error that says the file is damaged becomes a CorruptState naming the file,
        never an empty catalog or an "unexpected" crash."""
        import duckdb

        try:
            yield
        except duckdb.Error as exc:
            if is_duckdb_corruption(exc):
                raise warehouse_error(self.path, str(exc)) from None
            raise

    def invalidate(self) -> None:
        with self._lock:
            self._snapshot = None

    @staticmethod
    def _read_catalog(con) -> dict[str, Any]:
        schemas = {r[0] for r in con.execute(
            "SELECT schema_name FROM duckdb_schemas() WHERE database_name = current_database()").fetchall()}
        tables = {f"{s}.{t}": size for s, t, size in con.execute(
            "SELECT schema_name, table_name, estimated_size FROM duckdb_tables() "
            "WHERE database_name = current_database()").fetchall()}
        cols: dict[str, list[dict[str, str]]] = {}
        for s, t, name, dtype, nullable in con.execute(
                "SELECT schema_name, table_name, column_name, data_type, is_nullable FROM duckdb_columns() "
                "WHERE database_name = current_database() ORDER BY schema_name, table_name, column_index").fetchall():
            cols.setdefault(f"{s}.{t}", []).append({"name": name, "type": dtype, "nullable": nullable})
        views = {f"{s}.{v}": sql for s, v, sql in con.execute(
            "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE NOT internal "
            "AND database_name = current_database()").fetchall()}
        meta: dict[str, dict[str, Any]] = {}
        if "main._funnelops_meta" in tables:
            for address, kind, cfg, live_sql in con.execute(
                    f"SELECT address, kind, config, live_sql FROM {META_TABLE}").fetchall():
                meta[address] = {"kind": kind, "config": json.loads(cfg), "live_sql": live_sql}
        return {"schemas": schemas, "tables": tables, "columns": cols, "views": views, "meta": meta}

    # -- applying --------------------------------------------------------------------------
    def _open(self) -> DuckDBPyConnection:
        """Open the write connection (taking the warehouse lock); caller holds self._lock."""
        cm = warehouse(self.path, write=True, time_zone=self.time_zone)
        con = cm.__enter__()
        try:
            con.execute(f"CREATE TABLE IF NOT EXISTS {META_TABLE} (address VARCHAR PRIMARY KEY, "
                        "kind VARCHAR NOT NULL, config VARCHAR NOT NULL, live_sql VARCHAR)")
        except BaseException:
            cm.__exit__(None, None, None)
            raise
        self._con, self._session_cm = con, cm
        return con

    def _close(self) -> None:
        cm = self._session_cm
        self._con, self._session_cm = None, None
        if cm is not None:
            cm.__exit__(None, None, None)

    @contextmanager
    def session(self) -> Iterator[None]:
        """Keep the write connection, once a change needs it, until the whole apply ends.

        Lazy on purpose: an apply that touches no warehouse object (templates only, when a
        scheduler is forced) never takes the warehouse lock, so it never waits on a run.
        """
        with self._lock:
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._close()

    def execute(self, statements: list[str], address: str, kind: str | None, config: dict | None,
                view: str | None = None) -> None:
        """Run DDL and record (or drop) the metadata of `address`, in one transaction."""
        with self._lock, self.session(), self._named_corruption():
            con = self._con if self._con is not None else self._open()
            con.execute("BEGIN TRANSACTION")
            try:
                for sql in statements:
                    con.execute(sql)
                con.execute(f"DELETE FROM {META_TABLE} WHERE address = ?", [address])
                if kind is not None:
                    live_sql = None
                    if view is not None:
                        ds, name = view.split(".", 1)
                        row = con.execute("SELECT sql FROM duckdb_views() WHERE schema_name = ? AND view_name = ?",
                                          [ds, name]).fetchone()
                        live_sql = row[0] if row else None
                    con.execute(f"INSERT INTO {META_TABLE} VALUES (?, ?, ?, ?)",
                                [address, kind, json.dumps(config, sort_keys=True), live_sql])
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
            self._snapshot = None

    def row_count(self, address: str) -> int:
        with self._lock, self._named_corruption():
            if self._con is not None:
                return int(scalar(self._con, f"SELECT COUNT(*) FROM {rel(address)}"))
            with warehouse(self.path, write=False) as con:
                return int(scalar(con, f"SELECT COUNT(*) FROM {rel(address)}"))


def _bq_type(duck: str) -> tuple[str, bool]:
    repeated = duck.endswith("[]")
    base = duck[:-2] if repeated else duck
    return _FROM_DUCK.get(base, base), repeated


class _Handler:
    kind = ""

    def __init__(self, wh: LocalWarehouse) -> None:
        self.wh = wh

    def _meta(self) -> dict[str, dict[str, Any]]:
        return {a: m for a, m in self.wh.snapshot()["meta"].items() if m["kind"] == self.kind}


class DatasetHandler(_Handler):
    kind = "dataset"

    def observe(self, names: Iterable[str]) -> dict[str, Observed]:
        snap = self.wh.snapshot()
        return {a: Observed(m["config"]) for a, m in self._meta().items() if a in snap["schemas"]}

    def create(self, res: Resource) -> None:
        self.wh.execute([f"CREATE SCHEMA IF NOT EXISTS {q(res.name)}"], res.name, self.kind, res.config)

    def update(self, res: Resource, observed: Observed, changed: list[str]) -> None:
        self.create(res)

    def delete(self, name: str, observed: Observed) -> None:
        self.wh.execute([f"DROP SCHEMA IF EXISTS {q(name)} CASCADE"], name, None, None)


class TableHandler(_Handler):
    kind = "table"

    def observe(self, names: Iterable[str]) -> dict[str, Observed]:
        snap = self.wh.snapshot()
        out = {}
        for address, m in self._meta().items():
            if address not in snap["tables"]:
                continue  # dropped by hand: the plan re-creates it
            schema = []
            for c in snap["columns"].get(address, []):
                bq, repeated = _bq_type(c["type"])
                mode = "REPEATED" if repeated else ("NULLABLE" if c["nullable"] else "REQUIRED")
                schema.append({"name": c["name"], "type": bq, "mode": mode})
            cfg = dict(m["config"])
            cfg["schema"] = schema
            out[address] = Observed(cfg, rows=int(snap["tables"][address] or 0))
        return out

    def _meta_config(self, res: Resource) -> dict[str, Any]:
        return {k: v for k, v in res.config.items() if k != "schema"}

    def create(self, res: Resource) -> None:
        """A plain CREATE: it fails on an existing object (DuckDB names ignore case), never drops
        one. Replacing a table is a planned `replace`, under the plan's data-loss guards."""
        cols = ", ".join(column_ddl(c) for c in res.config["schema"])
        self.wh.execute([f"CREATE TABLE {rel(res.name)} ({cols})"], res.name, self.kind, self._meta_config(res))

    def update(self, res: Resource, observed: Observed, changed: list[str]) -> None:
        stmts = []
        if "schema" in changed:
            have = {c["name"]: c for c in observed.config["schema"]}
            for c in res.config["schema"]:
                if c["name"] not in have:
                    stmts.append(f"ALTER TABLE {rel(res.name)} ADD COLUMN {q(c['name'])} "
                                 f"{duck_column_type(c['type'], c['mode'])}")
                elif have[c["name"]]["mode"] == "REQUIRED" and c["mode"] == "NULLABLE":
                    stmts.append(f"ALTER TABLE {rel(res.name)} ALTER COLUMN {q(c['name'])} DROP NOT NULL")
        self.wh.execute(stmts, res.name, self.kind, self._meta_config(res))

    def delete(self, name: str, observed: Observed) -> None:
        self.wh.execute([f"DROP TABLE IF EXISTS {rel(name)}"], name, None, None)

    def rows(self, name: str) -> int:
        return self.wh.row_count(name)


class _ViewLike(_Handler):
    sql_field: str  # the config field a hand edit of the live view is reported under

    def select_sql(self, res: Resource) -> str:
        raise NotImplementedError

    def observe(self, names: Iterable[str]) -> dict[str, Observed]:
        snap = self.wh.snapshot()
        out = {}
        for address, m in self._meta().items():
            live = snap["views"].get(address)
            if live is None:
                continue
            cfg = dict(m["config"])
            if m["live_sql"] is not None and live != m["live_sql"]:
                cfg[self.sql_field] = EDITED
            out[address] = Observed(cfg)
        return out

    def _create(self, res: Resource, select_sql: str, replace: bool = False) -> None:
        """CREATE VIEW; only an update (of a view funnelops manages) may replace one."""
        verb = "CREATE OR REPLACE VIEW" if replace else "CREATE VIEW"
        self.wh.execute([f"{verb} {rel(res.name)} AS {select_sql}"], res.name, self.kind, res.config, view=res.name)

    def create(self, res: Resource, replace: bool = False) -> None:
        self._create(res, self.select_sql(res), replace)

    def update(self, res: Resource, observed: Observed, changed: list[str]) -> None:
        self.create(res, replace=True)

    def delete(self, name: str, observed: Observed) -> None:
        self.wh.execute([f"DROP VIEW IF EXISTS {rel(name)}"], name, None, None)


class ExternalTableHandler(_ViewLike):
    kind = "external_table"
    sql_field = "prefix"

    def source_glob(self, cfg: dict[str, Any]) -> str:
        base = self.wh.buckets_root / cfg["bucket"]
        if cfg["prefix"]:
            base = base / cfg["prefix"]
        return str(base / "**" / "*.parquet")

    def select_sql(self, res: Resource) -> str:
        glob = self.source_glob(res.config).replace("'", "''")
        hive = "true" if res.config["hive_partitioning"] else "false"
        return f"SELECT * FROM read_parquet('{glob}', hive_partitioning = {hive}, union_by_name = true)"


class ViewHandler(_ViewLike):
    kind = "view"
    sql_field = "query"

    def select_sql(self, res: Resource) -> str:
        """The view's DuckDB text: one query, checked again here right before it runs."""
        from funnelops.errors import BackendError
        from funnelops.spec.sql_safety import problem_message
        from funnelops.spec.sqlrefs import SqlError, to_duckdb

        try:
            return to_duckdb(res.config["query"])
        except SqlError as exc:
            raise BackendError(f"view {res.name}: {problem_message(exc)}", "fix the view's query; "
                               "`funnelops validate` names the line") from None
