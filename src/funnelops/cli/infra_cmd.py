"""validate, spec schema, plan, job create-infra, destroy."""

from __future__ import annotations

from pathlib import Path

import typer

from funnelops.cli.context import esc, get_ctx
from funnelops.cli.groups import job_app, spec_app

ROLLBACK_HELP = ("Allow moving the workflow templates back to this stage's arguments on a lifecycle that completed "
                 "a later stage; the ledger then forgets the later stages (they must run again).")
STAGE_HELP = "IaC | 'Initial data' | Workflow (aliases: iac, initial-data, workflow)"


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.command("plan")(plan)
    app.command("destroy")(destroy)
    spec_app.command("schema")(spec_schema)
    spec_app.command("reference")(spec_reference)
    job_app.command("create-infra")(create_infra)
    app.add_typer(spec_app, name="spec")
    app.add_typer(job_app, name="job")


def validate(ctx: typer.Context) -> None:
    """Check the project definition, its trusted flows and its SQL: every problem at once, each with
    its file, line and field.

    Beyond what every command checks when it loads the project, validate executes each trusted flow
    module as a run imports it (no data is read) and parses refined and view SQL in the dialect of
    the backend (--backend): what would fail a run is an error (exit 2), what may fail is a warning.
    With `environments:`, it checks the names every declared environment must not share (buckets,
    and datasets, templates and scheduler ids within one GCP project), warns where a YAML 1.1 reader
    would read a value differently, and shows the resolved values of the selected environment
    (--env); --json holds the whole resolved document under `resolved`."""
    from funnelops.errors import ProjectError
    from funnelops.spec.deep_checks import inspect_project
    from funnelops.spec.resolved import environment_problems, resolved_document, resolved_lines, resolved_summary

    app = get_ctx(ctx)
    loaded = app.project
    spec = loaded.spec
    errors, warnings = inspect_project(loaded, app.backend_kind)
    errors += environment_problems(loaded)
    if errors:
        raise ProjectError(sorted(errors, key=lambda p: (p.file, p.line or 0, p.field)))
    warnings = sorted(loaded.notes, key=lambda p: p.line or 0) + warnings
    counts = {k: len(getattr(spec, k)) for k in ("buckets", "datasets", "tables", "external_tables", "views",
                                                 "workflows", "schedulers")}
    flows = {"trusted": _count(loaded.base_dir, ("flows", "trusted"), "*.py"),
             "refined": _count(loaded.base_dir, ("sql", "refined"), "*.sql")}
    for w in warnings:
        app.console.print(f"[yellow]warning:[/] {esc(w.render())}")
    app.console.print(*(esc(line) for line in resolved_lines(loaded)))
    where = f" (environment {esc(loaded.env)})" if loaded.env else ""
    app.console.print(f"[green]✓[/] {esc(loaded.path)}{where} is valid: " + ", ".join(
        f"{v} {k.replace('_', ' ')}" for k, v in counts.items())
        + f", {flows['trusted']} trusted flows, {flows['refined']} refined flows")
    app.console.emit({"valid": True, "project": str(loaded.path), "env": loaded.env,
                      "environments": list(loaded.environments), "spec_hash": loaded.spec_hash, "counts": counts,
                      "flows": flows, "warnings": [w.to_dict() for w in warnings],
                      "summary": resolved_summary(loaded), "resolved": resolved_document(loaded)})


def _count(base, parts: tuple[str, ...], pattern: str) -> int:
    folder = base.joinpath(*parts)
    return sum(1 for p in folder.glob(pattern) if not p.name.startswith("_")) if folder.is_dir() else 0


def spec_schema(ctx: typer.Context) -> None:
    """Print the JSON Schema of funnel.yaml (for editors: completion and checks)."""
    from funnelops.spec.schema import project_json_schema
    import json

    typer.echo(json.dumps(project_json_schema(), indent=2, ensure_ascii=False))


def spec_reference(ctx: typer.Context) -> None:
    """Print the project file reference (Markdown) rendered from the JSON Schema: every field with its type,
    default, description and an example (the repository keeps it as docs/project-reference.md).
    With --json: {"format": "markdown", "text": ...}."""
    from funnelops.spec.reference import reference_markdown

    if get_ctx(ctx).as_json:
        get_ctx(ctx).console.emit({"format": "markdown", "text": reference_markdown()})
        return
    typer.echo(reference_markdown(), nl=False)


