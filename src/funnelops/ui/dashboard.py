"""The dashboard's view of one project and home: one open backend shared by every request.

Why one object: opening a backend (the ledger, the warehouse) per request would cost more than the
page itself; the backend's connections are not meant for concurrent use, so every call takes one
lock (reads are milliseconds; a force holds it only while it starts its run, never while it runs).
Every method returns the same JSON-able shape as the matching CLI `--json` document.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from funnelops.errors import UsageError


@dataclass(frozen=True)
class UiSettings:
    """How the server was started (`funnelops ui` options, resolved as the CLI resolves them)."""

    project_path: Path
    home: Path
    backend_name: str | None = None
    env: str | None = None
    host: str = "127.0.0.1"
    port: int = 8400
    read_only: bool = False
    token: str | None = None  # required on every request when bound beyond localhost


def encode_cursor(cursor: dict[str, Any] | None) -> str:
    """A log cursor (JSON-able, opaque) as a URL-safe token the page hands back."""
    return base64.urlsafe_b64encode(json.dumps(cursor or {}, separators=(",", ":")).encode()).decode()


def decode_cursor(token: str | None) -> dict[str, Any] | None:
    """The cursor a page handed back; anything but what `encode_cursor` made is a UsageError."""
    if not token:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, json.JSONDecodeError) as exc:
        raise UsageError("bad `cursor`: not a cursor this dashboard gave", "start again without `cursor`") from exc
    if not isinstance(value, dict) or _has_negative(value):
        raise UsageError("bad `cursor`: not a cursor this dashboard gave", "start again without `cursor`")
    return value


def _has_negative(value: Any) -> bool:
    """A log offset below zero would make the runtime seek before the file's start."""
    if isinstance(value, dict):
        return any(_has_negative(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_negative(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0


RELOAD_CHECK_S = 1.0
MAX_PROJECT_FILES = 2000


def project_fingerprint(project_file: Path) -> tuple[Any, ...]:
    """(path, mtime, size) of every file in the project's folder (hidden folders such as the home
    `.funnelops/` left out); past MAX_PROJECT_FILES only the project file itself, so a project kept
    beside a large data folder costs no more than one stat per second."""
    root = project_file.parent
    seen: list[tuple[str, int, int]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        for name in filenames:
            try:
                st = os.stat(os.path.join(dirpath, name))
            except OSError:
                continue
            seen.append((os.path.join(dirpath, name), st.st_mtime_ns, st.st_size))
            if len(seen) > MAX_PROJECT_FILES:
                try:
                    st = project_file.stat()
                except OSError:
                    return ("missing",)
                return ((str(project_file), st.st_mtime_ns, st.st_size),)
    return tuple(sorted(seen))


class UnknownRun(UsageError):
    """The run id names no run of this home: the API answers 404."""

    kind = "unknown_run"


class UnknownScheduler(UsageError):
    """The scheduler names none of the project's: the API answers 404 on its path."""

    kind = "unknown_scheduler"


class Dashboard:
    """Reads and actions for the pages and the API, through the core the CLI uses."""

    def __init__(self, settings: UiSettings) -> None:
        self.settings = settings
        self.lock = threading.RLock()
        self._loaded: Any = None
        self._backend: Any = None
        self._seen: tuple[Any, ...] | None = None  # the project files' fingerprint when loaded
        self._checked = 0.0  # monotonic time of the last look at the files

    # -- plumbing -------------------------------------------------------------------------------
    @property
    def loaded(self) -> Any:
        """The project, reloaded when its files changed (at most one look per second): an operator
        who edits funnel.yaml or a SQL file sees the Plan page and the Force button act on the
        project as it is now, as the next CLI command would. An edit that breaks the project is
        the page's error (file, line, field), never a silently stale project."""
        with self.lock:
            now = time.monotonic()
            if self._loaded is not None and now - self._checked >= RELOAD_CHECK_S:
                self._checked = now
                if project_fingerprint(self.settings.project_path) != self._seen:
                    self._loaded = None
                    self.close()  # the backend was opened for the old project
            if self._loaded is None:
                from funnelops.spec.loader import load_project

                seen = project_fingerprint(self.settings.project_path)
                self._loaded = load_project(self.settings.project_path, backend=self.settings.backend_name,
                                            env=self.settings.env)
                self._seen, self._checked = seen, now
            return self._loaded

    @property
    def backend(self) -> Any:
        if self._backend is None:
            from funnelops.backends import open_backend

            name = self.settings.backend_name or self.loaded.spec.project.backend
            self._backend = open_backend(name, self.loaded, self.settings.home)
        return self._backend

    def close(self) -> None:
        with self.lock:
            if self._backend is not None:
                self._backend.close()
                self._backend = None

    # -- reads (shapes = the CLI's --json documents) --------------------------------------------
    def status(self) -> dict[str, Any]:
        """`funnelops status --json`."""
        from funnelops.lifecycle.status import collect_status

        with self.lock:
            st = collect_status(self.loaded, self.backend)
        return {"project_file": str(self.settings.project_path.absolute()), "home": str(self.settings.home),
                "env": self.loaded.env, **st}

    def runs(self, workflow: str | None = None, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """`funnelops runs --json` items, newest first, optionally of one workflow and one state
        (the runtime filters before the limit, so a rare state is found however old)."""
        with self.lock:
            records = self.backend.runtime.list(workflow, limit, state=state.upper() if state else None)
        return [r.to_dict() for r in records]

    def run(self, run_id: str) -> dict[str, Any] | None:
        """One run's record (`runs --json` item), None when unknown."""
        with self.lock:
            run = self.backend.runtime.get(_run_key(run_id))
        return run.to_dict() if run is not None else None

    def logs(self, run_id: str, cursor: str | None = None) -> dict[str, Any]:
        """New log text since `cursor`: {run, chunks: [{source, text, first}], cursor, state, ended,
        console_url} (the `logs --json` lines, batched; hand `cursor` back for the next piece).

        A run with no log yet (PENDING, or LOST before its first step) has no chunks, not an error:
        the page keeps polling with the same cursor. A cursor the runtime cannot use (edited by
        hand) is a UsageError naming `cursor`, never a 500."""
        from funnelops.backends.types import LogRead

        position = decode_cursor(cursor)
        with self.lock:
            runtime = self.backend.runtime
            run = runtime.get(_run_key(run_id))  # before reading: a run seen ended has all its bytes out
            if run is None:
                raise UnknownRun(f"no run {run_id}", "list the runs with `funnelops runs` (or GET /api/runs)",
                                 run=run_id)
            try:
                read = runtime.read_logs(run.id, position)
            except UsageError:  # no log source yet: nothing to show, same place next time
                read = LogRead([], position or {}, None)
            except (TypeError, ValueError, AttributeError, KeyError, OSError) as exc:
                if cursor is None:
                    raise
                raise UsageError("bad `cursor`: it does not fit this run's logs",
                                 "start again without `cursor`") from exc
        return {"run": str(run.id), "workflow": run.workflow, "state": run.state, "ended": run.terminal,
                "chunks": [{"source": c.source, "text": c.text, "first": c.first} for c in read.chunks],
                "cursor": encode_cursor(read.cursor), "console_url": read.console_url}

    def schedulers(self) -> list[dict[str, Any]]:
        """`funnelops scheduler list --json`."""
        return list(self.status()["schedulers"])

    def lineage(self) -> dict[str, Any]:
        """`funnelops lineage --json`: buckets -> trusted flows -> tables -> refined SQL -> views."""
        from funnelops.lifecycle.lineage import collect_lineage  # helper D

        return collect_lineage(self.loaded)

    def plan(self) -> dict[str, Any]:
        """`funnelops plan --json` for the stage the lifecycle is in (read-only: observes, changes nothing)."""
        from funnelops.lifecycle.order import current_stage
        from funnelops.plan.diff import build_plan

        with self.lock:
            stage = current_stage(self.backend.ledger)
            the_plan = build_plan(self.loaded, self.backend, stage)
        return {"env": self.loaded.env, **the_plan.to_dict()}

    # -- actions (refused in read-only mode by the caller's access check) ----------------------
    def force(self, scheduler: str, actor: str, period: str | None = None) -> dict[str, Any]:
        """`pipeline workflow --scheduler S --json`: the very same code path (order check, initialize
        the templates, the workflow's lease, refusal naming the holder). Raises RunInProgress (exit 3
        in the CLI) when the workflow already runs; the caller shows its details."""
        from funnelops.lifecycle.pipelines import run_workflow_pipeline

        with self.lock:
            result = run_workflow_pipeline(self.loaded, self.backend, scheduler, actor=actor, period=period)
        return result.to_dict()

    def set_paused(self, scheduler: str, paused: bool) -> dict[str, Any]:
        """`scheduler pause|resume S --json`."""
        s = self.scheduler(scheduler)
        with self.lock:
            self.backend.runtime.set_paused(s.id, paused)
        return {"scheduler": s.id, "paused": paused}

    def scheduler(self, name: str) -> Any:
        """The project's scheduler by name or id, or UnknownScheduler (with the CLI's did-you-mean)."""
        from funnelops.lifecycle.jobs import resolve_scheduler

        try:
            return resolve_scheduler(self.loaded, name)
        except UsageError as exc:
            raise UnknownScheduler(exc.message, exc.hint, scheduler=name) from exc

    def workflow_names(self) -> list[str]:
        """The project's workflows (the runs filter accepts only these)."""
        return [w.name for w in self.loaded.spec.workflows]


def _run_key(run_id: str) -> int | str:
    """Local run ids are integers; gcp ids are operation names (kept as text). Only ASCII digits
    make an integer: str.isdigit() is also true of '\u00b2' (int() refuses it: a 500) and of other
    scripts' digits (int() reads '\u0661' as 1: another run's id)."""
    return int(run_id) if run_id.isascii() and run_id.isdigit() else run_id
