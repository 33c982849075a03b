"""Long work drawn on stderr: a live rich display on a terminal, milestone lines in logs.

`data generate`, an apply and a `--wait` on runs can take minutes; silence makes people press
Ctrl-C. The `ConsoleReporter` turns the core's events into *tasks* here (one per generate, apply
or awaited run), each with a count, an optional total, a detail and its elapsed time:

- stderr is a terminal: a rich Progress (spinner, bar, count, elapsed, detail), redrawn in place
  and stopped as soon as no task is left running;
- stderr is not a terminal (CI logs, pipes): one plain line per milestone (a quarter of the
  total, every change of a task without total, the end), so logs show progress without a line
  per file.

Progress always goes to stderr: stdout keeps the command's output (with `--json`, one document).
Thread-safe: apply reports from its worker threads.
"""

from __future__ import annotations

import atexit
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape

MILESTONES = 4  # plain mode prints a line per quarter of a known total


@dataclass
class _Task:
    label: str
    unit: str
    total: int | None
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    detail: str = ""
    milestone: int = -1  # the last quarter printed (plain mode)
    rich_id: Any = None


class ProgressView:
    """Tasks keyed by the caller's name; `live` draws them with rich, else milestone lines."""

    def __init__(self, console: Any, live: bool) -> None:
        self.console = console  # the app's stderr console
        self.live = live
        self._lock = threading.RLock()
        self._tasks: dict[str, _Task] = {}
        self._progress: Any = None

    @property
    def active(self) -> bool:
        """Whether a live display is on screen now (then other lines must go through `print`)."""
        return self._progress is not None

    def print(self, markup: str) -> None:
        """A line above the live display (rich keeps the display below it)."""
        with self._lock:
            target = self._progress.console if self._progress is not None else self.console
            target.print(markup)

    def update(self, key: str, label: str, done: int, total: int | None, unit: str, detail: str = "") -> None:
        """Create or move a task; in plain mode, print a line when it crosses a milestone."""
        with self._lock:
            task = self._tasks.get(key)
            if task is None:
                task = self._tasks[key] = _Task(label, unit, total)
            task.done, task.total, task.detail, task.unit = done, total, detail, unit
            if self.live:
                self._draw(task)
            else:
                self._milestone(task)

    def advance(self, key: str, by: int = 1, detail: str = "") -> None:
        """One more unit done on an existing task (an apply's change); unknown tasks are ignored."""
        with self._lock:
            task = self._tasks.get(key)
            if task is not None:
                self.update(key, task.label, task.done + by, task.total, task.unit, detail)

    def finish(self, key: str, detail: str | None = None) -> None:
        """The task ended: its final line (plain mode, unless already printed) and off the display."""
        with self._lock:
            task = self._tasks.pop(key, None)
            if task is None:
                return
            if detail is not None:
                task.detail = detail
            if self.live:
                if task.rich_id is not None and self._progress is not None:
                    self._progress.update(task.rich_id, completed=task.done, total=task.total or task.done or 1,
                                          count=self._count(task), detail=escape(task.detail))
                    self._progress.stop_task(task.rich_id)
                if not self._tasks:
                    self.close()
            elif task.milestone < MILESTONES:
                self._line(task)

    def finish_all(self, prefix: str = "") -> None:
        with self._lock:
            for key in [k for k in self._tasks if k.startswith(prefix)]:
                self.finish(key)

    def close(self) -> None:
        """Stop the live display (idempotent): the terminal is left with the last frame."""
        with self._lock:
            progress, self._progress = self._progress, None
        if progress is not None:
            try:
                progress.stop()
            except Exception:  # a broken terminal must not fail the command
                pass

    # -- drawing ----------------------------------------------------------------------------------
    @staticmethod
    def _count(task: _Task) -> str:
        if task.total is None:
            return f"{task.done:,} {task.unit}"
        return f"{task.done:,}/{task.total:,} {task.unit}"

    def _elapsed(self, task: _Task) -> str:
        return f"{time.monotonic() - task.started:.1f}s"

    def _line(self, task: _Task) -> None:
        detail = f" — {task.detail}" if task.detail else ""
        self.console.print(f"    {escape(task.label)}: {escape(self._count(task))}{escape(detail)} "
                           f"[dim]({self._elapsed(task)})[/]")

    def _milestone(self, task: _Task) -> None:
        if task.total is None:
            self._line(task)
            return
        reached = MILESTONES if task.total <= 0 else min(MILESTONES, task.done * MILESTONES // task.total)
        if reached > task.milestone:
            task.milestone = reached
            self._line(task)

    def _draw(self, task: _Task) -> None:
        if self._progress is None:
            self._progress = self._start()
        fields = {"count": self._count(task), "detail": escape(task.detail)}
        if task.rich_id is None:
            task.rich_id = self._progress.add_task(escape(task.label), total=task.total, completed=task.done, **fields)
        else:
            self._progress.update(task.rich_id, total=task.total, completed=task.done, **fields)

    def _start(self) -> Any:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=20),
                            TextColumn("{task.fields[count]}"), TimeElapsedColumn(),
                            TextColumn("[dim]{task.fields[detail]}"), console=self.console,
                            redirect_stdout=False, redirect_stderr=False, transient=False)
        progress.start()
        atexit.register(self.close)  # an error or Ctrl-C mid-way still leaves the terminal usable
        return progress
