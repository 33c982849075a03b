"""Overlap protection under stress and failure, on the real local backend (processes, SQLite, DuckDB).

(a) 32 processes force the same scheduler at once, 20 rounds: one run at a time, exits 0 or 3.
(b) kill -9 of a run's supervisor: lease recovered, run LOST, its step dead, the period re-runs
    to the same refined counts as a clean run in another home.
(c) kill -9 of `create-infra` midway: the next apply converges, the ledger is intact.
(d) the flows entry point started by hand, and a scheduler fire, while the workflow runs: refused / skipped.
(e) runs of different workflows overlapping in time both succeed; status and runs answer meanwhile.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo
from pathlib import Path

import pytest

from funnelops.cli.main import main as cli_main
from tests.helpers.tiny_project import wait_until, write_tiny

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
FUNNEL = REPO / "projects" / "funnel"
FUNNELOPS = str(Path(sys.executable).with_name("funnelops"))
ROUNDS, PROCS = 20, 32

STEP = textwrap.dedent('''
    """A tiny workflow step: records its own interval, so overlap is visible outside the ledger."""
    import os, sys, time
    out = os.environ["STEP_INTERVALS"]
    t0 = time.time()
    time.sleep(float(os.environ.get("STEP_SLEEP", "0.3")))
    gate = os.environ.get("STEP_GATE")
    while gate and not os.path.exists(gate):  # the test opens the gate once every forcer has answered
        time.sleep(0.01)
    t1 = time.time()
    with open(out, "a") as fh:
        fh.write(f"{os.getpid()} {t0:.6f} {t1:.6f} {os.environ.get('FUNNELOPS_RUN_ID', '')}\\n")
''')


def cli(project: Path, home: Path, *args: str, env: dict | None = None, timeout: float = 300,
        check: int | None = 0) -> subprocess.CompletedProcess:
    e = dict(os.environ, FUNNELOPS_PROJECT=str(project), FUNNELOPS_HOME=str(home), NO_COLOR="1", **(env or {}))
    proc = subprocess.run([FUNNELOPS, *args], env=e, capture_output=True, text=True, timeout=timeout)
    if check is not None:
        assert proc.returncode == check, f"funnelops {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def ledger(home: Path) -> sqlite3.Connection:
    con = sqlite3.connect(home / "ledger.sqlite", timeout=30)
    con.row_factory = sqlite3.Row
    return con


def run_rows(home: Path, workflow: str | None = None) -> list[sqlite3.Row]:
    con = ledger(home)
    try:
        q = "SELECT * FROM runs" + (" WHERE workflow = ?" if workflow else "") + " ORDER BY id"
        return con.execute(q, (workflow,) if workflow else ()).fetchall()
    finally:
        con.close()


def wait_no_active_run(home: Path, timeout: float = 60) -> None:
    wait_until(lambda: all(r["state"] not in ("PENDING", "RUNNING") for r in run_rows(home)), timeout,
               what="every run to end")


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def assert_disjoint(intervals: list[tuple[float, float, object]], what: str) -> None:
    intervals = sorted(intervals)
    for (s1, e1, a), (s2, e2, b) in zip(intervals, intervals[1:]):
        assert e1 <= s2, f"{what}: {a} [{s1:.3f}, {e1:.3f}] overlaps {b} [{s2:.3f}, {e2:.3f}]"


# -- (a) 32 processes x 20 rounds -----------------------------------------------------------------

def _force_child(argv: list[str], barrier) -> None:  # runs in a forked process
    code = 1
    try:
        with open(os.devnull, "w") as sink, redirect_stdout(sink), redirect_stderr(sink):
            barrier.wait(timeout=60)
            code = cli_main(argv)
    finally:
        os._exit(code if isinstance(code, int) else 1)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    project = write_tiny(tmp_path, "tiny-overlap", STEP)
    home = tmp_path / "home"
    intervals = tmp_path / "intervals.log"
    monkeypatch.setenv("STEP_INTERVALS", str(intervals))
    monkeypatch.setenv("STEP_SLEEP", "0.3")
    monkeypatch.setenv("NO_COLOR", "1")
    base = ["--project", str(project), "--home", str(home)]
    with open(os.devnull, "w") as sink, redirect_stdout(sink), redirect_stderr(sink):
        assert cli_main(base + ["pipeline", "funnel", "--data-stage", "IaC"]) == 0
        assert cli_main(base + ["pipeline", "funnel", "--data-stage", "Initial data"]) == 0
    intervals.unlink()
    return project, home, intervals, base


def _force_round(ctx, argv: list[str]) -> list[int]:
    barrier = ctx.Barrier(PROCS)
    procs = [ctx.Process(target=_force_child, args=(argv, barrier)) for _ in range(PROCS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    return [p.exitcode for p in procs]


def test_32_processes_force_the_same_scheduler_20_rounds(tiny, monkeypatch):
    project, home, intervals, base = tiny
    gate = home.parent / "gate"
    monkeypatch.setenv("STEP_GATE", str(gate))  # each run lasts until its round is over
    ctx = multiprocessing.get_context("fork")
    argv = base + ["job", "force-scheduler", "--scheduler", "dia"]
    t0 = time.monotonic()
    for rnd in range(ROUNDS):
        wait_no_active_run(home)
        gate.unlink(missing_ok=True)
        codes = _force_round(ctx, argv)
        gate.touch()
        assert set(codes) <= {0, 3}, f"round {rnd}: exit codes {sorted(codes)}"
        assert codes.count(0) == 1, f"round {rnd}: {codes.count(0)} processes started a run"
    wait_no_active_run(home)
    print(f"{ROUNDS} rounds of {PROCS} in {time.monotonic() - t0:.1f}s")

    runs = [r for r in run_rows(home, "tiny-dia") if r["trigger"] == "forced"]
    assert len(runs) == ROUNDS
    assert all(r["state"] == "DONE" for r in runs), [(r["id"], r["state"], r["error"]) for r in runs]
    all_runs = run_rows(home, "tiny-dia")
    assert_disjoint([(ts(r["started_at"]), ts(r["ended_at"]), f"run {r['id']}") for r in all_runs], "run records")
    # the lease spans more than the record: from the run's creation to its end
    assert_disjoint([(ts(r["created_at"]), ts(r["ended_at"]), f"run {r['id']}") for r in all_runs], "leases")
    steps = [line.split() for line in intervals.read_text().splitlines()]
    assert len(steps) == ROUNDS
    assert sorted(int(s[3]) for s in steps) == sorted(r["id"] for r in runs)
    assert_disjoint([(float(s[1]), float(s[2]), f"step pid {s[0]} run {s[3]}") for s in steps], "step intervals")
    # every refusal was recorded as an event naming the holder
    con = ledger(home)
    try:
        refused = con.execute("SELECT COUNT(*) FROM events WHERE kind = 'refused'").fetchone()[0]
        leases = con.execute("SELECT COUNT(*) FROM leases").fetchone()[0]
    finally:
        con.close()
    assert leases == 0
    assert refused <= ROUNDS * (PROCS - 1)


def test_forcing_as_runs_end_never_overlaps(tiny):
    """Without the gate, runs end while forcers are still arriving: the release/take race, exercised."""
    project, home, intervals, base = tiny
    ctx = multiprocessing.get_context("fork")
    argv = base + ["job", "force-scheduler", "--scheduler", "dia"]
    started = 0
    for rnd in range(5):
        wait_no_active_run(home)
        codes = _force_round(ctx, argv)
        assert set(codes) <= {0, 3}, f"round {rnd}: exit codes {sorted(codes)}"
        assert codes.count(0) >= 1, f"round {rnd}: nobody started a run"
        started += codes.count(0)
    wait_no_active_run(home)
    runs = [r for r in run_rows(home, "tiny-dia") if r["trigger"] == "forced"]
    assert len(runs) == started and all(r["state"] == "DONE" for r in runs)
    assert_disjoint([(ts(r["created_at"]), ts(r["ended_at"]), f"run {r['id']}") for r in run_rows(home)], "leases")
    steps = [line.split() for line in intervals.read_text().splitlines()]
    assert len(steps) == started
    assert_disjoint([(float(s[1]), float(s[2]), f"run {s[3]}") for s in steps], "step intervals")


# -- helpers for the real Funnel project ----------------------------------------------------------

LEASE_EXPIRY_S = "3"  # small, so a crashed holder is recovered quickly; heartbeats every 0.75 s
REFINED = ("funnel_daily", "funnel_monthly", "funnel_yearly", "attainment", "dim_indicators")


def funnel_home(base: Path, rows: int = 5000) -> tuple[Path, Path]:
    """A copy of the Funnel project with generated data, IaC and Initial data done."""
    shutil.copytree(FUNNEL, base / "project", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    project, home = base / "project" / "funnel.yaml", base / "home"
    env = {"FUNNELOPS_LEASE_EXPIRY_S": LEASE_EXPIRY_S}
    # through tomorrow in the project's zone: a test that crosses midnight still finds today's data
    tomorrow = (datetime.now(ZoneInfo("America/Bogota")) + timedelta(days=1)).date().isoformat()
    cli(project, home, "data", "generate", "--rows", str(rows), "--end", tomorrow, env=env)
    cli(project, home, "pipeline", "funnel", "--data-stage", "IaC", env=env)
    cli(project, home, "pipeline", "funnel", "--data-stage", "Initial data", env=env)
    return project, home


def funnel_homes(tmp_path: Path, n: int) -> list[tuple[Path, Path]]:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda i: funnel_home(tmp_path / f"h{i}"), range(n)))


def refined_counts(home: Path) -> dict[str, int]:
    import duckdb

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return {t: con.execute(f"SELECT count(*) FROM funnel_refined.{t}").fetchone()[0] for t in REFINED}
    finally:
        con.close()


def children_of(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def force(project: Path, home: Path, scheduler: str = "Día", *extra: str, check: int | None = 0) -> dict:
    proc = cli(project, home, "--json", "job", "force-scheduler", "--scheduler", scheduler, *extra,
               env={"FUNNELOPS_LEASE_EXPIRY_S": LEASE_EXPIRY_S}, check=check)
    return json.loads(proc.stdout)


def open_local(project: Path, home: Path):
    from funnelops.backends import open_backend
    from funnelops.spec.loader import load_project

    loaded = load_project(project)
    return loaded, open_backend("local", loaded, home)


# -- (b) kill -9 of a running run ------------------------------------------------------------------

def test_kill9_of_a_run_recovers_the_lease_and_the_period_reruns_to_the_same_counts(tmp_path):
    from funnelops.backends.local.leases import pid_alive

    (project, home), (clean_project, clean_home) = funnel_homes(tmp_path, 2)
    run = force(project, home)["run"]
    rec = wait_until(lambda: next((r for r in run_rows(home, "funnel-dia") if r["id"] == run["id"]
                                   and r["pid"] and children_of(r["pid"])), None), 30,
                     what="the run's step process")
    sup = rec["pid"]
    step = children_of(sup)[0]
    log = home / "runs" / str(run["id"]) / "funnel-flows.log"
    wait_until(lambda: log.exists() and "trusted" in log.read_text(), 60, what="the flows to start writing")
    os.kill(sup, signal.SIGKILL)

    # the step dies with its supervisor (PR_SET_PDEATHSIG): nothing writes behind a recovered lease
    wait_until(lambda: not pid_alive(step), 10, what="the step process to die")
    loaded, backend = open_local(project, home)
    wait_until(lambda: not pid_alive(sup), 10, what="the supervisor to be gone")
    assert backend.runtime.holder("funnel-dia") is None
    lost = backend.runtime.get(run["id"])
    assert lost.state == "LOST" and lost.ended_at
    listed = json.loads(cli(project, home, "runs", "--json").stdout)
    assert next(r for r in listed if r["id"] == run["id"])["state"] == "LOST"

    # re-run the period here, and once cleanly in another home prepared the same way
    def rerun(p: Path, h: Path) -> dict:
        out = json.loads(cli(p, h, "--json", "pipeline", "workflow", "--scheduler", "Día", "--wait",
                             env={"FUNNELOPS_LEASE_EXPIRY_S": LEASE_EXPIRY_S}).stdout)
        return out["jobs"][-1]["detail"]["run"]

    with ThreadPoolExecutor(2) as pool:
        again, clean = pool.map(lambda ph: rerun(*ph), [(project, home), (clean_project, clean_home)])
    assert again["state"] == clean["state"] == "DONE"
    assert {k: again["rows"][k] for k in ("read", "kept", "quarantined")} == \
        {k: clean["rows"][k] for k in ("read", "kept", "quarantined")}
    assert again["rows"]["read"] > 0
    assert refined_counts(home) == refined_counts(clean_home)
    assert all(n > 0 for n in refined_counts(home).values())


# -- (c) kill -9 of create-infra midway ------------------------------------------------------------

def big_project(tmp: Path, tables: int = 400) -> Path:
    lines = ["project: {id: big-project, time_zone: America/Bogota, backend: local}",
             "buckets: [{name: big-project-raw, role: raw}, {name: big-project-trusted, role: trusted}]",
             "datasets: [{id: big_a}, {id: big_b}]", "tables:"]
    for i in range(tables):
        lines.append(f"  - {{dataset: {'big_a' if i % 2 else 'big_b'}, name: t{i:04d}, "
                     "schema: [{name: id, type: INTEGER}, {name: v, type: STRING}, {name: d, type: DATE}]}")
    (tmp / "funnel.yaml").write_text("\n".join(lines) + "\n")
    return tmp / "funnel.yaml"


def test_kill9_of_create_infra_midway_then_apply_converges_and_ledger_is_intact(tmp_path):
    project, home = big_project(tmp_path), tmp_path / "home"
    env = dict(os.environ, FUNNELOPS_PROJECT=str(project), FUNNELOPS_HOME=str(home), NO_COLOR="1")
    proc = subprocess.Popen([FUNNELOPS, "job", "create-infra", "--stage", "IaC"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: (home / "warehouse.duckdb").exists() or proc.poll() is not None, 60,
               poll=0.01, what="the apply to start")
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL, "create-infra ended before it could be killed midway"

    midway = json.loads(cli(project, home, "plan", "--stage", "IaC", "--json").stdout)
    summary = midway["summary"]
    assert 0 < summary["create"] < 402, f"not killed midway: {summary}"  # some done, some not
    status = json.loads(cli(project, home, "status", "--json").stdout)
    assert status["position"] is None and not any(s["done"] for s in status["stages"])  # IaC did not complete

    cli(project, home, "job", "create-infra", "--stage", "IaC")
    after = cli(project, home, "plan", "--stage", "IaC", "--detailed-exitcode", "--json", check=0)
    assert json.loads(after.stdout)["summary"]["create"] == 0
    con = ledger(home)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert [r[0] for r in con.execute("SELECT stage FROM stages")] == ["iac"]
        assert con.execute("SELECT COUNT(*) FROM stage_history WHERE stage = 'iac'").fetchone()[0] == 1
    finally:
        con.close()
    import duckdb

    wh = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        n = wh.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema IN ('big_a', 'big_b')")
        assert n.fetchone()[0] == 400
    finally:
        wh.close()


# -- (d) the flows entry point and a scheduler fire while the workflow runs -----------------------

def test_flows_by_hand_and_a_scheduler_fire_are_refused_while_the_workflow_runs(tiny, monkeypatch):
    from funnelops.scheduler.cron import next_fire
    from funnelops.scheduler.daemon import EventKind, InlineExecutor
    from funnelops.lifecycle.serve import make_daemon

    project, home, intervals, base = tiny
    gate = home.parent / "gate"
    monkeypatch.setenv("STEP_GATE", str(gate))
    try:
        run = force(project, home, "dia")["run"]
        holder_env = dict(os.environ, FUNNELOPS_PROJECT=str(project), FUNNELOPS_HOME=str(home),
                          FUNNELOPS_WORKFLOW="tiny-dia")
        holder_env.pop("FUNNELOPS_LEASE_OWNER", None)
        by_hand = subprocess.run([sys.executable, "-m", "funnelops.flows", "--granularity=DAY"], env=holder_env,
                                 capture_output=True, text=True, timeout=120)
        assert by_hand.returncode == 3, by_hand.stderr
        assert "already running" in by_hand.stderr and f"run {run['id']}" in by_hand.stderr

        loaded, backend = open_local(project, home)
        last = datetime.fromisoformat(backend.runtime.scheduler_states()["dia"].last_fire)
        fake_now = next_fire("0 6 * * *", "America/Bogota", last) + __import__("datetime").timedelta(seconds=30)
        from funnelops.reporting import RecordingReporter

        recorder = RecordingReporter()
        events = recorder.events
        daemon = make_daemon(loaded, backend, reporter=recorder, executor=InlineExecutor(),
                             now=lambda: fake_now)
        daemon.run_once(fake_now)
        kinds = [e.kind for e in events if e.scheduler_id == "dia"]
        assert kinds == [EventKind.SKIPPED_RUNNING], events
        recorded = backend.ledger.events("scheduler.skipped_running")
        assert recorded and recorded[0]["subject"] == "dia"
        assert recorded[0]["data"]["scheduled_for"] == fake_now.replace(second=0).isoformat()
        # no second run was started, by hand or by the scheduler
        active = [r for r in run_rows(home, "tiny-dia") if r["state"] in ("PENDING", "RUNNING")]
        assert [r["id"] for r in active] == [run["id"]]
    finally:
        gate.touch()
    wait_no_active_run(home)
    assert run_rows(home, "tiny-dia")[-1]["state"] == "DONE"
    # once the run ended, the flows by hand take the lease themselves and succeed
    ok = subprocess.run([sys.executable, "-m", "funnelops.flows", "--granularity=DAY"], env=holder_env,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr


# -- (e) different workflows overlapping in time ---------------------------------------------------

def test_runs_of_different_workflows_overlap_and_status_answers_meanwhile(tmp_path):
    [(project, home)] = funnel_homes(tmp_path, 1)
    # Both forces at once, so the two runs overlap even on a loaded machine.
    with ThreadPoolExecutor(max_workers=2) as pool:
        dia_f, mes_f = pool.submit(force, project, home, "Día"), pool.submit(force, project, home, "mes")
        dia, mes = dia_f.result()["run"], mes_f.result()["run"]
    answered, both_seen = [], False
    while True:
        t0 = time.monotonic()
        runs = json.loads(cli(project, home, "runs", "--json", timeout=60).stdout)
        st = json.loads(cli(project, home, "status", "--json", timeout=60).stdout)
        answered.append(time.monotonic() - t0)
        active = {r["id"] for r in runs if r["state"] in ("PENDING", "RUNNING")}
        shown = {r["id"] for r in st["running"]}
        assert shown <= active, (shown, active)  # a run status shows running had not ended before
        both_seen = both_seen or shown == {dia["id"], mes["id"]}
        if not active:
            break
        time.sleep(0.2)
    assert both_seen, "status never showed both runs in progress"
    assert len(answered) >= 2, "the runs ended before status could be asked while they ran"
    recs = {r["id"]: r for r in run_rows(home)}
    d, m = recs[dia["id"]], recs[mes["id"]]
    assert d["state"] == "DONE", d["error"]
    assert m["state"] == "DONE", m["error"]
    # they really overlapped in time
    assert ts(d["started_at"]) < ts(m["ended_at"]) and ts(m["started_at"]) < ts(d["ended_at"])
    assert json.loads(d["rows"])["read"] > 0 and json.loads(m["rows"])["read"] > 0
