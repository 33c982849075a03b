"""`funnelops ui`: serve the web dashboard for this project and home (helper: api+security polishes)."""

from __future__ import annotations

import typer

from funnelops.cli.context import get_ctx


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)


def ui(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="The address to bind (beyond localhost a token is required)."),
    port: int = typer.Option(8400, "--port", help="The TCP port."),
    read_only: bool = typer.Option(False, "--read-only", help="Show everything, change nothing (shared screens)."),
) -> None:
    """Serve the web dashboard: lifecycle, runs, schedulers, lineage, plan, and a guarded Force button."""
    import uvicorn

    from funnelops.ui.app import create_app
    from funnelops.ui.dashboard import UiSettings

    app = get_ctx(ctx)
    settings = UiSettings(project_path=app.project_path, home=app.home, backend_name=app.backend_name,
                          env=app.env, host=host, port=port, read_only=read_only)
    app.project  # a missing or invalid project fails here, before the server starts
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
