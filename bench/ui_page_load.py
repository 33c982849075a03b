"""bench/ui_page_load.py: the dashboard's page load with 10,000 runs in the ledger.

    .venv/bin/python bench/ui_page_load.py [--runs 10000] [--loads 20] [--dir DIR] [--no-browser]

1. A home: `funnelops demo` (small data: the lifecycle done, templates and schedulers real), then
   --runs run records added to its ledger in ONE transaction through the local backend's run store
   (`RunStore.insert`, then each run's outcome): the example's four workflows, triggers scheduled,
   forced, initial-load and backfill, states mostly DONE with FAILED, CANCELLED and LOST among them,
   steps and per-flow rows/rules shaped as real runs record them, spread over the last two years.
2. A real `funnelops ui` subprocess on it (bench/ui_server.py).
3. For each of `/`, `/runs`, `/api/runs`, `/api/status`: 3 warm-up GETs, then --loads timed GETs
   (a new connection each, the whole body read): median and p95 in ms. With Chromium available
   (unless --no-browser), `/` and `/runs` are also loaded in headless Chromium and timed to the
   load event (navigation timing: HTML, CSS, JS and the page's own first API calls).

Exit 1 when the median load of `/` or `/runs` exceeds 300 ms (either measure). The last line
printed is one JSON object: {"runs": N, "http": {path: {median_ms, p95_ms}}, "browser": {...}}.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, UTC
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: import bench and funnelops from this checkout
    sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "src")]

from bench.ui_server import CHROMIUM_ARGS, build_demo, find_chromium, start_ui, stop_ui

BUDGET_MS = 300.0
PAGES = ("/", "/runs")
API = ("/api/runs", "/api/status")
TRIGGERS = (("scheduled", 70), ("forced", 15), ("initial-load", 5), ("backfill", 10))
STATES = (("DONE", 88), ("FAILED", 7), ("CANCELLED", 3), ("LOST", 2))
RULES = ("target_present", "valid_date", "amount_positive", "known_channel", "duplicate_key", "in_period")
GRAIN = {"DAY": timedelta(days=1), "MONTH": timedelta(days=31), "YEAR": timedelta(days=366)}


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([w for w, _ in weighted], [n for _, n in weighted])[0]


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds")


def _flows(rng: random.Random, trusted: list[str], refined: list[str], failed: bool) -> list[dict[str, Any]]:
    """Per-flow metrics as a run's step records them (flows/__main__'s JSON line)."""
    out = []
    for layer, names in (("trusted", trusted), ("refined", refined)):
        for name in names:
            read = rng.randrange(0, 50_000)
            rules = {r: rng.randrange(1, max(2, read // 50)) for r in rng.sample(RULES, rng.randrange(0, 3))} \
                if layer == "trusted" and read else {}
            quarantined = min(read, sum(rules.values()))
            out.append({"layer": layer, "flow": name, "read": read, "kept": read - quarantined,
                        "quarantined": quarantined, "seconds": round(rng.uniform(0.1, 30), 3),
                        "rules": dict(sorted(rules.items())), "reused": False, "out_of_period": 0, "warnings": []})
            if failed and rng.random() < 0.3:
                return out
    return out


def seed_runs(home: Path, project: Path, n: int, *, seed: int = 0, now: datetime | None = None) -> list[int]:
    """Add `n` finished runs to the home's ledger in one transaction; returns their ids (ascending).

    Through the local backend's own run store (`RunStore.insert` on the write transaction), then
    each run's outcome as the supervisor would have written it. Forced runs also get their
    `workflow-forced` event, as `pipeline workflow` writes one."""
    from funnelops.backends import open_backend
    from funnelops.spec.flow_checks import flow_paths
    from funnelops.spec.loader import load_project
    from funnelops.spec.refined_checks import refined_sources
    from funnelops.spec.project import template_args

    rng = random.Random(seed)
    loaded = load_project(project)
    backend = open_backend("local", loaded, home)
    try:
        runtime = backend.runtime
        trusted = [p.stem for p in flow_paths(loaded.base_dir)]
        refined = [s.name for s in refined_sources(loaded.base_dir)]
        workflows = [(w.name, w.granularity, template_args(loaded, w.name, "workflow")) for w in loaded.spec.workflows]
        now = now or datetime.now(UTC)
        span = timedelta(days=730)
        ids: list[int] = []
        with runtime.db.write() as con:
            for i in range(n):
                name, grain, base_args = workflows[i % len(workflows)] if rng.random() < 0.8 else rng.choice(workflows)
                trigger, state = _pick(rng, TRIGGERS), _pick(rng, STATES)
                created = now - span + span * (i + 1) / (n + 1)  # ids and time ascend together
                started = created + timedelta(milliseconds=rng.randrange(5, 400))
                took = timedelta(seconds=rng.lognormvariate(3.5, 0.6))
                period = (created - GRAIN[grain] * (trigger == "backfill") * rng.randrange(1, 30)).date()
                args = [*base_args, f"--lease={trigger}", f"--period={period.isoformat()}", f"--workflow={name}"]
                flows = _flows(rng, trusted, refined, state != "DONE")
                error = None if state == "DONE" else {
                    "FAILED": "step funnel-flows exited with 1: trusted flow leads: quarantine share over the limit",
                    "CANCELLED": "cancelled", "LOST": "the run's process died"}[state]
                step = {"step_id": "funnel-flows", "main": "funnelops.flows", "args": args, "prerequisites": [],
                        "state": state, "metrics": {"flows": flows, "period": period.isoformat(),
                                                    "granularity": grain, "execution_type": "delta",
                                                    "ok": state == "DONE", "error": error},
                        "exit_code": 0 if state == "DONE" else 1, "seconds": round(took.total_seconds(), 3),
                        "log": str(home / "runs" / "seeded" / "funnel-flows.log")}
                run_id = runtime.runs.insert(con, name, args, trigger, "bench@ui (seeded)", [step])
                totals = {k: sum(f[k] for f in flows) for k in ("read", "kept", "quarantined")}
                con.execute("UPDATE runs SET state = ?, created_at = ?, started_at = ?, ended_at = ?, rows = ?, "
                            "error = ?, log_dir = ? WHERE id = ?",
                            (state, _iso(created), _iso(started), _iso(started + took),
                             json.dumps({**totals, "flows": flows}), error, str(home / "runs" / str(run_id)), run_id))
                if trigger == "forced":
                    con.execute("INSERT INTO events (at, kind, subject, data) VALUES (?, 'workflow-forced', ?, ?)",
                                (_iso(created), name, json.dumps({"run_id": run_id, "scheduler": name,
                                                                  "spec_hash": loaded.spec_hash, "actor": "bench"})))
                ids.append(run_id)
        return ids
    finally:
        backend.close()


def _get_ms(url: str) -> float:
    """Milliseconds to GET `url` whole on a new connection; HTTPError when it is not 200."""
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as resp:
        resp.read()
    return (time.perf_counter() - t0) * 1000


def _figures(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median_ms": round(statistics.median(ordered), 1), "p95_ms": round(p95, 1)}


def measure_http(base: str, paths: tuple[str, ...], loads: int, warmup: int = 3) -> dict[str, dict[str, Any]]:
    """Median and p95 per path; a path that does not answer 200 is reported as {"error": ...}."""
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        try:
            for _ in range(warmup):
                _get_ms(base + path)
            out[path] = _figures([_get_ms(base + path) for _ in range(loads)])
        except urllib.error.HTTPError as exc:
            out[path] = {"error": f"HTTP {exc.code}"}
    return out


def measure_browser(base: str, paths: tuple[str, ...], loads: int, warmup: int = 2) -> dict[str, dict[str, float]]:
    """Navigation timing to the load event, in headless Chromium (a fresh page each load)."""
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    assert chromium is not None
    out = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        for path in paths:
            samples = []
            for i in range(warmup + loads):
                page = context.new_page()
                page.goto(base + path, wait_until="load")
                ms = page.evaluate("() => { const n = performance.getEntriesByType('navigation')[0];"
                                   " return n.loadEventEnd - n.startTime; }")
                page.close()
                if i >= warmup:
                    samples.append(float(ms))
            out[path] = _figures(samples)
        browser.close()
    return out


def run(demo: Path, n: int, loads: int, browser: bool) -> tuple[dict[str, Any], bool]:
    project = demo / "project" / "funnel.yaml"
    t0 = time.perf_counter()
    ids = seed_runs(demo / ".funnelops", project, n)
    print(f"seeded {len(ids):,} runs in {time.perf_counter() - t0:.2f}s", file=sys.stderr)
    server = start_ui(demo)
    try:
        http = measure_http(server.url, PAGES + API, loads)
        shots = measure_browser(server.url, tuple(p for p in PAGES if "error" not in http[p]), loads) if browser else {}
    finally:
        stop_ui(server)
    ok = all(http[p].get("median_ms", float("inf")) <= BUDGET_MS for p in PAGES) and \
        all(v["median_ms"] <= BUDGET_MS for v in shots.values())
    return {"runs": n, "loads": loads, "http": http, "browser": shots, "budget_ms": BUDGET_MS, "ok": ok}, ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--loads", type=int, default=20)
    ap.add_argument("--dir", type=Path, help="where to build the demo home (default: a temporary folder)")
    ap.add_argument("--no-browser", action="store_true", help="HTTP timings only (no Chromium)")
    args = ap.parse_args(argv)
    browser = not args.no_browser and find_chromium() is not None
    with tempfile.TemporaryDirectory(prefix="funnelops-uibench-") as tmp:
        demo = build_demo((args.dir or Path(tmp)) / "demo", rows="1000")
        result, ok = run(demo, args.runs, args.loads, browser)
    for kind in ("http", "browser"):
        for path, fig in result[kind].items():
            if "error" in fig:
                print(f"{kind:8} {path:12} {fig['error']}")
            else:
                print(f"{kind:8} {path:12} median {fig['median_ms']:7.1f} ms   p95 {fig['p95_ms']:7.1f} ms")
    if not ok:
        print(f"FAIL: / or /runs did not answer 200, or its median load is over {BUDGET_MS:.0f} ms", file=sys.stderr)
    print(json.dumps(result))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
