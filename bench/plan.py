"""Benchmark: a project of N resources applied on local, then a no-op plan and `funnelops --help`.

    .venv/bin/python bench/plan.py [--resources 1000] [--runs 5]

The no-op plan is timed through the library on the same path as `funnelops plan`: load and
validate the project, open the local backend, observe, diff, render the lines. Each figure is the
median of several runs. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"noop_plan_s": 0.5, "help_s": 0.25}
CPU: list[float] = []  # CPU seconds of each no-op plan: a figure that a busy machine does not inflate


def generate(root: Path, n: int) -> Path:
    """A realistic mix: mostly tables with schemas, some views, templates and schedulers."""
    n_buckets = max(1, n * 2 // 100)
    n_datasets = max(1, n * 5 // 100)
    n_workflows = max(1, n * 4 // 100)
    n_schedulers = n_workflows
    n_views = max(1, n * 15 // 100)
    n_tables = max(1, n - n_buckets - n_datasets - n_workflows - n_schedulers - n_views)
    (root / "schemas").mkdir(parents=True, exist_ok=True)
    (root / "schemas" / "fact.json").write_text(json.dumps([
        {"name": "period_start", "type": "DATE", "mode": "REQUIRED"},
        {"name": "channel", "type": "STRING", "mode": "REQUIRED"},
        {"name": "segment", "type": "STRING"},
        {"name": "volume", "type": "INT64"},
        {"name": "amount", "type": "NUMERIC"},
        {"name": "loaded_at", "type": "TIMESTAMP"},
    ]))
    out = ["project:", "  id: bench-project", "  time_zone: America/Bogota",
           "variables:", "  env: bench", "  region: us-east1", "buckets:"]
    out += [f"  - {{name: bench-bucket-{i}, labels: {{app: bench}}}}" for i in range(n_buckets)]
    out.append("datasets:")
    out += [f"  - {{id: ds_{i}, description: dataset {i}, labels: {{app: bench}}}}" for i in range(n_datasets)]
    out.append("tables:")
    tables = []
    for i in range(n_tables):
        ds = f"ds_{i % n_datasets}"
        tables.append(f"{ds}.t_{i}")
        if i % 3 == 0:
            out.append(f"  - {{dataset: {ds}, name: t_{i}, schema_file: schemas/fact.json, "
                       f"partitioning: {{field: period_start, type: DAY}}, clustering: [channel]}}")
        else:
            out.append(f"  - dataset: {ds}\n    name: t_{i}\n    description: table {i}\n    schema:\n"
                       f"      - {{name: day, type: DATE, mode: REQUIRED}}\n      - {{name: key, type: STRING}}\n"
                       f"      - {{name: n, type: INT64}}\n      - {{name: x, type: FLOAT64}}")
    out.append("views:")
    plain = [t for k, t in enumerate(tables) if k % 3] or tables  # the ones with day/key/n columns
    for i in range(n_views):
        a = plain[i % len(plain)]
        b = plain[(i * 7 + 1) % len(plain)]
        src = f"SELECT day, key, SUM(n) AS n FROM `bench-project.{a}` GROUP BY day, key"
        if i % 2 and i > 0:  # some views read other views
            src = f"SELECT v.day, v.n FROM ds_0.v_{i - 1} AS v JOIN {b} AS b ON b.day = v.day"
        out.append(f"  - dataset: ds_0\n    name: v_{i}\n    query: \"{src}\"")
    out.append("workflows:")
    for i in range(n_workflows):
        out.append(f"  - name: wf-{i}\n    granularity: DAY\n    initial_load: {str(i % 2 == 0).lower()}\n"
                   f"    args: [\"--granularity=DAY\", \"--execution_type=delta\"]\n"
                   f"    jobs:\n      - step_id: load-raw\n      - step_id: build\n        prerequisites: [load-raw]")
    out.append("schedulers:")
    out += [f"  - {{name: Sched {i}, id: sched-{i}, cron: \"{i % 60} 6 * * *\", workflow: wf-{i}}}"
            for i in range(n_schedulers)]
    path = root / "funnel.yaml"
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def noop_plan(path: Path, home: Path) -> tuple[float, dict]:
    """The path of `funnelops plan`: load, open the backend, observe, diff, render."""
    from rich.console import Console

    from funnelops.backends import open_backend
    from funnelops.plan.diff import build_plan
    from funnelops.plan.render import plan_lines
    from funnelops.spec.loader import load_project

    t0 = time.perf_counter()
    c0 = time.process_time()
    loaded = load_project(path)
    backend = open_backend("local", loaded, home)
    plan = build_plan(loaded, backend, "iac")
    console = Console(file=io.StringIO(), highlight=False, soft_wrap=True)  # as cli.context.Console
    console.print("\n".join(plan_lines(plan)))  # as cli.infra_cmd.plan
    backend.close()
    CPU.append(time.process_time() - c0)
    return time.perf_counter() - t0, plan.summary()


def median_of(fn, runs: int) -> float:
    return statistics.median(fn() for _ in range(runs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resources", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()

    from funnelops.backends import open_backend
    from funnelops.lifecycle.infra import create_infra
    from funnelops.spec.loader import load_project

    with tempfile.TemporaryDirectory(prefix="funnelops-bench-") as d:
        root = Path(d)
        path = generate(root / "project", args.resources)
        home = root / "home"
        loaded = load_project(path)
        backend = open_backend("local", loaded, home)
        t0 = time.perf_counter()
        plan, result = create_infra(loaded, backend, "iac", actor="bench")
        apply_s = time.perf_counter() - t0
        n = len(plan.changes)
        print(f"applied {len(result.done)} of {n} resources in {apply_s:.2f}s", file=sys.stderr)

        secs, summary = noop_plan(path, home)  # warm-up; also checks it is a no-op
        if summary["create"] + summary["update"] + summary["replace"] + summary["delete"]:
            raise SystemExit(f"the plan after apply is not a no-op: {summary}")
        CPU.clear()
        noop_s = median_of(lambda: noop_plan(path, home)[0], args.runs)
        noop_cpu_s = statistics.median(CPU)
        print(f"no-op plan: {noop_s:.3f}s wall, {noop_cpu_s:.3f}s CPU (median of {args.runs}; "
              f"target <= {TARGETS['noop_plan_s']}s)",
              file=sys.stderr)

    exe = Path(sys.executable).with_name("funnelops")

    def help_once() -> float:
        t = time.perf_counter()
        subprocess.run([str(exe), "--help"], check=True, capture_output=True)
        return time.perf_counter() - t

    help_once()  # warm the file cache
    help_s = median_of(help_once, args.runs)
    print(f"funnelops --help: {help_s:.3f}s (median of {args.runs}; target <= {TARGETS['help_s']}s)",
          file=sys.stderr)
    print(json.dumps({"resources": n, "noop_plan_s": round(noop_s, 4), "apply_s": round(apply_s, 3),
                      "help_s": round(help_s, 4), "noop_plan_cpu_s": round(noop_cpu_s, 4)}))


if __name__ == "__main__":
    main()
