"""The terminal reporter: the core's events printed as the CLI has always printed them.

One `emit` dispatches on the event's type to a small printer; events without a printer (apply
started/finished, runs waiting/finished, refusals, pipeline started/finished) print nothing, so
the output stays what it was before the core reported through one interface. With `--json`,
people's text goes to stderr (the Console decides) and stdout keeps the command's one JSON
document; the scheduler daemon also writes each of its events to stdout as a JSON line.

Long work (`Progress` of a generate, an apply's changes, `StepChanged` of awaited runs) is drawn
by a `ProgressView` on stderr: live on a terminal, milestone lines in logs (cli/progress_view.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from funnelops.cli.context import AppContext, esc
from funnelops.cli.progress_view import ProgressView
from funnelops.reporting import (ApplyFinished, ApplyStarted, Event, JobFinished, JobStarted, Notice, Progress,
                                 ResourceFinished, RunChanged, RunsFinished, RunStarted, SchedulerForced,
                                 StepChanged, TemplatesInitialized)

if TYPE_CHECKING:
    from funnelops.scheduler.daemon import SchedulerEvent

_STATE_COLOR = {"DONE": "green", "FAILED": "red", "LOST": "red", "CANCELLED": "yellow"}


class ConsoleReporter:
    """Prints events on the app's console.

    `show_resources` prints one line per applied change (`job create-infra`, `destroy`); the
    pipelines and the demo keep it off, as they always printed their jobs, not their changes.
    """

    def __init__(self, app: AppContext, *, show_resources: bool = False) -> None:
        self.app = app
        self.console = app.console
        self.show_resources = show_resources
        self.view = ProgressView(self.console.err, live=bool(self.console.err.is_terminal))
        self._printers: dict[type, Callable] = {
            ResourceFinished: self._resource_finished,
            RunStarted: self._run_started,
            RunChanged: self._run_changed,
            TemplatesInitialized: self._templates_initialized,
            SchedulerForced: self._scheduler_forced,
            Notice: self._notice,
            JobStarted: self._job_started,
            JobFinished: self._job_finished,
            Progress: self._progress,
            ApplyStarted: self._apply_started,
            ApplyFinished: self._apply_finished,
            StepChanged: self._step_changed,
            RunsFinished: self._runs_finished,
        }

    def emit(self, event: Event) -> None:
        printer = self._printers.get(type(event))
        if printer is None and type(event).__name__ == "SchedulerEvent":
            # matched by name: importing the daemon (croniter, retry policy) would slow every command
            printer = self._scheduler_event
        if printer is not None:
            try:
                printer(event)
            except Exception:  # reporting never fails the operation it reports
                import logging

                logging.getLogger(__name__).exception("could not print %s", event.name)

    def close(self) -> None:
        """Stop any live progress display (the command is over)."""
        self.view.close()

    def _out(self, markup: str) -> None:
        """A line of the command's output; above the live display when both share the terminal."""
        if self.view.active and self.console.out.is_terminal:
            self.view.print(markup)
        else:
            self.console.print(markup)

    def _info(self, text: str) -> None:
        self._out(f"    {esc(text)}")

    # -- long work: drawn on stderr -----------------------------------------------------------------
    def _progress(self, ev: Progress) -> None:
        key = f"progress:{ev.task}"
        self.view.update(key, ev.task, ev.done, ev.total, ev.unit, ev.detail)
        if ev.finished:
            self.view.finish(key)

    def _apply_started(self, ev: ApplyStarted) -> None:
        if ev.changes:
            self.view.update("apply", f"apply {ev.stage}", 0, ev.changes, "changes")

    def _apply_finished(self, ev: ApplyFinished) -> None:
        self.view.finish("apply", f"{ev.done} done, {ev.failed} failed, {ev.skipped} skipped")

    def _step_changed(self, ev: StepChanged) -> None:
        rows = ev.rows or {}
        detail = f"{ev.step} {ev.state}"
        if rows:
            detail += (f" · read {rows.get('read', 0):,}, kept {rows.get('kept', 0):,}, "
                       f"quarantined {rows.get('quarantined', 0):,}")
        self.view.update(f"run:{ev.run_id}", f"run {ev.run_id} ({ev.workflow})", len(ev.flows), None, "flow(s)",
                         detail)

    def _runs_finished(self, ev: RunsFinished) -> None:
        self.view.finish_all("run:")

    def _resource_finished(self, ev: ResourceFinished) -> None:
        self.view.advance("apply", detail=ev.address)
        if not self.show_resources:
            return
        if ev.ok:
            self._out(f"  [green]✓[/] {ev.action:<8} {esc(ev.address)} [dim]({ev.seconds:.2f}s)[/]")
        else:
            self._out(f"  [red]✗[/] {ev.action:<8} {esc(ev.address)}: {esc(ev.error or '')}")

    def _run_started(self, ev: RunStarted) -> None:
        self._info(f"started run {ev.run_id} of {ev.workflow}")

    def _run_changed(self, ev: RunChanged) -> None:
        if ev.terminal:
            self.view.finish(f"run:{ev.run_id}")
        color = _STATE_COLOR.get(ev.state, "cyan")
        rows = ev.rows or {}
        extra = ""
        if ev.terminal and rows:
            extra = f" — rows read {rows.get('read', 0):,}, kept {rows.get('kept', 0):,}, " \
                    f"quarantined {rows.get('quarantined', 0):,}"
        self._out(f"    run {esc(ev.run_id)} ({esc(ev.workflow)}): [{color}]{esc(ev.state)}[/]{extra}")

    def _templates_initialized(self, ev: TemplatesInitialized) -> None:
        self._info(f"initialized {ev.count} workflow template(s) to the workflow stage's arguments")

    def _scheduler_forced(self, ev: SchedulerForced) -> None:
        period = f" for period {ev.period}" if ev.period else ""
        self._info(f"forced scheduler {ev.scheduler_name} ({ev.scheduler_id}): run {ev.run_id} of "
                   f"{ev.workflow}{period} is {ev.state}")

    def _notice(self, ev: Notice) -> None:
        self._info(ev.text)

    def _job_started(self, ev: JobStarted) -> None:
        self._out(f"[bold]▶ {esc(ev.job)}[/]")

    def _job_finished(self, ev: JobFinished) -> None:
        if ev.ok:
            self._out(f"[green]✓ {esc(ev.job)}[/] [dim]({ev.seconds:.1f}s)[/]")
        else:
            self._out(f"[red]✗ {esc(ev.job)}[/] [dim]({ev.seconds:.1f}s)[/]")

    def _scheduler_event(self, ev: SchedulerEvent) -> None:
        when = ev.scheduled_for.isoformat() if ev.scheduled_for else ""
        self._out(esc(f"{ev.at:%Y-%m-%d %H:%M:%S} {ev.kind.value:<16} {ev.scheduler_name or ev.scheduler_id} "
                               f"{when} {ev.detail}".rstrip()))
        if self.app.as_json:
            sys.stdout.write(json.dumps(ev.to_dict(), ensure_ascii=False) + "\n")
            sys.stdout.flush()
