"""The seed's jobs and pipelines: job run-/rerun-workflow-templates, job force-scheduler, pipeline funnel|workflow."""

from __future__ import annotations

import typer

from funnelops.cli.context import AppContext, esc, get_ctx
from funnelops.cli.groups import job_app, pipeline_app
from funnelops.cli.infra_cmd import ROLLBACK_HELP

SCHEDULER_HELP = ("A scheduler's name or id from the project (see `funnelops scheduler list`); case and accents "
                  "do not matter.")
PERIOD_HELP = ("The period the run processes, in the workflow's granularity: YYYY-MM-DD (DAY), YYYY-MM (MONTH), "
               "YYYY (YEAR), previous or current (default: what the workflow's args say, else current). "
               "On gcp the template is then instantiated directly: a Cloud Scheduler fire cannot carry it.")



def register(app: typer.Typer) -> None:
    job_app.command("run-workflow-templates")(run_workflow_templates)
    job_app.command("rerun-workflow-templates")(rerun_workflow_templates)
    job_app.command("force-scheduler")(force_scheduler)
    pipeline_app.command("funnel")(pipeline_funnel)
    pipeline_app.command("workflow")(pipeline_workflow)
    app.command("backfill")(backfill)
    app.add_typer(pipeline_app, name="pipeline")


def _actor() -> str:
    from funnelops.backends.types import default_actor

    return default_actor()


def _dry(app: AppContext, what: str, data: dict) -> None:
    app.console.print(f"dry run: would {esc(what)}")
    app.console.emit({"dry_run": True, **data})


def _runs_job(ctx: typer.Context, title: str, rerun: bool) -> None:
    from funnelops.cli.reporter import ConsoleReporter
    from funnelops.lifecycle import jobs

    app = get_ctx(ctx)
    loaded = app.project
    names = jobs.initial_load_workflows(loaded)
    if app.dry_run:
        return _dry(app, f"run {', '.join(names)} on {app.backend_kind} and wait for all",
                    {"command": f"job {'rerun' if rerun else 'run'}-workflow-templates", "workflows": names,
                     "backend": app.backend_kind})
    app.console.print(f"[bold]{esc(title)}[/] — {esc(', '.join(names))}")
    fn = jobs.rerun_workflow_templates if rerun else jobs.run_workflow_templates
    runs = fn(loaded, app.backend, actor=_actor(), reporter=ConsoleReporter(app))
    app.console.print(f"[bold green]All {len(runs)} run(s) succeeded.[/]")
    app.console.emit({"runs": [r.to_dict() for r in runs]})


def run_workflow_templates(ctx: typer.Context) -> None:
    """GCP run workflow template: run every initial-load workflow in parallel and wait for all."""
    _runs_job(ctx, "GCP run workflow template", rerun=False)


def rerun_workflow_templates(ctx: typer.Context) -> None:
    """GCP re run workflow template: run them again (completes the 'Initial data' stage)."""
    _runs_job(ctx, "GCP re run workflow template", rerun=True)


def force_scheduler(
    ctx: typer.Context,
    scheduler: str = typer.Option(..., "--scheduler", "-s", help=SCHEDULER_HELP),
    period: str | None = typer.Option(None, "--period", help=PERIOD_HELP),
) -> None:
    """Initialize the templates, check the scheduler's workflow is not running, and force it.

    The Workflow stage is recorded once the forced run succeeds (`status` shows it in progress)."""
    from funnelops.cli.reporter import ConsoleReporter
    from funnelops.lifecycle import jobs

    app = get_ctx(ctx)
    loaded = app.project
    s = jobs.resolve_scheduler(loaded, scheduler)
    jobs.period_args(loaded, s.workflow, period)  # a bad period is exit 2, even in a dry run
    if app.dry_run:
        return _dry(app, f"initialize the templates, check that {s.workflow} is not running, and force "
                         f"scheduler {s.name} on {app.backend_kind}" + (f" for period {period}" if period else ""),
                    {"command": "job force-scheduler", "scheduler": s.name, "workflow": s.workflow, "period": period})
    run = jobs.force_scheduler(loaded, app.backend, s.id, actor=_actor(), reporter=ConsoleReporter(app),
                               period=period)
    app.console.emit({"scheduler": s.name, "workflow": s.workflow, "run": run.to_dict()})


def _summary(app: AppContext, result) -> None:
    params = ", ".join(f"{k}={v}" for k, v in result.parameter.items())
    app.console.print("", f"[bold]{esc(result.pipeline)}[/] {esc(params)}")
    for j in result.jobs:
        mark = "[green]✓[/]" if j.ok else "[red]✗[/]"
        app.console.print(f"  {mark} {esc(str(j.name).ljust(32))} {j.seconds:6.1f}s")
    total = sum(j.seconds for j in result.jobs)
    app.console.print(f"[bold]{'Succeeded' if result.ok else 'Failed'}[/] in {total:.1f}s.")


