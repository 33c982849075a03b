"""Backfill: run one workflow over a range of past periods, one period at a time.

A forced run processes one period (the current one unless it asks); loading a year of history
day by day by hand is 365 forces. `backfill` starts one `backfill` run per period, from..to in
the workflow's granularity, each with `--period=P` (local: an extra argument, the last value
wins; gcp: the FO_PERIOD template parameter), and waits for each to end before the next: the
workflow's lease guards every run as usual, so two periods never overlap and a scheduler fire
between two periods is refused/skipped as any overlapping run is. If a run of the workflow holds
the lease when a period is due (a scheduled fire slipped in), the backfill waits for it and goes
on. It stops at the first failed period unless `keep_going`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from funnelops.errors import RunFailed, RunInProgress, UsageError
from funnelops.lifecycle import jobs
from funnelops.lifecycle.order import require_before
from funnelops.reporting import QUIET, Notice, Reporter, RunStarted
from funnelops.runs import coordinator

if TYPE_CHECKING:
    from funnelops.backends.base import Backend
    from funnelops.runs.model import RunRecord
    from funnelops.spec.project import LoadedProject

MAX_PERIODS = 3660  # ten years of days: more is a typo, not a backfill
_LABEL = {"DAY": "%Y-%m-%d", "MONTH": "%Y-%m", "YEAR": "%Y"}


@dataclass
class PeriodResult:
    period: str
    run_id: int | str | None = None
    state: str = "SKIPPED"
    rows: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"period": self.period, "run_id": self.run_id, "state": self.state, "rows": self.rows,
                "error": self.error, "seconds": round(self.seconds, 3)}


@dataclass
class BackfillResult:
    workflow: str
    granularity: str
    periods: list[PeriodResult]

    @property
    def failed(self) -> list[PeriodResult]:
        return [p for p in self.periods if p.state not in ("DONE", "SKIPPED")]

    @property
    def ok(self) -> bool:
        return not self.failed and all(p.state == "DONE" for p in self.periods)

    def to_dict(self) -> dict[str, Any]:
        return {"workflow": self.workflow, "granularity": self.granularity, "ok": self.ok,
                "done": sum(p.state == "DONE" for p in self.periods), "failed": [p.period for p in self.failed],
                "skipped": [p.period for p in self.periods if p.state == "SKIPPED"],
                "periods": [p.to_dict() for p in self.periods]}


def period_labels(loaded: LoadedProject, granularity: str, start: str, end: str) -> list[str]:
    """The periods from `start` to `end` inclusive, as `--period=` labels; UsageError when malformed."""
    from funnelops.flows.args import resolve_period, step_period

    tz = loaded.spec.project.time_zone
    first = resolve_period(granularity, start, tz).start
    last = resolve_period(granularity, end, tz).start
    if last < first:
        raise UsageError(f"--from {start} is after --to {end}", "give the earlier period first")
    out: list[str] = []
    d: date = first
    while d <= last:
        if len(out) >= MAX_PERIODS:
            raise UsageError(f"{start}..{end} is more than {MAX_PERIODS} periods", "backfill a shorter range")
        out.append(d.strftime(_LABEL[granularity]))
        d = step_period(granularity, d, 1)
    return out


def _start(backend: Backend, workflow: str, label: str, actor: str, reporter: Reporter) -> RunRecord:
    """Start the period's run; while another run holds the lease (a scheduler fire), wait for it."""
    while True:
        try:
            return coordinator.start(backend, workflow, trigger="backfill", actor=actor,
                                     extra_args=[f"--period={label}"])
        except RunInProgress:
            holder = backend.runtime.holder(workflow)
            if holder is None:
                continue
            reporter.emit(Notice(f"period {label} waits for {holder.describe()} to end", level="warning"))
            if holder.run_id is not None:
                coordinator.wait(backend.runtime, [holder.run_id])
            else:
                time.sleep(1.0)


def _run_period(backend: Backend, workflow: str, label: str, actor: str, reporter: Reporter) -> PeriodResult:
    t0 = time.perf_counter()
    run = _start(backend, workflow, label, actor, reporter)
    reporter.emit(RunStarted(run.id, workflow, "backfill"))
    end = coordinator.wait(backend.runtime, [run.id], **coordinator.report_to(reporter))[0]
    return PeriodResult(label, end.id, end.state, dict(end.rows or {}), end.error, time.perf_counter() - t0)


def backfill(loaded: LoadedProject, backend: Backend, workflow: str, start: str, end: str, *, actor: str,
             reporter: Reporter = QUIET, keep_going: bool = False) -> BackfillResult:
    """Run `workflow` once per period from `start` to `end`, in order, one at a time.

    Refused before Initial data (StageOrderError, exit 4) and while a run of the workflow is in
    progress (RunInProgress, exit 3), before anything starts. RunFailed (exit 1) when a period
    failed, with the whole result in its details.
    """
    wf = loaded.spec.workflow(workflow)
    if wf is None:
        from funnelops.errors import did_you_mean

        names = [w.name for w in loaded.spec.workflows]
        raise UsageError(f"unknown workflow '{workflow}'", did_you_mean(workflow, names) or "known: " + ", ".join(names))
    labels = period_labels(loaded, wf.granularity, start, end)
    require_before(backend.ledger, None, "backfill")
    jobs.refuse_workflow_running(backend, workflow, reporter, trigger="backfill", actor=actor)
    jobs.initialize_templates(loaded, backend, reporter)  # the workflow stage's args: trusted AND refined
    result = BackfillResult(workflow, wf.granularity, [PeriodResult(p) for p in labels])
    reporter.emit(Notice(f"backfill {workflow}: {len(labels)} period(s), {labels[0]} .. {labels[-1]}"))
    stop = False
    for i, label in enumerate(labels):
        if stop:
            break
        res = _run_period(backend, workflow, label, actor, reporter)
        result.periods[i] = res
        reporter.emit(Notice(f"[{i + 1}/{len(labels)}] {label}: run {res.run_id} {res.state} in {res.seconds:.1f}s"
                             + (f": {res.error}" if res.error else ""),
                             level="info" if res.state == "DONE" else "warning"))
        stop = res.state != "DONE" and not keep_going
    if result.failed:
        bad = result.failed
        raise RunFailed(f"backfill of {workflow}: {len(bad)} period(s) failed ({', '.join(p.period for p in bad)})"
                        + ("; stopped at the first failure" if not keep_going and result.to_dict()["skipped"] else ""),
                        f"read the logs with `funnelops logs {bad[0].run_id}`, fix the cause, then backfill "
                        f"--from {bad[0].period} again" + ("" if keep_going else " (or pass --keep-going)"),
                        backfill=result.to_dict())
    return result
