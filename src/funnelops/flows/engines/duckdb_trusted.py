"""The trusted engine on SQLFrame over an in-memory DuckDB, writing hive partitions into folders.

Staging is :mod:`funnelops.flows.raw` (plain DuckDB: CSV as all-VARCHAR with rejects kept
aside, Excel through python-calamine); the flow's DataFrame is materialized once as a table;
kept rows and quarantined rows are written as Parquet into scratch space, then swapped into
the trusted bucket's folders atomically by the injected :class:`FolderStore` (the table's
exclusive lock held, the commit-point check run under it).

A `full` run whose inputs (flow code, runtime code, every source file's size and mtime) match
the last full build of that flow reuses it instead of rebuilding: the initial load starts the
DAY, MONTH and YEAR workflows at once, all with `full`, and the output is a function of those
inputs. Builders of one flow are serialized by a lock, so the first builds and the others reuse.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from collections.abc import Iterator

from funnelops.errors import BackendError
from funnelops.flows import raw as rawmod
from funnelops.flows.args import Period
from funnelops.flows.context import FlowResult, RunContext
from funnelops.flows.engine import DuckEngine, activate
from funnelops.flows.engines.base import FolderStore, Replacement, RuleCounts, SourceFile, Verify
from funnelops.flows.layout import Layout
from funnelops.flows.source_checks import FlowSourceError

if TYPE_CHECKING:
    import duckdb

MANIFESTS = "_manifests"
_HERE = Path(__file__).resolve().parent
# The runtime code a build's output depends on: a change to any of them invalidates reuse.
_RUNTIME_CODE = (_HERE.parent / "dq.py", _HERE.parent / "dq_formats.py", _HERE.parent / "quality.py",
                 _HERE.parent / "raw.py", _HERE.parent / "source_checks.py", _HERE.parent / "layout.py",
                 _HERE.parent / "trusted_runner.py", _HERE / "duckdb_trusted.py")


@dataclass
class DuckStaged:
    """One flow's objects in the engine's connection, and its scratch folder once written."""

    staged: rawmod.Staged
    columns: tuple[str, ...]
    work: Path | None = None


def missing_file_hint(has_generator: bool) -> str:
    """What to do about a missing source file: `data generate` only helps a project that has a
    generator (`data:` in its file); every project can load its own files."""
    load = "put the files into the raw bucket with `funnelops data load FILE... --flow NAME`"
    if has_generator:
        load += ", or write sample data with `funnelops data generate`"
    return load + ", or pick a period that has data (--period)"


class DuckTrusted:
    """:class:`funnelops.flows.engines.base.TrustedEngine` on SQLFrame/DuckDB and local folders."""

    def __init__(self, engine: DuckEngine, store: FolderStore, raw_bucket: str, trusted_bucket: str,
                 missing_hint: str = "") -> None:
        self.engine, self.store = engine, store
        self.missing_hint = missing_hint or missing_file_hint(has_generator=False)
        self.raw_bucket, self.trusted_bucket = raw_bucket, trusted_bucket
        self.raw_root = store.bucket_dir(raw_bucket)
        self.trusted_root = store.bucket_dir(trusted_bucket)
        self.raw_location = self.raw_root.name

    @classmethod
    @contextmanager
    def open(cls, ctx: RunContext, store: FolderStore) -> Iterator[DuckTrusted]:
        """An engine for one run: flow modules loaded from now on bind SQLFrame's API."""
        activate("duckdb")
        engine = DuckEngine(ctx.time_zone, temp_dir=str(store.scratch / "duckdb-spill"))
        try:
            yield cls(engine, store, ctx.bucket_name("raw"), ctx.bucket_name("trusted"),
                      missing_file_hint(has_generator=ctx.loaded.spec.data is not None))
        finally:
            engine.close()

    # -- listing and reuse ------------------------------------------------------------------
    def source_files(self, source: Layout | str, period: Period | None) -> list[SourceFile]:
        return rawmod.source_files(self.raw_root, source, period)

    def claim(self, flow: str, module: ModuleType, files: list[SourceFile], period: Period | None, *,
              wait: bool) -> _DuckClaim | None:
        lock = self.store.lock(self.trusted_bucket, f"_build/{flow}", exclusive=True, wait=wait)
        try:
            lock.__enter__()
        except BackendError:
            return None
        try:
            fingerprint = _fingerprint(module, files, period)
        except BaseException:
            lock.__exit__(None, None, None)
            raise
        return _DuckClaim(lock, self.trusted_root / MANIFESTS / f"{flow}.json", fingerprint,
                          self.trusted_root / module.TARGET, full=period is None)

    # -- building ---------------------------------------------------------------------------
    def stage(self, flow: str, files: list[SourceFile], columns: tuple[str, ...], allow_empty: bool, *,
              source: Layout | None = None, period: Period | None = None) -> DuckStaged:
        staged = rawmod.stage(self.engine.con, f"stg_{flow}", self.raw_root, files, columns, allow_empty=allow_empty,
                              source=source, period=period)
        return DuckStaged(staged, columns)

    def frame(self, staged: DuckStaged) -> Any:
        return self.engine.table(staged.staged.view)

    def materialize(self, flow: str, checked: Any) -> str:
        chk = f"chk_{flow}"
        try:
            self.engine.materialize(checked, chk)
        except Exception as exc:  # DuckDB names the file when a CSV cannot be decoded at all
            raise FlowSourceError(f"trusted flow {flow}: cannot read its source files: {exc}") from None
        return chk

    def columns(self, checked: str) -> set[str]:
        # read from the result table: asking SQLFrame for `df.columns` costs a query rebuild
        return {r[0] for r in self.engine.con.execute(f"DESCRIBE {checked}").fetchall()}

    def count_rules(self, flow: str, staged: DuckStaged, checked: str) -> RuleCounts:
        con, st = self.engine.con, staged.staged
        rawmod.check_complete(con, st, checked, flow)
        rules = dict(con.execute(f"SELECT dq_rule, count(*) FROM {checked} WHERE dq_rule IS NOT NULL "
                                 f"GROUP BY 1").fetchall())
        for rule, n in con.execute(f"SELECT rule, count(*) FROM ({st.rejects}) GROUP BY 1").fetchall():
            rules[rule] = rules.get(rule, 0) + n
        kept = _count(con, f"SELECT count(*) FROM {checked} WHERE dq_rule IS NULL")
        return RuleCounts(kept, rules, sum(st.out_of_period.values()))

    def replace_partitions(self, flow: str, staged: DuckStaged, checked: str, output: tuple[str, ...],
                           data: Replacement, quarantine: Replacement, *, period_rule: bool,
                           before_commit: Verify) -> None:
        """Write both outputs into scratch space first, then swap each in (a failed write
        leaves both tables as they were)."""
        if period_rule:
            self._restore_raw_records(staged, checked)
        staged.work = self.store.scratch / f"{flow}-{uuid.uuid4().hex}"
        staged.work.mkdir(parents=True)
        data_dir, q_dir = staged.work / "data", staged.work / "quarantine"
        self._copy_kept(checked, output, data.key, data_dir)
        self._copy_quarantine(flow, staged.staged, checked, q_dir)
        for rep, new_dir in ((data, data_dir), (quarantine, q_dir)):
            self.store.replace_partitions(self.trusted_bucket, rep.table, new_dir, rep.key, rep.in_scope,
                                          before_commit=before_commit)

    def quarantine_sample(self, flow: str, staged: DuckStaged, checked: str, rules: list[str],
                          per_rule: int) -> list[tuple[str, str, int | None, str | None]]:
        self._restore_raw_records(staged, checked)
        q = self._quarantine_sql(flow, staged.staged, checked)
        return self.engine.con.execute(
            f"SELECT rule, source_file, source_line, raw_record FROM ({q}) WHERE list_contains(?, rule) "
            f"QUALIFY row_number() OVER (PARTITION BY rule ORDER BY source_file, source_line) <= ? "
            f"ORDER BY list_position(?, rule), source_file, source_line", [rules, per_rule, rules]).fetchall()

    def release(self, flow: str, staged: DuckStaged, checked: str | None) -> None:
        con, st = self.engine.con, staged.staged
        if staged.work is not None:
            shutil.rmtree(staged.work, ignore_errors=True)
        for obj in (f"chk_{flow}", f"{st.view}_files", f"{st.view}_rej", f"{st.view}_rejscan"):
            con.execute(f"DROP TABLE IF EXISTS {obj}")
        con.execute(f"DROP {'VIEW' if st.kind == 'csv' or st.base else 'TABLE'} IF EXISTS {st.view}")
        if st.base:
            con.execute(f"DROP TABLE IF EXISTS {st.base}")
            con.execute(f"DROP TABLE IF EXISTS {st.base}_dates")

    # -- writing ----------------------------------------------------------------------------
    def _restore_raw_records(self, staged: DuckStaged, chk: str) -> None:
        """Give rows quarantined by the period rule their raw text (only when there are such
        rows: it reads the staged input again)."""
        from funnelops.flows.trusted_runner import raw_records

        con = self.engine.con
        if not _count(con, f"SELECT count(*) FROM {chk} WHERE dq_rule = 'date_in_period' "
                           f"AND _raw_record IS NULL"):
            return
        src = self.engine.to_sql(raw_records(self.engine.table(staged.staged.view), staged.columns))
        con.execute(f"UPDATE {chk} SET _raw_record = r._raw_record FROM ({src}) r "
                    f"WHERE {chk}.dq_rule = 'date_in_period' AND {chk}._raw_record IS NULL "
                    f"AND {chk}._file_index = r._file_index AND {chk}._row = r._row")

    def _copy_kept(self, chk: str, output: tuple[str, ...], key: str, out_dir: Path) -> None:
        out_cols = ", ".join(f'"{c}"' for c in output)
        # paths are SQL string literals, escaped: a home may contain a quote (`/home/o'brien`)
        self.engine.con.execute(
            f"COPY (SELECT {out_cols} FROM {chk} WHERE dq_rule IS NULL) TO {rawmod._sql_str(str(out_dir))} "
            f"(FORMAT parquet, PARTITION_BY ({key}), FILENAME_PATTERN 'part-{{i}}', OVERWRITE_OR_IGNORE)")

    def _copy_quarantine(self, flow: str, st: rawmod.Staged, chk: str, out_dir: Path) -> None:
        self.engine.con.execute(f"""
            COPY ({self._quarantine_sql(flow, st, chk)}) TO {rawmod._sql_str(str(out_dir))} (FORMAT parquet,
                 PARTITION_BY (extract_date), FILENAME_PATTERN 'part-{{i}}', OVERWRITE_OR_IGNORE)""")

    @staticmethod
    def _quarantine_sql(flow: str, st: rawmod.Staged, chk: str) -> str:
        """Every quarantined row (flow rules, the period rule, staging rejects) in the quarantine's columns."""
        return f"""
              SELECT c.dq_rule AS rule, f.source_file, l.source_line, c._raw_record AS raw_record,
                     {rawmod._sql_str(flow)} AS flow, f.extract_date
              FROM {chk} c JOIN ({rawmod.line_sql(st, chk)}) l USING (_file_index, _row)
              JOIN {st.view}_files f USING (_file_index)
              UNION ALL
              SELECT r.rule, f.source_file, CAST(r.line AS BIGINT), r.raw_record, {rawmod._sql_str(flow)},
                     f.extract_date
              FROM ({st.rejects}) r JOIN {st.view}_files f USING (_file_index)"""


