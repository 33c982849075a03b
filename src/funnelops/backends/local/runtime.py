"""The local backend's Runtime: runs as detached supervisor processes, leases in SQLite.

`acquire` creates the run record and takes the workflow's lease in ONE transaction (a refusal
leaves no trace but an event), `launch` spawns the supervisor and returns as soon as the run is
RUNNING. The order (refuse -> lease -> launch -> record) and the `wait` loop are the shared
coordinator's (funnelops.runs.coordinator); this module only says how each step is done here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from collections.abc import Iterable, Sequence

from funnelops.backends.local.home import LocalHome
from funnelops.backends.local.leases import LeaseStore, pid_alive, take_in
from funnelops.backends.local.ledger_db import LedgerDB
from funnelops.backends.local.run_store import RunStore
from funnelops.backends.local.workflows import SchedulerStore, TemplateStore
from funnelops.backends.shapes import scheduler_state
from funnelops.backends.types import Holder, LogChunk, LogCursor, LogRead, RunLease, RunRecord, SchedulerState, now_iso
from funnelops.errors import BackendError, UsageError


class LocalRuntime:
    poll_backoff = 1.0  # a local poll is a SQLite read: no need to back off
    stop_grace_s: float | None = 15.0  # SIGTERM, then SIGKILL after this long

    def __init__(self, home: Path, db: LedgerDB, templates: TemplateStore, schedulers: SchedulerStore,
                 project_path: Path | None) -> None:
        self.home = Path(home)
        self.paths = LocalHome(self.home)
        self.db = db
        self.templates = templates
        self.schedulers = schedulers
        self.project_path = project_path
        # the environment the project was loaded in: a run's supervisor and its steps load the
        # project again, and must merge the same overlay (FUNNELOPS_ENV, spec/environments.py)
        self.project_env: str | None = None
        self.runs = RunStore(db, on_lost=self._notify_lost)
        self.leases = LeaseStore(db)

    def _notify_lost(self, run_id: int) -> None:
        """A run this process found dead (LOST): its supervisor cannot tell anyone, so we do."""
        from funnelops.backends.local.notify_end import notify_end

        try:
            notify_end(self.db, self.runs.get(run_id), self.project_path)
        except Exception:  # reading the run failed: the reap itself stands
            pass

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

    # -- the coordinator's primitives ------------------------------------------------------
    def holder(self, workflow: str) -> Holder | None:
        self.runs.reap()
        return self.leases.holder(workflow)

    def holders(self, workflows: Iterable[str]) -> list[Holder]:
        """Every live lease of the home, whatever the workflow: a run of any workflow writes it."""
        return self.leases.live_holders()

    def acquire(self, workflow: str, *, trigger: str, actor: str, extra_args: Sequence[str] = ()) -> RunLease:
        """The run record and the lease in ONE transaction: a refusal leaves no record behind.

        The same transaction refuses while an apply holds the home's apply lease (apply_lease.py).
        """
        from funnelops.backends.local.apply_lease import refuse_in

        steps, args = self._steps(workflow, list(extra_args))
        with self.db.write() as con:
            refuse_in(con, "no run was started")
            run_id = self.runs.insert(con, workflow, args, trigger, actor, steps)
            take_in(con, workflow, f"run-{run_id}", run_id, os.getpid())
            con.execute("UPDATE runs SET log_dir = ? WHERE id = ?", (str(self.paths.run_logs(run_id)), run_id))
        return RunLease(workflow, f"run-{run_id}", trigger, actor, tuple(extra_args), run_id=run_id)

    def launch(self, lease: RunLease, *, scheduler: str | None = None) -> RunRecord:
        """Spawn the run's supervisor (detached) and mark the run RUNNING under its pid."""
        run_id = _run_id(lease)
        log_dir = self.paths.run_logs(run_id)
        log_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "funnelops.backends.local.supervisor", "--home", str(self.home), "--run", str(run_id)]
        if self.project_path:
            cmd += ["--project", str(self.project_path)]
        env = {k: v for k, v in os.environ.items() if k != "FUNNELOPS_ENV"}
        if self.project_env:
            env["FUNNELOPS_ENV"] = self.project_env
        try:
            with open(log_dir / "supervisor.log", "ab") as out:
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True, cwd=str(self.home), env=env)
        except OSError as exc:
            raise BackendError(f"could not start a run of '{lease.workflow}': {exc}") from None
        # Only a PENDING run becomes RUNNING here: a quick supervisor may already have ended the run,
        # and overwriting DONE with RUNNING would later have the run reaped as LOST.
        with self.db.write() as con:
            con.execute("UPDATE runs SET pid = ?, state = 'RUNNING', started_at = COALESCE(started_at, ?) "
                        "WHERE id = ? AND state = 'PENDING'", (proc.pid, now_iso(), run_id))
            con.execute("UPDATE leases SET pid = ?, heartbeat_at = ? WHERE workflow = ? AND owner = ?",
                        (proc.pid, time.time(), lease.workflow, lease.owner))
        run = self.runs.get(run_id)
        assert run is not None
        return run

    def release(self, lease: RunLease, error: BaseException) -> None:
        """No supervisor was started: the run failed before it began, and nobody holds the lease."""
        reason = getattr(error, "message", None) or str(error) or type(error).__name__
        self.runs.finish_if_active(_run_id(lease), "FAILED", f"could not start the run: {reason}")
        self.leases.release(lease.workflow, lease.owner)

    def get(self, run_id: int | str) -> RunRecord | None:
        """The run's record; a run in progress whose process died is marked LOST first."""
        try:
            rid = int(run_id)
        except ValueError:
            return None
        run = self.runs.get(rid)
        if run is not None and not run.terminal:
            self.runs.reap()
            run = self.runs.get(rid)
        return run

    def stop(self, run: RunRecord) -> bool:
        """SIGTERM the run's process group; False when its supervisor is already gone."""
        if not (run.pid and pid_alive(run.pid)):
            return False
        try:
            os.killpg(run.pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    def kill(self, run: RunRecord) -> RunRecord:
        if run.pid and pid_alive(run.pid):
            try:
                os.killpg(run.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.runs.finish_if_active(int(run.id), "CANCELLED", "cancelled")
        self.leases.release(run.workflow, f"run-{run.id}")
        done = self.runs.get(int(run.id))
        assert done is not None
        return done

    # -- looking ---------------------------------------------------------------------------
    def active(self) -> list[RunRecord]:
        self.runs.reap()
        return self.runs.list(active_only=True, limit=1000)

    # -- schedulers ------------------------------------------------------------------------
    def set_paused(self, scheduler_id: str, paused: bool) -> None:
        self.schedulers.set_state(scheduler_id, "PAUSED" if paused else "ENABLED")

    def scheduler_states(self) -> dict[str, SchedulerState]:
        return {sid: scheduler_state(sid, body) for sid, body in self.schedulers.all().items()}

    def log_paths(self, run_id: int | str) -> list[Path]:
        """The files holding the run's step logs (one per step, named after it)."""
        run = self.get(run_id)
        if run is None:
            raise UsageError(f"no run {run_id}", "see `funnelops runs`")
        base = Path(run.log_dir) if run.log_dir else self.paths.run_logs(run.id)
        return [base / f"{s['step_id']}.log" for s in run.steps]

    def read_logs(self, run_id: int | str, cursor: LogCursor | None = None) -> LogRead:
        """New bytes of each step's log file since `cursor` (offsets by file name)."""
        paths = self.log_paths(run_id)
        if not paths:
            raise UsageError(f"no local logs for run {run_id} on the local backend",
                             "`funnelops runs --json` shows the run's state and rows")
        offsets: dict[str, int] = dict((cursor or {}).get("offsets") or {})
        chunks = []
        for p in paths:
            start = offsets.setdefault(p.name, 0)
            if not p.exists():
                continue
            with open(p, "rb") as fh:
                fh.seek(start)
                data = fh.read()
            if data:
                chunks.append(LogChunk(p.name, data.decode("utf-8", "replace"), first=start == 0))
                offsets[p.name] = start + len(data)
        return LogRead(chunks, {"offsets": offsets})

    # Last in the class: a method named `list` would shadow the builtin in the annotations below it.
    def list(self, workflow: str | None = None, limit: int = 50, state: str | None = None) -> list[RunRecord]:
        self.runs.reap()
        return self.runs.list(workflow, limit, state=state)


def _run_id(lease: RunLease) -> int:
    """The run a local lease was taken for (`acquire` always records it)."""
    assert lease.run_id is not None, lease
    return int(lease.run_id)
