"""Carry out a plan: guards first, then changes in dependency order, in bounded parallel.

Guards run before anything is touched (no half-applied change because of a refusal): a
replace or delete that would lose rows needs `allow_data_loss`; anything under deletion
protection is never replaced or deleted. Every change is idempotent against what was
observed, so an interrupted apply is finished by the next one.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from funnelops.errors import BackendError, DataLossRefused, FunnelopsError
from funnelops.plan.model import Change, Plan
from funnelops.reporting import QUIET, ApplyFinished, ApplyStarted, Reporter, ResourceFinished, ResourceStarted

if TYPE_CHECKING:
    from funnelops.backends.base import Backend, Observed
    from funnelops.resources import Resource


@dataclass
class ApplyResult:
    done: list[tuple[Change, float]] = field(default_factory=list)
    failed: list[tuple[Change, str]] = field(default_factory=list)
    skipped: list[Change] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped

    def to_dict(self) -> dict:
        counts: dict[str, int] = {}
        for c, _ in self.done:
            counts[c.action] = counts.get(c.action, 0) + 1
        return {"ok": self.ok, "seconds": round(self.seconds, 3), "applied": counts,
                "failed": [{"address": c.address, "action": c.action, "error": e} for c, e in self.failed],
                "skipped": [c.address for c in self.skipped]}


def check_guards(plan: Plan, backend: Backend, allow_data_loss: bool) -> None:
    """Refuse before touching anything if a change would lose data or break protection."""
    protected = [c for c in plan.mutating() if c.protected and c.action in ("replace", "delete")]
    if protected:
        names = ", ".join(c.address for c in protected)
        raise DataLossRefused(f"refusing to {protected[0].action} {names}: deletion protection is on",
                              "set deletion_protection: false in the project first if you really mean it")
    if allow_data_loss:
        return
    risky = []

    def table_rows(c: Change) -> int:
        return backend.table_rows(c.name)  # exact, not the observed estimate

    for c in plan.mutating():
        if c.action not in ("replace", "delete"):
            continue
        rows: int | None
        if c.kind == "table":
            rows = table_rows(c)
        elif c.kind == "dataset":  # dropping a dataset drops the tables in it
            rows = sum(table_rows(t) for t in plan.changes
                       if t.kind == "table" and t.observed is not None and t.name.split(".", 1)[0] == c.name)
        else:
            rows = c.observed.rows if c.observed else None
        if rows:
            risky.append(f"{c.address} ({c.action}, holds data)")
    if risky:
        raise DataLossRefused("refusing to lose data: " + "; ".join(risky),
                              "back the data up, then re-run with --allow-data-loss")


def preflight(plan: Plan, backend: Backend) -> None:
    """The backend's own checks against live state (a local view binding, a name already taken),
    so that a change that would fail midway is refused before the first one is made."""
    backend.check_plan(plan)


def _run_change(backend: Backend, c: Change) -> None:
    h = backend.handler(c.kind)
    if c.action == "create":
        h.create(_desired(c))
    elif c.action == "update":
        h.update(_desired(c), _current(c), [f.field.split(".")[0].split("[")[0] for f in c.fields])
    elif c.action == "replace":
        h.delete(c.name, _current(c))
        h.create(_desired(c))
    elif c.action == "delete":
        h.delete(c.name, _current(c))


def _desired(c: Change) -> Resource:
    """The planner gives every create, update and replace its desired resource."""
    assert c.resource is not None, f"{c.action} of {c.address} without a desired resource"
    return c.resource


def _current(c: Change) -> Observed:
    """The planner gives every update, replace and delete what it observed."""
    assert c.observed is not None, f"{c.action} of {c.address} without an observed resource"
    return c.observed


def apply_plan(plan: Plan, backend: Backend, *, allow_data_loss: bool = False, reporter: Reporter = QUIET,
               max_parallel: int | None = None) -> ApplyResult:
    check_guards(plan, backend, allow_data_loss)
    preflight(plan, backend)
    started = time.perf_counter()
    result = ApplyResult()
    todo = plan.mutating()
    pending_addrs = {c.address for c in todo}
    deletes = [c for c in todo if c.action == "delete"]
    others = [c for c in todo if c.action != "delete"]
    workers = max(1, max_parallel or backend.max_parallel)
    session = backend.apply_session()
    reporter.emit(ApplyStarted(plan.stage, len(todo), workers))

    def run(c: Change) -> float:
        t0 = time.perf_counter()
        reporter.emit(ResourceStarted(c.address, c.kind, c.action))
        _run_change(backend, c)
        return time.perf_counter() - t0

    with session, ThreadPoolExecutor(max_workers=workers) as pool:
        # Deletes first, one at a time, dependents before what they read (plan order).
        for c in deletes:
            if result.failed:
                result.skipped.append(c)
                continue
            _execute(pool.submit(run, c), c, result, reporter)
            pending_addrs.discard(c.address)
        running: dict[Future, Change] = {}
        queue = list(others)
        if result.failed:  # a delete failed: order matters there, so stop before creating anything
            result.skipped.extend(queue)
            queue = []
        # A failure skips what depends on it (transitively); independent changes still finish.
        blocked: set[str] = set()
        while queue or running:
            held = [c for c in queue if any(d in blocked for d in c.depends_on)]
            while held:
                for c in held:
                    queue.remove(c)
                    result.skipped.append(c)
                    blocked.add(c.address)
                    pending_addrs.discard(c.address)
                held = [c for c in queue if any(d in blocked for d in c.depends_on)]
            ready = [c for c in queue if not any(d in pending_addrs for d in c.depends_on)]
            for c in ready:
                if len(running) >= workers:
                    break
                queue.remove(c)
                running[pool.submit(run, c)] = c
            if not running:
                if queue:  # waiting on something that is not in the plan (a cycle): cannot proceed
                    result.skipped.extend(queue)
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                c = running.pop(f)
                if not _execute(f, c, result, reporter):
                    blocked.add(c.address)
                pending_addrs.discard(c.address)
    backend.refresh()
    result.seconds = time.perf_counter() - started
    reporter.emit(ApplyFinished(len(result.done), len(result.failed), len(result.skipped), result.seconds))
    return result


def _execute(f: Future, c: Change, result: ApplyResult, reporter: Reporter) -> bool:
    """Record how a change ended; True if it succeeded."""
    try:
        secs = f.result()
    except FunnelopsError as exc:
        result.failed.append((c, exc.message))
        reporter.emit(ResourceFinished(c.address, c.kind, c.action, error=exc.message))
        return False
    except Exception as exc:  # a backend error we did not foresee: keep it, name the resource
        msg = f"{type(exc).__name__}: {exc}"
        result.failed.append((c, msg))
        reporter.emit(ResourceFinished(c.address, c.kind, c.action, error=msg))
        return False
    result.done.append((c, secs))
    reporter.emit(ResourceFinished(c.address, c.kind, c.action, secs))
    return True


def raise_if_failed(result: ApplyResult) -> None:
    if result.failed:
        first, err = result.failed[0]
        raise BackendError(f"{len(result.failed)} change(s) failed; first: {first.address}: {err}",
                           "fix the cause and run the same command again: finished changes are kept")