def plan(
    ctx: typer.Context,
    stage: str | None = typer.Option(
        None, "--stage", "-s",
        help=STAGE_HELP + ". Default: the last stage the lifecycle completed (IaC on a new project), "
             "so a plan after the lifecycle never proposes to roll the templates' arguments back."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
    detailed_exitcode: bool = typer.Option(
        False, "--detailed-exitcode",
        help="Exit 0 when there are no changes, 2 when there are, 1 on any error (invalid project and usage "
             "errors included), as Terraform."),
    show_unchanged: bool = typer.Option(False, "--show-unchanged/--hide-unchanged",
                                        help="Also list unchanged resources (the summary line counts them anyway)."),
    out: Path | None = typer.Option(
        None, "-out", "--out", metavar="FILE",
        help="Save the plan to FILE (JSON: format_version, backend, project, stage, spec_hash, created_at, changes "
             "[{address, action, fields, after, observed_sha256}], observed_fingerprint, checksum) for "
             "`funnelops apply FILE`, which applies exactly it or refuses if the project or the platform moved."),
    refresh: str = typer.Option(
        "true", "--refresh", metavar="true|false",
        help="--refresh=false (gcp): observe nothing -- no credentials, no network -- and list every resource "
             "of the stage (default: Workflow, the whole project) with the full REST request apply would send "
             "to create it, the `instantiate` body of each workflow and each scheduler's decoded HTTP body. "
             "JSON shape (--json): {format_version, refreshed: false, backend, project, region, stage, "
             "spec_hash, counts: {kind: n}, resources: [{address, kind, name, depends_on, "
             "request: {method, url, body}, instantiate?: {method, url, body, per_run}, http_body?, "
             "then?: {method, url, body} (a paused scheduler's :pause)}]}."),
) -> None:
    """Show what create-infra would change for a stage, drift included, without changing anything.

    Unchanged resources are counted in the summary line and listed with --show-unchanged. With -out FILE
    the plan is saved for `funnelops apply FILE`. With --refresh=false (gcp only), show instead the
    requests apply would send, observed nothing.

    Exit codes: 0 ok, 1 failure, 2 bad usage or invalid project. With --detailed-exitcode: 0 no changes,
    2 changes, 1 any error.
    """
    from funnelops.plan.apply import preflight
    from funnelops.plan.diff import build_plan
    from funnelops.plan.render import plan_lines
    from funnelops.resources import normalize_stage

    app = get_ctx(ctx)
    app.set_json(as_json)
    loaded = app.project
    if not _truth(refresh):
        if out is not None:
            from funnelops.errors import UsageError

            raise UsageError("-out saves an observed plan; --refresh=false observes nothing",
                             "drop --refresh=false to save a plan for `funnelops apply FILE`")
        if detailed_exitcode:
            from funnelops.errors import UsageError

            raise UsageError("--detailed-exitcode needs an observed plan; --refresh=false observes nothing",
                             "drop one of the two options")
        return _offline_plan(app, stage)
    if stage is None and not app.dry_run:
        from funnelops.lifecycle.order import current_stage

        stage = current_stage(app.backend.ledger)
    stage_key = normalize_stage(stage or "iac")
    if app.dry_run:
        app.console.print(f"dry run: would observe the {app.backend_kind} backend and plan stage {stage_key}")
        app.console.emit({"dry_run": True, "command": "plan", "stage": stage_key,
                          **({"out": str(out)} if out is not None else {})})
        return
    the_plan = build_plan(loaded, app.backend, stage_key)
    preflight(the_plan, app.backend)  # a view that would not bind is an error here, not midway through apply
    lines = plan_lines(the_plan, show_unchanged)
    if loaded.env:
        lines[0] += f", environment [bold]{esc(loaded.env)}[/]"
    if not the_plan.has_changes:
        lines.insert(-1, "No changes: the platform matches the project for this stage.")
    app.console.print("\n".join(lines))  # one print: 5x faster than per line
    doc = {"env": loaded.env, **the_plan.to_dict()}
    if out is not None:
        from funnelops.plan.saved import saved_plan_document, write_saved_plan

        write_saved_plan(out, saved_plan_document(the_plan, loaded.spec.project.id, env=loaded.env))
        app.console.print(f"Saved the plan to {esc(out)}: apply exactly it with `funnelops apply {esc(out)}`.")
        doc["out"] = str(out)
    app.console.emit(doc)
    if detailed_exitcode and the_plan.has_changes:
        from funnelops.cli.context import PlanHasChanges

        raise PlanHasChanges()


def _truth(value: str) -> bool:
    """`--refresh=VALUE` as Terraform spells it (true/false; yes/no and 1/0 too)."""
    from funnelops.errors import UsageError

    v = value.strip().lower()
    if v in ("true", "yes", "1"):
        return True
    if v in ("false", "no", "0"):
        return False
    raise UsageError(f"--refresh must be true or false, not {value!r}", "e.g. `plan --refresh=false --json`")


def _offline_plan(app, stage: str | None) -> None:
    """`plan --refresh=false`: the requests apply would send, built without a network call."""
    from funnelops.errors import UsageError
    from funnelops.plan.offline import offline_lines, offline_plan
    from funnelops.resources import normalize_stage

    if app.backend_kind != "gcp":
        raise UsageError("plan --refresh=false shows the REST requests the gcp backend would send; the local "
                         "backend sends none", "run `funnelops --backend gcp plan --refresh=false --json`")
    stage_key = normalize_stage(stage or "workflow")  # offline, the ledger's stage is unknown: the whole project
    if app.dry_run:
        app.console.print(f"dry run: would render the requests of stage {stage_key} on the gcp backend")
        app.console.emit({"dry_run": True, "command": "plan", "stage": stage_key, "refresh": False})
        return
    doc = offline_plan(app.project, app.backend, stage_key)
    lines = offline_lines(doc)
    if app.project.env:
        doc["env"] = app.project.env
        lines[0] += f", environment [bold]{esc(app.project.env)}[/]"
    app.console.print("\n".join(lines))
    app.console.emit(doc)


def create_infra(
    ctx: typer.Context,
    stage: str = typer.Option(..., "--stage", "-s", help=STAGE_HELP),
    allow_data_loss: bool = typer.Option(False, "--allow-data-loss",
                                         help="Allow replacing or deleting tables that hold rows."),
    allow_rollback: bool = typer.Option(False, "--allow-rollback", help=ROLLBACK_HELP),
) -> None:
    """GCP create infra: apply the plan for a stage, in dependency order, and converge.

    On a lifecycle that already completed a later stage, an apply that would move the workflow
    templates back to this stage's arguments is refused (exit 2) unless --allow-rollback."""
    from funnelops.cli.reporter import ConsoleReporter
    from funnelops.lifecycle.infra import create_infra as do_create
    from funnelops.plan.render import summary_line
    from funnelops.resources import STAGE_TITLES, normalize_stage
    from funnelops.backends.types import default_actor

    app = get_ctx(ctx)
    stage_key = normalize_stage(stage)
    loaded = app.project
    if app.dry_run:
        app.console.print(f"dry run: would plan and apply stage {STAGE_TITLES[stage_key]} on the "
                          f"{app.backend_kind} backend for project {loaded.spec.project.id}")
        app.console.emit({"dry_run": True, "command": "job create-infra", "stage": stage_key,
                          "backend": app.backend_kind, "project": loaded.spec.project.id})
        return
    app.console.print(f"[bold]GCP create infra[/] — stage {STAGE_TITLES[stage_key]} on {app.backend_kind}")
    the_plan, result = do_create(loaded, app.backend, stage_key, actor=default_actor(),
                                 allow_data_loss=allow_data_loss, allow_rollback=allow_rollback,
                                 reporter=ConsoleReporter(app, show_resources=True))
    app.console.print(summary_line(the_plan).replace("Plan:", "Planned:"),
                      f"[bold green]Applied[/] {len(result.done)} change(s) in {result.seconds:.2f}s.")
    app.console.emit({"stage": stage_key, "plan": the_plan.to_dict(), "apply": result.to_dict()})


def destroy(
    ctx: typer.Context,
    yes: bool = typer.Option(False, "--yes", "-y", help="Really delete everything funnelops manages."),
) -> None:
    """Delete every managed resource except those under deletion protection."""
    from funnelops.cli.reporter import ConsoleReporter
    from funnelops.errors import UsageError
    from funnelops.lifecycle.infra import destroy as do_destroy, destroy_plan
    from funnelops.plan.render import plan_lines
    from funnelops.backends.types import default_actor

    app = get_ctx(ctx)
    loaded = app.project
    if app.dry_run:
        app.console.print("dry run: would delete every managed resource not under deletion protection")
        app.console.emit({"dry_run": True, "command": "destroy"})
        return
    if not yes:
        app.console.print("\n".join(plan_lines(destroy_plan(loaded, app.backend), show_unchanged=True)))
        raise UsageError("destroy needs --yes", "review the list above, then run `funnelops destroy --yes`")
    the_plan, result = do_destroy(loaded, app.backend, actor=default_actor(),
                                  reporter=ConsoleReporter(app, show_resources=True))
    kept = [c.address for c in the_plan.changes if c.action == "unchanged"]
    app.console.print(f"[bold]Destroyed[/] {len(result.done)} resource(s); kept {len(kept)} under deletion protection.")
    app.console.emit({"destroyed": [c.address for c, _ in result.done], "kept": kept})
