"""The one reporting interface: the quiet reporter is silent, a recorded apply is the event sequence
a subscriber can rely on, and the terminal reporter prints exactly the CLI's lines.

Applies run on the real local backend (folders, DuckDB, SQLite) in tmp_path.
"""

from __future__ import annotations

import re
from datetime import datetime, UTC
from pathlib import Path

import pytest

from funnelops.backends.local import LocalBackend
from funnelops.cli.context import AppContext
from funnelops.cli.reporter import ConsoleReporter
from funnelops.lifecycle.infra import create_infra
from funnelops.lifecycle.pipelines import run_funnel_pipeline
from funnelops.plan.apply import apply_plan
from funnelops.plan.diff import build_plan
from funnelops.reporting import (QUIET, ApplyFinished, ApplyStarted, Event, FanOutReporter, JobFinished, JobStarted,
                                 Notice, PipelineFinished, PipelineStarted, QuietReporter, RecordingReporter, Reporter,
                                 ResourceFinished, ResourceStarted, RunChanged, RunStarted, SchedulerForced,
                                 TemplatesInitialized)
from funnelops.runs.model import RunRecord
from funnelops.scheduler.daemon import EventKind, SchedulerEvent
from funnelops.spec.loader import load_project

PROJECT = """\
project:
  id: demo-project
buckets:
  - name: demo-trusted
  - name: demo-raw
datasets:
  - id: refined
  - id: reporting
tables:
  - dataset: refined
    name: daily
    schema: [{name: day, type: DATE}, {name: n, type: INT64}]
views:
  - {dataset: reporting, name: v_daily, query: "SELECT day, n FROM refined.daily"}
workflows:
  - name: wf-day
    granularity: DAY
    initial_load: true
    args: ["--granularity=DAY"]
    jobs: [{step_id: flows}]
schedulers:
  - {name: Día, id: dia, cron: "0 6 * * *", workflow: wf-day, time_zone: America/Bogota}
"""


@pytest.fixture
def env(tmp_path: Path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "funnel.yaml").write_text(PROJECT, encoding="utf-8")
    loaded = load_project(proj / "funnel.yaml")
    backend = LocalBackend.for_project(loaded, tmp_path / "home")
    try:
        yield loaded, backend
    finally:
        backend.close()


@pytest.fixture
def app(tmp_path: Path, monkeypatch) -> AppContext:
    monkeypatch.setenv("NO_COLOR", "1")
    return AppContext(project_path=tmp_path / "funnel.yaml", home=tmp_path / "home")


def test_every_reporter_satisfies_the_protocol(app) -> None:
    for r in (QUIET, QuietReporter(), RecordingReporter(), FanOutReporter(), ConsoleReporter(app)):
        assert isinstance(r, Reporter)


def test_quiet_reporter_prints_nothing(env, capsys) -> None:
    loaded, backend = env
    create_infra(loaded, backend, "iac", actor="test")  # the default reporter
    run_funnel_pipeline(loaded, backend, "IaC", actor="test", reporter=QuietReporter())
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_a_small_apply_is_recorded_as_started_resource_pairs_finished(env) -> None:
    loaded, backend = env
    plan = build_plan(loaded, backend, "iac")
    todo = [c.address for c in plan.mutating()]
    assert len(todo) >= 5
    rec = RecordingReporter()
    result = apply_plan(plan, backend, reporter=rec, max_parallel=1)  # one worker: a fixed order
    assert result.ok
    assert rec.names() == ["apply_started"] + ["resource_started", "resource_finished"] * len(todo) \
        + ["apply_finished"]
    first, last = rec.events[0], rec.events[-1]
    assert first == ApplyStarted("iac", len(todo), 1)
    assert isinstance(last, ApplyFinished) and last.ok and (last.done, last.failed, last.skipped) == (len(todo), 0, 0)
    pairs = list(zip(rec.events[1:-1:2], rec.events[2:-1:2]))
    assert all(isinstance(s, ResourceStarted) and isinstance(f, ResourceFinished) and s.address == f.address
               and f.ok and f.seconds >= 0 for s, f in pairs)
    assert sorted(s.address for s, _ in pairs) == sorted(todo)
    assert {s.action for s, _ in pairs} == {"create"}
    # plain data: a dashboard can serialize every event as it is
    assert rec.events[1].to_dict() == {"event": "resource_started", "address": pairs[0][0].address,
                                       "kind": pairs[0][0].kind, "action": "create"}


def test_a_pipeline_reports_its_jobs_and_its_changes(env) -> None:
    loaded, backend = env
    rec = RecordingReporter()
    run_funnel_pipeline(loaded, backend, "IaC", actor="test", reporter=rec)
    assert rec.events[:2] == [PipelineStarted("Datos_GCP_Funnel", {"dataStage": "IaC"}, ("GCP create infra",)),
                              JobStarted("Datos_GCP_Funnel", "GCP create infra")]
    assert rec.of(ApplyStarted) and rec.of(ResourceFinished)
    job, end = rec.events[-2:]
    assert isinstance(job, JobFinished) and job.ok and job.job == "GCP create infra"
    assert isinstance(end, PipelineFinished) and end.ok and end.seconds == job.seconds


