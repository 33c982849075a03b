"""The process that carries one local run: `python -m funnelops.backends.local.supervisor --home H --run ID`.

It is started detached by the local runtime (its own session, so the CLI can return at once),
runs the template's steps in dependency order as subprocesses (stdout/stderr to one log per
step), heartbeats the workflow's lease, gathers the rows the flows report, records every state
change, and releases the lease at the end. Steps die with it (PR_SET_PDEATHSIG), so a killed
run can never leave a step writing behind a recovered lease.

Heartbeats that fail (a full disk, an unwritable ledger) are retried; a run that cannot renew its
lease within `renew_budget(expiry)` kills its steps and ends LOST before the lease can expire
(see runs/renewal.py). Progress updates are best effort; the final record is retried.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from funnelops.backends.local.leases import LeaseStore, default_expiry_s
from funnelops.backends.local.renewal import LeaseKeeper
from funnelops.backends.local.run_store import RunStore
from funnelops.backends.local.home import LocalHome
from funnelops.backends.local.ledger_db import LedgerDB, now_iso

PR_SET_PDEATHSIG = 1
PROGRESS_POLL_S = 1.0  # how often a running step's reported flows are recorded


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


FLOWS_MAIN = "funnelops.flows"


def step_command(main: str, args: list[str], project_dir: Path | None = None,
                 runtime_flags: list[str] | None = None) -> list[str]:
    """The command of one step: `python -m <module>` or `python <file inside the project>`.

    Checked again here, not only by `validate` (a template in the ledger may come from an older
    funnelops or be edited by hand): anything else raises ValueError and the step never starts.
    `runtime_flags` (`--home=`, `--project=`) go LAST for the flows program, whose flags keep their
    last value, so nothing earlier in the template can redirect a run's home or project.
    """
    from funnelops.spec.mains import is_module, resolve_main

    if is_module(main):
        tail = list(runtime_flags or []) if main == FLOWS_MAIN else []
        return [sys.executable, "-m", main, *args, *tail]
    return [sys.executable, str(resolve_main(main, project_dir)), *args]


def aggregate_rows(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    flows = [f for m in metrics for f in m.get("flows", [])]
    return {"read": sum(int(f.get("read", 0)) for f in flows),
            "kept": sum(int(f.get("kept", 0)) for f in flows),
            "quarantined": sum(int(f.get("quarantined", 0)) for f in flows),
            "flows": flows}


class Supervisor:
    def __init__(self, home: Path, run_id: int, project: str | None) -> None:
        self.home = Path(home)
        self.run_id = run_id
        self.project = project
        db = LedgerDB(LocalHome(self.home).ledger)
        self.runs = RunStore(db)
        self.leases = LeaseStore(db)
        self.owner = f"run-{run_id}"
        self.children: dict[str, subprocess.Popen] = {}
        self.stop = threading.Event()
        self.lost = threading.Event()
        self.lost_reason = "the lease was recovered by another process"
        self.lock = threading.Lock()
        self.keeper: LeaseKeeper | None = None

    @property
    def project_dir(self) -> Path | None:
        return Path(self.project).resolve().parent if self.project else None

    def runtime_flags(self) -> list[str]:
        return [f"--home={self.home}"] + ([f"--project={self.project}"] if self.project else [])

    def heartbeat_loop(self, workflow: str) -> LeaseKeeper:
        """Start renewing the lease (errors retried); losing it kills the steps at once."""
        row = self.leases.row(workflow)
        ours = row if row is not None and row["owner"] == self.owner else None
        expiry = float(ours["expires_s"]) if ours is not None else default_expiry_s()
        ago = max(0.0, time.time() - ours["heartbeat_at"]) if ours is not None else 0.0
        self.keeper = LeaseKeeper(self.leases, workflow, self.owner, expiry, self.lose_lease, pid=os.getpid(),
                                  renewed_ago=ago)
        return self.keeper.start()

    def lose_lease(self, reason: str) -> None:
        """Stop writing now: no new step starts, running ones are killed (no grace: the lease is ending)."""
        self.lost_reason = reason
        self.lost.set()
        self.terminate_children(kill=True)

    def terminate_children(self, kill: bool = False) -> None:
        with self.lock:
            for proc in self.children.values():
                if proc.poll() is None:
                    proc.kill() if kill else proc.terminate()

    def save_progress(self, **fields: Any) -> None:
        """Best effort: a ledger that cannot be written for a while must not end the run."""
        try:
            self.runs.update(self.run_id, **fields)
        except sqlite3.Error as exc:
            print(f"{now_iso()} could not record progress: {type(exc).__name__}: {exc}", flush=True)

    def run_step(self, step: dict[str, Any], log_dir: Path, run) -> dict[str, Any]:
        log_path = log_dir / f"{step['step_id']}.log"
        metrics_path = log_dir / f"{step['step_id']}.metrics.json"
        env = dict(os.environ, FUNNELOPS_HOME=str(self.home), FUNNELOPS_WORKFLOW=run.workflow,
                   FUNNELOPS_LEASE_OWNER=self.owner, FUNNELOPS_RUN_ID=str(self.run_id),
                   FUNNELOPS_METRICS_FILE=str(metrics_path), PYTHONUNBUFFERED="1",
                   # a local run always takes the local path, whatever the caller's shell exports
                   FUNNELOPS_BACKEND="local")
        if self.project:
            env["FUNNELOPS_PROJECT"] = self.project
        started = time.time()
        try:
            cmd = step_command(step["main"], step["args"], self.project_dir, self.runtime_flags())
        except ValueError as exc:  # a `main` outside the project: refuse, and say so in the step log
            with open(log_path, "ab") as log:
                log.write(f"refused: {exc}\n".encode())
            return {**step, "state": "FAILED", "exit_code": None, "seconds": 0.0, "log": str(log_path),
                    "error": f"refused to run: {exc}"}
        with open(log_path, "ab") as log:
            log.write(f"$ {shlex.join(cmd)}\n".encode())
            log.flush()
            with self.lock:
                if self.stop.is_set() or self.lost.is_set():
                    return {**step, "state": "CANCELLED", "exit_code": None}
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(self.home),
                                        preexec_fn=_die_with_parent)
                self.children[step["step_id"]] = proc
            code = proc.wait()
        if code < 0 and not self.stop.is_set():
            # Killed by a signal. A cancel signals the whole process group: the step may die before
            # the main thread has run this process's SIGTERM handler (steps run in worker threads),
            # so give the handler a moment before calling the step FAILED.
            self.stop.wait(2.0)
        metrics = {}
        if metrics_path.exists():
            try:
                metrics = json.loads(metrics_path.read_text())
            except (OSError, json.JSONDecodeError):
                metrics = {}
        state = "DONE" if code == 0 else ("CANCELLED" if self.stop.is_set() else "FAILED")
        return {**step, "state": state, "exit_code": code, "seconds": round(time.time() - started, 3),
                "log": str(log_path), "metrics": metrics}

    def _on_sigterm(self, signum: int, frame: object) -> None:
        self.stop.set()
        self.terminate_children()

    def execute(self) -> int:
        run = self.runs.get(self.run_id)
        if run is None or run.terminal:
            return 1
        signal.signal(signal.SIGTERM, self._on_sigterm)
        self.runs.db.pin()  # for the run's life: stopping this process must block no reader (ledger_db.py)
        log_dir = Path(run.log_dir) if run.log_dir else LocalHome(self.home).run_logs(self.run_id)
        log_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.leases.heartbeat(run.workflow, self.owner, os.getpid())
        except sqlite3.Error as exc:  # the keeper retries; it counts from the starter's heartbeat
            print(f"{now_iso()} first heartbeat failed: {type(exc).__name__}: {exc}", flush=True)
        # Only an active run becomes RUNNING: a cancel that landed before we started wins.
        with self.runs.db.write() as con:
            cur = con.execute("UPDATE runs SET state = 'RUNNING', pid = ?, started_at = COALESCE(started_at, ?) "
                              "WHERE id = ? AND state IN ('PENDING', 'RUNNING')", (os.getpid(), now_iso(), self.run_id))
            if cur.rowcount == 0:
                con.execute("DELETE FROM leases WHERE workflow = ? AND owner = ?", (run.workflow, self.owner))
                return 1
        keeper = self.heartbeat_loop(run.workflow)
        steps = {s["step_id"]: dict(s, state="PENDING") for s in run.steps}
        error = None
        try:
            error = self._run_dag(steps, log_dir, run)
        except Exception as exc:  # record, never leave the run RUNNING
            error = f"supervisor error: {type(exc).__name__}: {exc}"
        finally:
            self.stop.set()
            keeper.close()
        final = "DONE"
        if self.lost.is_set():
            final, error = "LOST", self.lost_reason
        elif any(s["state"] == "CANCELLED" for s in steps.values()) and not error:
            final = "CANCELLED"
        elif error or any(s["state"] != "DONE" for s in steps.values()):
            final = "FAILED"
        rows = aggregate_rows([s.get("metrics", {}) for s in steps.values()])
        self._finish(run.workflow, final, error, list(steps.values()), rows)
        self._notify()
        return 0 if final == "DONE" else 1

    def _notify(self) -> None:
        """Post the end to the project's channels, once the end is recorded and the lease freed."""
        from funnelops.backends.local.notify_end import notify_end

        try:
            notify_end(self.runs.db, self.runs.get(self.run_id), self.project,
                       log=lambda line: print(f"{now_iso()} {line}", flush=True))
        except Exception as exc:  # the run has ended; an alert must not change that
            print(f"{now_iso()} notifications: {type(exc).__name__}", flush=True)

    def _finish(self, workflow: str, final: str, error: str | None, steps: list, rows: dict,
                patience_s: float = 120.0) -> None:
        """Record the end and release the lease, retrying while the ledger cannot be written.

        One transaction: a run is never seen ended while still holding the lease (a force right
        after `--wait` returned would be refused, naming a run that is DONE). If the ledger stays
        unwritable, the supervisor exits anyway: its pid is then dead, and the reaper marks it LOST.
        """
        deadline = time.monotonic() + patience_s
        while True:
            try:
                with self.runs.db.write() as con:
                    con.execute("UPDATE runs SET steps = ?, rows = ? WHERE id = ?",
                                (json.dumps(steps, ensure_ascii=False), json.dumps(rows, ensure_ascii=False),
                                 self.run_id))
                    con.execute("UPDATE runs SET state = ?, ended_at = ?, error = COALESCE(?, error) "
                                "WHERE id = ? AND state IN ('PENDING', 'RUNNING')",
                                (final, now_iso(), error, self.run_id))
                    con.execute("DELETE FROM leases WHERE workflow = ? AND owner = ?", (workflow, self.owner))
                return
            except sqlite3.Error as exc:
                print(f"{now_iso()} could not record the end of the run: {type(exc).__name__}: {exc}", flush=True)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _partial_metrics(self, steps: dict[str, dict[str, Any]], running: list[str], log_dir: Path) -> None:
        """Read the metrics the running steps' flows wrote so far (one per ended flow); record them
        in the run's steps and rows when they changed (best effort, like every progress update)."""
        changed = False
        for sid in running:
            path = log_dir / f"{sid}.metrics.json"
            try:
                metrics = json.loads(path.read_text()) if path.exists() else None
            except (OSError, ValueError):
                metrics = None
            if isinstance(metrics, dict) and metrics != steps[sid].get("metrics"):
                steps[sid]["metrics"] = metrics
                changed = True
        if changed:
            self.save_progress(steps=list(steps.values()),
                               rows=aggregate_rows([s.get("metrics") or {} for s in steps.values()]))

    def _run_dag(self, steps: dict[str, dict[str, Any]], log_dir: Path, run) -> str | None:
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        running = {}
        with ThreadPoolExecutor(max_workers=max(1, len(steps))) as pool:
            while True:
                failed = any(s["state"] in ("FAILED", "CANCELLED") for s in steps.values())
                if not failed and not self.stop.is_set():
                    for sid, s in steps.items():
                        if s["state"] == "PENDING" and all(steps[p]["state"] == "DONE" for p in s["prerequisites"]):
                            s["state"] = "RUNNING"
                            running[pool.submit(self.run_step, s, log_dir, run)] = sid
                    self.save_progress(steps=list(steps.values()))
                if not running:
                    break
                done, _ = wait(running, timeout=PROGRESS_POLL_S, return_when=FIRST_COMPLETED)
                while not done:  # still running: record the flows they reported so far (a `--wait` shows them)
                    self._partial_metrics(steps, list(running.values()), log_dir)
                    done, _ = wait(running, timeout=PROGRESS_POLL_S, return_when=FIRST_COMPLETED)
                for f in done:
                    sid = running.pop(f)
                    steps[sid] = f.result()
                self.save_progress(steps=list(steps.values()))
        for s in steps.values():
            if s["state"] == "PENDING":
                s["state"] = "SKIPPED"
        bad = [s for s in steps.values() if s["state"] == "FAILED"]
        if bad:
            s = bad[0]
            if s.get("error"):
                return f"step '{s['step_id']}': {s['error']}"
            # the flows program writes its error into the step's metrics: the run record names the cause
            cause = (s.get("metrics") or {}).get("error")
            return (f"step '{s['step_id']}' exited with code {s['exit_code']} (log: {s.get('log')})"
                    + (f": {cause}" if cause else ""))
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="funnelops.backends.local.supervisor")
    p.add_argument("--home", required=True)
    p.add_argument("--run", type=int, required=True)
    p.add_argument("--project")
    a = p.parse_args(argv)
    return Supervisor(Path(a.home), a.run, a.project).execute()


if __name__ == "__main__":
    sys.exit(main())