def pipeline_funnel(
    ctx: typer.Context,
    data_stage: str = typer.Option(..., "--data-stage", "-d", help="IaC | 'Initial data' (aliases: iac, initial-data)"),
    allow_data_loss: bool = typer.Option(False, "--allow-data-loss", help="Allow replacing tables that hold rows."),
    allow_rollback: bool = typer.Option(False, "--allow-rollback", help=ROLLBACK_HELP),
) -> None:
    """Datos_GCP_Funnel: IaC = create infra; Initial data = run, create infra, re-run.

    On a lifecycle that already completed a later stage, a pipeline that would move the workflow
    templates back to this stage's arguments is refused (exit 2) unless --allow-rollback."""
    from funnelops.cli.reporter import ConsoleReporter
    from funnelops.lifecycle.pipelines import funnel_job_names, run_funnel_pipeline
    from funnelops.resources import normalize_stage

    app = get_ctx(ctx)
    loaded = app.project
    stage = normalize_stage(data_stage)
    if app.dry_run:
        names = funnel_job_names(stage)
        return _dry(app, f"run Datos_GCP_Funnel (dataStage={data_stage}) on {app.backend_kind}: "
                         + " -> ".join(names), {"pipeline": "Datos_GCP_Funnel", "dataStage": stage, "jobs": names})
    result = run_funnel_pipeline(loaded, app.backend, stage, actor=_actor(), reporter=ConsoleReporter(app),
                                 allow_data_loss=allow_data_loss, allow_rollback=allow_rollback)
    _summary(app, result)
    app.console.emit(result.to_dict())


def pipeline_workflow(
    ctx: typer.Context,
    scheduler: str = typer.Option(..., "--scheduler", "-s", help=SCHEDULER_HELP),
    wait: bool = typer.Option(False, "--wait", help="Follow the forced run to its end (the Workflow stage is "
                              "recorded when it succeeds)."),
    period: str | None = typer.Option(None, "--period", help=PERIOD_HELP),
) -> None:
    """Datos_GCP_Funnel_Workflow: initialize the templates, check for a run in progress, force the scheduler."""
    from funnelops.cli.reporter import ConsoleReporter
    from funnelops.lifecycle import jobs
    from funnelops.lifecycle.pipelines import run_workflow_pipeline

    app = get_ctx(ctx)
    loaded = app.project
    s = jobs.resolve_scheduler(loaded, scheduler)
    jobs.period_args(loaded, s.workflow, period)  # a bad period is exit 2, even in a dry run
    if app.dry_run:
        return _dry(app, f"run Datos_GCP_Funnel_Workflow (Select a Scheduler={s.name}) on {app.backend_kind}: "
                         f"initialize templates, check {s.workflow} is not running, force {s.name}"
                         + (f" for period {period}" if period else ""),
                    {"pipeline": "Datos_GCP_Funnel_Workflow", "scheduler": s.name, "workflow": s.workflow,
                     "period": period})
    result = run_workflow_pipeline(loaded, app.backend, s.id, actor=_actor(), reporter=ConsoleReporter(app),
                                   wait=wait, period=period)
    _summary(app, result)
    app.console.emit(result.to_dict())


def _backfill_summary(app: AppContext, data: dict) -> None:
    app.console.print("", f"[bold]Backfill of {esc(data['workflow'])}[/] ({esc(data['granularity'])})")
    for p in data["periods"]:
        mark = {"DONE": "[green]✓[/]", "SKIPPED": "[dim]·[/]"}.get(p["state"], "[red]✗[/]")
        rows = p["rows"] or {}
        read = f"read {rows.get('read', 0):,}" if rows else ""
        run = f"run {p['run_id']}" if p["run_id"] is not None else "not run"
        app.console.print(f"  {mark} {esc(p['period'].ljust(10))} {esc(run.ljust(10))} {esc(p['state'].ljust(9))} "
                          f"{p['seconds']:6.1f}s {esc(read)}")
    app.console.print(f"[bold]{data['done']} done, {len(data['failed'])} failed, {len(data['skipped'])} not run.[/]")


def backfill(
    ctx: typer.Context,
    workflow: str = typer.Option(..., "--workflow", "-w", help="The workflow to run (a name from the project's "
                                 "`workflows`; its granularity sets the periods)."),
    start: str = typer.Option(..., "--from", help="First period: YYYY-MM-DD, YYYY-MM or YYYY (the workflow's "
                              "granularity), or previous/current."),
    end: str = typer.Option(..., "--to", help="Last period, included (same format)."),
    keep_going: bool = typer.Option(False, "--keep-going", help="Run the remaining periods after a failed one "
                                    "(default: stop at the first failure)."),
    wait: bool = typer.Option(True, "--wait", help="Follow each period's run to its end (always: a backfill starts "
                              "a period only when the previous one has ended; the flag is accepted for symmetry)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON: {workflow, granularity, ok, done, "
                                 "failed, skipped, periods: [{period, run_id, state, rows, error, seconds}]}."),
) -> None:
    """Run a workflow over past periods, one period at a time, under the workflow's lease.

    Each period is one run with trigger `backfill` and `--period=P` (see `funnelops runs`). Refused
    before the 'Initial data' stage (exit 4) and while a run of the workflow is in progress (exit 3);
    exit 1 when a period failed.
    """
    from funnelops.cli.reporter import ConsoleReporter
    from funnelops.errors import RunFailed
    from funnelops.lifecycle.backfill import backfill as run_backfill, period_labels

    app = get_ctx(ctx)
    app.set_json(as_json)
    loaded = app.project
    wf = loaded.spec.workflow(workflow)
    if app.dry_run and wf is not None:
        labels = period_labels(loaded, wf.granularity, start, end)
        return _dry(app, f"run {workflow} for {len(labels)} period(s), {labels[0]} .. {labels[-1]}, one at a time",
                    {"command": "backfill", "workflow": workflow, "periods": labels})
    try:
        result = run_backfill(loaded, app.backend, workflow, start, end, actor=_actor(),
                              reporter=ConsoleReporter(app), keep_going=keep_going)
    except RunFailed as exc:
        if "backfill" in exc.details:
            _backfill_summary(app, exc.details["backfill"])
        raise
    data = result.to_dict()
    _backfill_summary(app, data)
    app.console.emit(data)
