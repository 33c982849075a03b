"""`funnelops init DIR`: start a project of your own (see funnelops.lifecycle.init_project)."""

from __future__ import annotations

from pathlib import Path

import typer

from funnelops.cli.context import esc, get_ctx


def register(app: typer.Typer) -> None:
    app.command("init")(init)


def init(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="The new project's folder (created if missing; must be empty)."),
    name: str | None = typer.Option(None, "--name", "-n",
                                    help="The project's name, from which every resource name is derived "
                                         "(buckets NAME-raw..., datasets NAME_trusted..., workflows NAME-daily...). "
                                         "Default: the folder's name."),
    force: bool = typer.Option(False, "--force", help="Write into a folder that is not empty (the template's "
                                                      "files overwrite same-named ones; other files stay)."),
) -> None:
    """Write a minimal, neutral project: buckets and a dataset per layer, a workflow and a scheduler per
    granularity (daily, monthly, yearly), one trusted flow over a CSV snapshot and one refined SQL, every
    section commented, and funnel.schema.json for editors. It validates as written; load your file with
    `funnelops data load` and run the lifecycle."""
    from funnelops.lifecycle.init_project import PROJECT_FILE, derive_names, init_project

    app = get_ctx(ctx)
    if app.dry_run:
        names = derive_names(name if name is not None else directory.expanduser().absolute().name)
        app.console.print(f"dry run: would write a new project `{esc(names.slug)}` into {esc(directory)}/{PROJECT_FILE}")
        app.console.emit({"dry_run": True, "command": "init", "dir": str(directory), "slug": names.slug})
        return
    result = init_project(directory, name, force)
    c = app.console
    c.print(f"[green]✓[/] wrote project `{esc(result.names.slug)}` into {esc(result.directory)}:")
    for rel in result.files:
        c.print(f"    {esc(rel)}")
    c.print("", "[bold]Next steps[/] (edit flows/trusted/leads.py and funnel.yaml for your data first; "
                "docs/flows.md explains flows):")
    for step in result.next_steps():
        c.print(f"  {esc(step)}")
    c.emit(result.to_dict())
