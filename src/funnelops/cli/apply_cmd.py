"""`funnelops apply FILE`: apply exactly a plan saved by `plan -out FILE`."""

from __future__ import annotations

from pathlib import Path

import typer

from funnelops.cli.context import esc, get_ctx


def register(app: typer.Typer) -> None:
    app.command("apply")(apply)


def apply(
    ctx: typer.Context,
    plan_file: Path = typer.Argument(..., metavar="FILE", help="A plan saved by `funnelops plan --stage S -out FILE`."),
    allow_data_loss: bool = typer.Option(False, "--allow-data-loss",
                                         help="Allow replacing or deleting tables that hold rows."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document: {stage, plan_file, plan, apply}."),
) -> None:
    """Apply exactly the plan saved in FILE (the reviewed one), as `job create-infra` does for its stage.

    The stage is planned again under the apply lock first: if the project or the live platform moved
    since `plan -out` (another resource config, a deleted bucket, a changed template), nothing is
    applied and the first differing resource is named ("the plan is stale: re-run plan"). A plan
    written for another project or backend, a missing or edited file are refused too. The job is
    recorded as `job create-infra` records it (IaC also completes its stage).

    --json prints {stage, plan_file, plan, apply} as `job create-infra --json` does.

    Exit codes: 0 applied, 1 refused as stale or apply failed, 2 bad, foreign or edited plan file
    (or invalid project), 3 a run is in progress, 4 an earlier lifecycle stage must run first.
    """
    from funnelops.backends.types import default_actor
    from funnelops.cli.reporter import ConsoleReporter
    from funnelops.lifecycle.infra import create_infra
    from funnelops.plan.render import summary_line
    from funnelops.plan.saved import check_still_current, check_target, load_saved_plan
    from funnelops.resources import STAGE_TITLES

    app = get_ctx(ctx)
    app.set_json(as_json)
    saved = load_saved_plan(plan_file)
    loaded = app.project
    check_target(saved, loaded.spec.project.id, app.backend_kind, loaded.env)
    title = STAGE_TITLES.get(saved.stage, saved.stage)
    if app.dry_run:
        app.console.print(f"dry run: would check and apply the saved plan {esc(plan_file)} (stage {title}) on "
                          f"the {app.backend_kind} backend for project {esc(loaded.spec.project.id)}")
        app.console.emit({"dry_run": True, "command": "apply", "plan_file": str(plan_file), "stage": saved.stage,
                          "backend": app.backend_kind, "project": loaded.spec.project.id})
        return
    app.console.print(f"[bold]Apply[/] {esc(plan_file)} — stage {title} on {app.backend_kind}")
    the_plan, result = create_infra(loaded, app.backend, saved.stage, actor=default_actor(),
                                    allow_data_loss=allow_data_loss, reporter=ConsoleReporter(app, show_resources=True),
                                    check=lambda fresh: check_still_current(saved, fresh))
    app.console.print(summary_line(the_plan).replace("Plan:", "Planned:"),
                      f"[bold green]Applied[/] {len(result.done)} change(s) in {result.seconds:.2f}s.")
    app.console.emit({"stage": saved.stage, "plan_file": str(plan_file), "plan": the_plan.to_dict(),
                      "apply": result.to_dict()})
