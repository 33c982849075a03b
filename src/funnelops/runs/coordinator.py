"""Starting, following and cancelling runs: the order written once, over each runtime's primitives.

A start is refuse -> lease -> launch -> record on every backend: refuse (and audit) while the
workflow has a live holder; take its lease (`Runtime.acquire`, which raises RunInProgress when
another starter won the race, audited too); launch the run; and if the launch fails, give the
lease back through `Runtime.release` (which keeps it when a run may exist). A backend says how
each step is done (a SQLite transaction, a GCS object with a precondition, a Dataproc call),
never in which order, so the overlap guarantee is reasoned about here once.

`wait` is the one polling loop (the CLI's jobs, `cancel`, the tests), with the backend's poll
backoff; `cancel` asks a run to stop, waits the backend's grace, then kills it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Sequence

from funnelops.backends.types import RunRecord, now_iso, record_refusal, refuse, refuse_apply
from funnelops.errors import BackendError, Interrupted, RunInProgress, UsageError
from funnelops.reporting import Reporter, RunChanged, StepChanged

if TYPE_CHECKING:
    from funnelops.backends.base import Backend, Runtime

MAX_POLL_S = 2.0  # a backing-off wait polls at least this often (or every poll_s, if longer)


def refuse_if_applying(backend: Backend, workflow: str, *, trigger: str | None = None,
                       actor: str | None = None, **audit: Any) -> None:
    """Raise RunInProgress (audited as a `refused` event) if an apply holds the project's apply lease
    (the runtime's `acquire` checks it again, atomically with taking the run's lease)."""
    applying = backend.apply_holder()
    if applying is not None:
        err = refuse_apply(applying, "no run was started")
        record_refusal(backend.ledger, workflow, err, trigger=trigger, actor=actor, **audit)
        raise err


def refuse_if_running(backend: Backend, workflow: str, *, trigger: str | None = None,
                      actor: str | None = None, **audit: Any) -> None:
    """Raise RunInProgress (audited as a `refused` event) if an apply is in progress or `workflow`
    has a live holder."""
    refuse_if_applying(backend, workflow, trigger=trigger, actor=actor, **audit)
    holder = backend.runtime.holder(workflow)
    if holder is not None:
        err = refuse(holder)
        record_refusal(backend.ledger, workflow, err, trigger=trigger, actor=actor, **audit)
        raise err


def start(backend: Backend, workflow: str, *, trigger: str, actor: str, extra_args: Sequence[str] = (),
          scheduler: str | None = None) -> RunRecord:
    """Start one run of `workflow` (firing `scheduler` when given); RunInProgress if one is running."""
    runtime = backend.runtime
    refuse_if_running(backend, workflow, trigger=trigger, actor=actor)
    try:
        lease = runtime.acquire(workflow, trigger=trigger, actor=actor, extra_args=tuple(extra_args))
    except RunInProgress as exc:  # another starter won the race between our look and our take
        record_refusal(backend.ledger, workflow, exc, trigger=trigger, actor=actor)
        raise
    try:
        return runtime.launch(lease, scheduler=scheduler)
    except BaseException as exc:
        runtime.release(lease, exc)
        raise


def force_scheduler(backend: Backend, scheduler_id: str, workflow: str, *, actor: str,
                    extra_args: Sequence[str] = ()) -> RunRecord:
    """Fire a scheduler now: a `forced` run of its workflow, recorded as the scheduler's last fire.

    With `extra_args` (a `--period=`) on a backend whose schedulers fire remotely (gcp: Cloud
    Scheduler's `jobs.run`, whose body carries fixed values), the args could not travel through
    the fire: the template is instantiated directly instead, under the same lease.
    """
    fire = None if extra_args and not backend.scheduler_daemon else scheduler_id
    run = start(backend, workflow, trigger="forced", actor=actor, scheduler=fire, extra_args=extra_args)
    if fire is not None:
        backend.schedulers.mark_fired(scheduler_id, now_iso())
    return run


def wait(runtime: Runtime, run_ids: Sequence[int | str], poll_s: float = 0.2,
         on_change: Callable[[RunRecord], None] | None = None, timeout: float | None = None,
         on_step: Callable[[RunRecord, dict[str, Any]], None] | None = None) -> list[RunRecord]:
    """Follow runs until all have ended (or `timeout` seconds); `on_change` sees each new state,
    `on_step` each step that changed state or reported more flows (as the flows report them).

    Returns the runs' last records in the order of `run_ids`. A run the backend does not know
    is an error: waiting for it would never end. Ctrl-C raises `Interrupted` (exit 130) naming
    the runs still going: they go on without the CLI, and the message says how to follow or stop them.
    """
    ids = [str(r) for r in run_ids]
    last: dict[str, RunRecord] = {}
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = max(0.05, poll_s)
    try:
        while True:
            for rid in ids:
                if rid in last and last[rid].terminal:
                    continue
                rec = runtime.get(rid)
                if rec is None:
                    raise BackendError(f"run {rid} is unknown here", "list runs with `funnelops runs`")
                if on_step is not None:
                    for step in _changed_steps(last.get(rid), rec):
                        on_step(rec, step)
                if on_change is not None and (rid not in last or last[rid].state != rec.state):
                    on_change(rec)
                last[rid] = rec
            if all(last[r].terminal for r in ids):
                return [last[r] for r in ids]
            if deadline is not None and time.monotonic() > deadline:
                return [last[r] for r in ids]
            time.sleep(delay)
            delay = min(delay * runtime.poll_backoff, max(poll_s, MAX_POLL_S))
    except KeyboardInterrupt:
        going = [(last[r].id, last[r].workflow) if r in last else (r, None)
                 for r in ids if r not in last or not last[r].terminal]
        raise interrupted(going) from None


def _step_key(step: dict[str, Any]) -> tuple[str, int]:
    flows = (step.get("metrics") or {}).get("flows") or []
    return str(step.get("state")), len(flows) if isinstance(flows, list) else 0


def _changed_steps(before: RunRecord | None, now: RunRecord) -> list[dict[str, Any]]:
    """The steps of `now` whose state or count of reported flows differs from `before` (a first
    sight reports the steps already under way)."""
    seen = {str(s.get("step_id")): _step_key(s) for s in (before.steps if before else [])}
    out = []
    for step in now.steps or []:
        key = _step_key(step)
        old = seen.get(str(step.get("step_id")))
        if old is None and key == ("PENDING", 0):
            continue
        if old != key:
            out.append(step)
    return out


def interrupted(runs: Sequence[tuple[int | str, str | None]]) -> Interrupted:
    """The Ctrl-C message: each run still going, with the commands that follow and stop it."""
    if not runs:
        return Interrupted("interrupted; no run was left in progress")
    parts = [f"run {rid}" + (f" ({wf})" if wf else "") + f" continues; follow it with `funnelops logs {rid} --follow`, "
             f"stop it with `funnelops cancel {rid}`" for rid, wf in runs]
    return Interrupted("interrupted: " + "; ".join(parts), runs=[str(rid) for rid, _ in runs])


def report_to(reporter: Reporter) -> dict[str, Any]:
    """`wait`'s callbacks that report each run's state (RunChanged) and each step's (StepChanged)."""
    return {"on_change": lambda r: reporter.emit(RunChanged.of(r)),
            "on_step": lambda r, s: reporter.emit(StepChanged.of(r, s))}


def cancel(runtime: Runtime, run_id: int | str) -> RunRecord:
    """Stop a run in progress: ask it to stop, wait the backend's grace, then kill it."""
    run = runtime.get(run_id)
    if run is None:
        raise UsageError(f"no run {run_id}", "see `funnelops runs`")
    if run.terminal:
        return run
    if runtime.stop(run):
        done = wait(runtime, [run.id], poll_s=0.1, timeout=runtime.stop_grace_s)
        if done and done[0].terminal:
            return done[0]
    return runtime.kill(run)
