"""bench/force.py: how fast a forced run starts, and how fast 10,000 next fire times are computed.

    .venv/bin/python bench/force.py [--rounds 5] [--rows 5000] [--home DIR]

1. force_to_running_s: on a home prepared with small data (IaC and Initial data done), the time
   from launching `funnelops pipeline workflow --scheduler Día` (a subprocess, so interpreter start-up
   and imports count) to the new run being RUNNING in the ledger's `runs` table, polled from the
   moment the command is launched. Median of --rounds; each round waits for the run to end.
   Target <= 0.5 s.
2. next_fire_10k_s: next fire time of 10,000 schedulers, cold caches (parsing included); median
   of 5 of `bench/next_fire.py:bench_next_fire` on the `distinct` population (almost every
   scheduler has its own cron and time zone). Target <= 0.2 s.

The last line printed is one JSON object with the keys `force_to_running_s` and `next_fire_10k_s`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FUNNELOPS = str(Path(sys.executable).with_name("funnelops"))


def _env(project: Path, home: Path) -> dict[str, str]:
    return dict(os.environ, FUNNELOPS_PROJECT=str(project), FUNNELOPS_HOME=str(home), NO_COLOR="1")


def _cli(env: dict[str, str], *args: str) -> None:
    proc = subprocess.run([FUNNELOPS, *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"funnelops {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def prepare(base: Path, rows: int) -> tuple[Path, Path]:
    project_dir = base / "project"
    if not (project_dir / "funnel.yaml").exists():
        shutil.copytree(REPO / "projects" / "funnel", project_dir,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    project, home = project_dir / "funnel.yaml", base / "home"
    env = _env(project, home)
    if not (home / "ledger.sqlite").exists():
        t0 = time.perf_counter()
        _cli(env, "data", "generate", "--rows", str(rows))
        _cli(env, "pipeline", "funnel", "--data-stage", "IaC")
        _cli(env, "pipeline", "funnel", "--data-stage", "Initial data")
        print(f"prepared {home} ({rows:,} rows, IaC and Initial data) in {time.perf_counter() - t0:.1f}s",
              file=sys.stderr)
    return project, home


def _query(con: sqlite3.Connection, sql: str, args: tuple = ()):
    while True:
        try:
            return con.execute(sql, args).fetchone()
        except sqlite3.OperationalError as exc:  # the ledger is being written: read again
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(0.001)


def force_once(project: Path, home: Path, timeout: float = 60.0) -> float:
    env = _env(project, home)
    con = sqlite3.connect(f"file:{home / 'ledger.sqlite'}?mode=ro", uri=True, timeout=5)
    try:
        last = _query(con, "SELECT COALESCE(MAX(id), 0) FROM runs")[0]
        t0 = time.perf_counter()
        proc = subprocess.Popen([FUNNELOPS, "pipeline", "workflow", "--scheduler", "Día"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        elapsed = None
        while time.perf_counter() - t0 < timeout:
            row = _query(con, "SELECT id, state FROM runs WHERE id > ? AND workflow = 'funnel-dia' "
                              "ORDER BY id LIMIT 1", (last,))
            if row is not None and row[1] in ("RUNNING", "DONE", "FAILED", "LOST", "CANCELLED"):
                elapsed = time.perf_counter() - t0
                break
            if proc.poll() is not None and row is None:
                break
            time.sleep(0.002)
        out, err = proc.communicate(timeout=timeout)
        if elapsed is None or proc.returncode != 0:
            raise SystemExit(f"the forced run did not start (exit {proc.returncode}):\n{out}\n{err}")
        run_id = row[0]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # wait for the run to end before the next round
            state = _query(con, "SELECT state FROM runs WHERE id = ?", (run_id,))[0]
            if state not in ("PENDING", "RUNNING"):
                if state != "DONE":
                    raise SystemExit(f"run {run_id} ended {state}")
                break
            time.sleep(0.1)
        return elapsed
    finally:
        con.close()


def next_fire_10k(repeat: int = 5) -> float:
    from next_fire import bench_next_fire  # bench/next_fire.py (this script's folder is on sys.path)

    return statistics.median(bench_next_fire(10_000, kind="distinct", cold=True) for _ in range(repeat))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--rows", type=int, default=5000, help="raw rows for the prepared home")
    p.add_argument("--home", type=Path, help="a directory to prepare (and reuse); default a temporary one")
    a = p.parse_args(argv)
    tmp = None
    base = a.home
    if base is None:
        tmp = tempfile.TemporaryDirectory(prefix="funnelops-bench-")
        base = Path(tmp.name)
    try:
        project, home = prepare(base, a.rows)
        force_once(project, home)  # warm the page cache and the templates (first force initializes them)
        times = []
        for i in range(a.rounds):
            t = force_once(project, home)
            times.append(t)
            print(f"round {i + 1}: force -> RUNNING in {t:.3f}s", file=sys.stderr)
        nf = next_fire_10k()
        print(f"next fire of 10,000 schedulers (cold): {nf:.3f}s", file=sys.stderr)
        figures = {"force_to_running_s": round(statistics.median(times), 3), "next_fire_10k_s": round(nf, 4),
                   "force_rounds_s": [round(t, 3) for t in times],
                   "targets": {"force_to_running_s": 0.5, "next_fire_10k_s": 0.2}}
        print(json.dumps(figures))
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