class _DuckClaim:
    """The flow's build lock (already held) and its manifest: reuse an identical full build."""

    def __init__(self, lock: AbstractContextManager[None], manifest: Path, fingerprint: str, table_dir: Path, *,
                 full: bool) -> None:
        self.lock, self.manifest, self.fingerprint = lock, manifest, fingerprint
        self.table_dir, self.full = table_dir, full

    def __enter__(self) -> _DuckClaim:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.lock.__exit__(*exc)

    def reused(self) -> FlowResult | None:
        """The recorded result when this full build's inputs are unchanged and its partitions are
        all still there; otherwise forget the manifest (a build is about to change the table)."""
        if self.full:
            result = _reuse(self.manifest, self.fingerprint, self.table_dir)
            if result is not None:
                return result
        self.manifest.unlink(missing_ok=True)
        return None

    def save(self, result: FlowResult) -> None:
        if self.full:
            _save_manifest(self.manifest, self.fingerprint, result, self.table_dir)


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    """The number a `SELECT count(*)` query returns (an aggregate always yields one row)."""
    row = con.execute(sql).fetchone()
    assert row is not None, sql
    return int(row[0])


def _fingerprint(module: ModuleType, files: list[SourceFile], period: Period | None) -> str:
    h = hashlib.sha256()
    if module.__file__ is None:  # flow modules are always loaded from a file
        raise ValueError(f"flow module {module.__name__} has no source file")
    for code in (Path(module.__file__), *_RUNTIME_CODE):
        h.update(code.read_bytes())
    h.update(repr(None if period is None else (period.start, period.end)).encode())
    for _, p in files:
        st = p.stat()
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _reuse(manifest: Path, fingerprint: str, table_dir: Path) -> FlowResult | None:
    try:
        m = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if m.get("fingerprint") != fingerprint or not all((table_dir / p).is_dir() for p in m.get("partitions", [])):
        return None
    r = m["result"]
    return FlowResult("trusted", r["flow"], read=r["read"], kept=r["kept"], quarantined=r["quarantined"],
                      rules=r.get("rules", {}), reused=True)


def _save_manifest(manifest: Path, fingerprint: str, result: FlowResult, table_dir: Path) -> None:
    manifest.parent.mkdir(parents=True, exist_ok=True)
    parts = sorted(p.name for p in table_dir.iterdir() if p.is_dir()) if table_dir.is_dir() else []
    body = {"fingerprint": fingerprint, "partitions": parts,
            "result": {k: getattr(result, k) for k in ("flow", "read", "kept", "quarantined", "rules")}}
    tmp = manifest.with_name(manifest.name + f".{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(body), encoding="utf-8")
    tmp.replace(manifest)
