"""Run one trusted flow of the Funnel project over hand-written raw files in a temporary home."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb
import pytest

from funnelops.flows.args import resolve_period
from funnelops.backends.local.flows_runtime import LocalFolders
from funnelops.flows.context import RunContext
from funnelops.flows.engines.duckdb_trusted import DuckTrusted
from funnelops.flows.trusted_runner import run_trusted
from funnelops.spec.loader import load_project
from funnelops.spec.models import Quality

PROJECT = Path(__file__).resolve().parents[3] / "projects" / "funnel" / "funnel.yaml"


@pytest.fixture(scope="session")
def funnel():
    return load_project(PROJECT)


@pytest.fixture
def flow_runner(tmp_path, funnel):
    raw = tmp_path / "buckets" / funnel.spec.bucket_for("raw").name
    trusted = tmp_path / "buckets" / funnel.spec.bucket_for("trusted").name

    def write(rel: str, content: str | bytes) -> Path:
        p = raw / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return p

    def run(name: str, granularity: str = "DAY", period: str | None = None, execution_type: str = "delta",
            max_share: float | None = None):
        """`max_share` replaces the project's quality.max_quarantine_share for this run."""
        loaded = funnel if max_share is None else dataclasses.replace(
            funnel, spec=funnel.spec.model_copy(update={"quality": Quality(max_quarantine_share=max_share)}))
        ctx = RunContext(loaded, granularity, execution_type,
                         resolve_period(granularity, period or "2024-03-05", "America/Bogota"))
        with DuckTrusted.open(ctx, LocalFolders(tmp_path)) as engine:
            [result] = run_trusted(ctx, [name], engine)
        return result

    def rows(prefix: str, order_by: str) -> list[dict]:
        folder = trusted / prefix
        if not any(folder.glob("**/*.parquet")):
            return []
        con = duckdb.connect()
        cur = con.execute(f"SELECT * FROM read_parquet('{folder}/**/*.parquet', hive_partitioning = true) "
                          f"ORDER BY {order_by}")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    run.write, run.rows, run.trusted = write, rows, trusted
    return run
