"""The ASGI application: API routes (`api.py`), pages (`pages.py`), static files, access checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from funnelops.ui.dashboard import Dashboard, UiSettings

STATIC = Path(__file__).parent / "static"


def create_app(settings: UiSettings, dashboard: Dashboard | None = None) -> Starlette:
    """The dashboard app for one project and home (tests pass their own Dashboard)."""
    from funnelops.ui import api, pages

    board = dashboard or Dashboard(settings)
    routes = [*api.routes(), *pages.routes(), Mount("/static", StaticFiles(directory=STATIC), name="static")]

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        board.close()  # the ledger and warehouse connections, when the server stops

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.dashboard = board
    app.state.settings = settings
    return app