def test_console_reporter_prints_an_apply_as_create_infra_always_did(env, app, capsys) -> None:
    loaded, backend = env
    plan, result = create_infra(loaded, backend, "iac", actor="test", reporter=ConsoleReporter(app, show_resources=True))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(result.done)
    line = re.compile(r"^  ✓ (create|update|replace|delete) {1,3}(\S+) \(\d+\.\d\ds\)$")
    assert all(line.match(x) for x in lines), lines
    assert sorted(line.match(x).group(2) for x in lines) == sorted(c.address for c, _ in result.done)
    # inside a pipeline the changes are not printed, only the job lines
    run_funnel_pipeline(loaded, backend, "IaC", actor="test", reporter=ConsoleReporter(app))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "▶ GCP create infra" and re.match(r"^✓ GCP create infra \(\d+\.\ds\)$", out[1]), out
    assert len(out) == 2


def _printed(app: AppContext, capsys, *events: Event, show_resources: bool = False) -> list[str]:
    r = ConsoleReporter(app, show_resources=show_resources)
    for e in events:
        r.emit(e)
    return capsys.readouterr().out.splitlines()


def test_console_reporter_lines_are_the_cli_lines(app, capsys) -> None:
    run = RunRecord(7, "funnel-dia", "DONE", "forced", "me", rows={"read": 1038, "kept": 1037, "quarantined": 1})
    assert _printed(app, capsys,
                    ResourceFinished("bucket.b", "bucket", "create", 0.0123),
                    ResourceFinished("table.[/oops]", "table", "replace", error="boom [bold]"),
                    show_resources=True) == [
        "  ✓ create   bucket.b (0.01s)", "  ✗ replace  table.[/oops]: boom [bold]"]
    assert _printed(app, capsys,
                    JobStarted("P", "GCP force scheduler"),
                    TemplatesInitialized(4),
                    SchedulerForced("dia", "Día", "funnel-dia", 7, "RUNNING"),
                    JobFinished("P", "GCP force scheduler", True, 0.12),
                    RunStarted(1, "funnel-dia", "initial-load"),
                    RunChanged.of(RunRecord(7, "funnel-dia", "RUNNING", "forced", "me")),
                    RunChanged.of(run),
                    Notice("no initial-load workflows in the project: nothing to run"),
                    JobFinished("P", "Follow the forced run", False, 4.93, "ended FAILED")) == [
        "▶ GCP force scheduler",
        "    initialized 4 workflow template(s) to the workflow stage's arguments",
        "    forced scheduler Día (dia): run 7 of funnel-dia is RUNNING",
        "✓ GCP force scheduler (0.1s)",
        "    started run 1 of funnel-dia",
        "    run 7 (funnel-dia): RUNNING",
        "    run 7 (funnel-dia): DONE — rows read 1,038, kept 1,037, quarantined 1",
        "    no initial-load workflows in the project: nothing to run",
        "✗ Follow the forced run (4.9s)"]
    # events the CLI never printed stay silent; so do resources outside create-infra/destroy
    assert _printed(app, capsys, ApplyStarted("iac", 3, 4), ResourceStarted("bucket.b", "bucket", "create"),
                    ResourceFinished("bucket.b", "bucket", "create", 0.01), ApplyFinished(3, 0, 0, 0.1),
                    PipelineStarted("P", {}, ()), PipelineFinished("P", True, 1.0)) == []


def test_console_reporter_prints_scheduler_events_and_their_json_lines(app, capsys) -> None:
    at = datetime(2026, 3, 1, 11, 0, 5, tzinfo=UTC)
    ev = SchedulerEvent(EventKind.SKIPPED_RUNNING, "dia", at, scheduled_for=at.replace(second=0),
                        detail="still running", scheduler_name="Día")
    assert _printed(app, capsys, ev) == [
        "2026-03-01 11:00:05 skipped_running  Día 2026-03-01T11:00:00+00:00 still running"]
    app.as_json, app._console = True, None  # a new console: with --json, people's text goes to stderr
    ConsoleReporter(app).emit(ev)
    out = capsys.readouterr()
    assert out.out == '{"kind": "skipped_running", "scheduler_id": "dia", "scheduler_name": "Día", ' \
                      '"at": "2026-03-01T11:00:05+00:00", "scheduled_for": "2026-03-01T11:00:00+00:00", ' \
                      '"attempt": 0, "retry_at": null, "count": 0, "detail": "still running"}\n'
    assert "skipped_running" in out.err


def test_fan_out_reaches_every_subscriber_even_past_a_broken_one() -> None:
    class Broken:
        def emit(self, event: Event) -> None:
            raise RuntimeError("subscriber bug")

    first, last = RecordingReporter(), RecordingReporter()
    fan = FanOutReporter(first, Broken())
    fan.subscribe(last)
    fan.emit(Notice("hello"))
    fan.unsubscribe(first)
    fan.emit(Notice("again", level="warning"))
    assert first.events == [Notice("hello")]
    assert last.events == [Notice("hello"), Notice("again", "warning")]
    assert last.events[1].to_dict() == {"event": "notice", "text": "again", "level": "warning"}
