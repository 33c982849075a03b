"""The local backend's Runtime: runs as detached supervisor processes, leases in SQLite.

`start` creates the run record and takes the workflow's lease in ONE transaction (a refusal
leaves no trace but an event), then spawns the supervisor and returns as soon as the run is
RUNNING; `wait` follows runs to their end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from funnelops.errors import BackendError, RunInProgress, UsageError
from funnelops.backends.local.leases import LeaseStore, pid_alive, refuse, take_in
from funnelops.runs.model import Holder, RunRecord
from funnelops.backends.local.run_store import RunStore
from funnelops.backends.local.ledger_db import LedgerDB, now_iso
from funnelops.backends.local.ledger import record_refusal


class LocalRuntime:
    def __init__(self, home: Path, db: LedgerDB, templates, schedulers, project_path: Path | None,
                 ledger=None) -> None:
        self.home = Path(home)
        self.db = db
        self.templates = templates
        self.schedulers = schedulers
        self.project_path = project_path
        self.ledger = ledger
        self.runs = RunStore(db)
        self.leases = LeaseStore(db)

    # -- starting --------------------------------------------------------------------------
    def _steps(self, workflow: str, extra_args: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
        body = self.templates.get(workflow)
        if body is None:
            raise UsageError(f"workflow template '{workflow}' does not exist",
                             "run `funnelops job create-infra --stage IaC` first")
        steps, all_args = [], []
        for job in body.get("jobs", []):
            py = job.get("pysparkJob", {})
            uri = py.get("mainPythonFileUri", "")
            main = uri.split(":", 1)[1] if uri.startswith("module:") else uri
            args = list(py.get("args", [])) + list(extra_args)
            steps.append({"step_id": job["stepId"], "main": main, "args": args,
                          "prerequisites": list(job.get("prerequisiteStepIds", [])), "state": "PENDING"})
            all_args = args
        return steps, all_args

    def start(self, workflow: str, *, trigger: str, actor: str, extra_args: list[str] | None = None) -> RunRecord:
        steps, args = self._steps(workflow, list(extra_args or []))
        try:
            with self.db.write() as con:
                run_id = self.runs.insert(con, workflow, args, trigger, actor, steps)
                take_in(con, workflow, f"run-{run_id}", run_id, os.getpid())
                log_dir = self.home / "runs" / str(run_id)
                con.execute("UPDATE runs SET log_dir = ? WHERE id = ?", (str(log_dir), run_id))
        except RunInProgress as exc:
            record_refusal(self.ledger, workflow, exc, trigger=trigger, actor=actor)
            raise
        log_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "funnelops.backends.local.supervisor", "--home", str(self.home), "--run", str(run_id)]
        if self.project_path:
            cmd += ["--project", str(self.project_path)]
        try:
            with open(log_dir / "supervisor.log", "ab") as out:
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True, cwd=str(self.home))
        except OSError as exc:
            self.runs.finish_if_active(run_id, "FAILED", f"could not start the run: {exc}")
            self.leases.release(workflow, f"run-{run_id}")
            raise BackendError(f"could not start a run of '{workflow}': {exc}") from None
        # Only a PENDING run becomes RUNNING here: a quick supervisor may already have ended the run,
        # and overwriting DONE with RUNNING would later have the run reaped as LOST.
        with self.db.write() as con:
            con.execute("UPDATE runs SET pid = ?, state = 'RUNNING', started_at = COALESCE(started_at, ?) "
                        "WHERE id = ? AND state = 'PENDING'", (proc.pid, now_iso(), run_id))
            con.execute("UPDATE leases SET pid = ?, heartbeat_at = ? WHERE workflow = ? AND owner = ?",
                        (proc.pid, time.time(), workflow, f"run-{run_id}"))
        run = self.runs.get(run_id)
        assert run is not None
        return run

    def force_scheduler(self, scheduler_id: str, workflow: str, *, actor: str) -> RunRecord:
        run = self.start(workflow, trigger="forced", actor=actor)
        self.schedulers.mark_fired(scheduler_id, now_iso())
        return run

    # -- looking ---------------------------------------------------------------------------
    def in_progress(self, workflow: str) -> Holder | None:
        self.runs.reap()
        return self.leases.holder(workflow)

    def check_not_running(self, workflow: str) -> None:
        holder = self.in_progress(workflow)
        if holder is not None:
            err = refuse(holder)
            record_refusal(self.ledger, workflow, err)
            raise err

    def get(self, run_id: int | str) -> RunRecord | None:
        try:
            return self.runs.get(int(run_id))
        except ValueError:
            return None

    def list(self, workflow: str | None = None, limit: int = 50) -> list[RunRecord]:
        self.runs.reap()
        return self.runs.list(workflow, limit)

    def active(self) -> list[RunRecord]:
        self.runs.reap()
        return self.runs.list(active_only=True, limit=1000)

    def wait(self, run_ids: list[int | str], poll_s: float = 0.2,
             on_change: Callable[[RunRecord], None] | None = None, timeout: float | None = None) -> list[RunRecord]:
        seen: dict[Any, str] = {}
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.runs.reap()
            recs = [self.get(r) for r in run_ids]
            for rec in recs:
                if rec is not None and seen.get(rec.id) != rec.state:
                    seen[rec.id] = rec.state
                    if on_change:
                        on_change(rec)
            if all(r is None or r.terminal for r in recs):
                return [r for r in recs if r is not None]
            if deadline is not None and time.monotonic() > deadline:
                return [r for r in recs if r is not None]
            time.sleep(poll_s)

    def cancel(self, run_id: int | str) -> RunRecord:
        run = self.get(run_id)
        if run is None:
            raise UsageError(f"no run {run_id}", "see `funnelops runs`")
        if run.terminal:
            return run
        if run.pid and pid_alive(run.pid):
            try:
                os.killpg(run.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            done = self.wait([run.id], timeout=15)
            if done and done[0].terminal:
                return done[0]
            try:
                os.killpg(run.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.runs.finish_if_active(int(run.id), "CANCELLED", "cancelled")
        self.leases.release(run.workflow, f"run-{run.id}")
        return self.get(run.id)  # type: ignore[return-value]

    # -- schedulers ------------------------------------------------------------------------
    def set_paused(self, scheduler_id: str, paused: bool) -> None:
        self.schedulers.set_state(scheduler_id, "PAUSED" if paused else "ENABLED")

    def scheduler_states(self) -> dict[str, dict[str, Any]]:
        return {sid: {"paused": b.get("state") == "PAUSED", "last_fire": b.get("lastAttemptTime")}
                for sid, b in self.schedulers.all().items()}

    def log_paths(self, run_id: int | str) -> list[Path]:
        run = self.get(run_id)
        if run is None:
            raise UsageError(f"no run {run_id}", "see `funnelops runs`")
        base = Path(run.log_dir or self.home / "runs" / str(run.id))
        return [base / f"{s['step_id']}.log" for s in run.steps]
