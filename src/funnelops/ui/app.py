"""The ASGI application: API routes (`api.py`), pages (`pages.py`), static files, access checks
(`security.py`, in front of everything)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from funnelops.ui.dashboard import Dashboard, UiSettings
from funnelops.ui.security import AccessGuard, Signer

STATIC = Path(__file__).parent / "static"


def create_app(settings: UiSettings, dashboard: Dashboard | None = None, *, signer: Signer | None = None) -> Starlette:
    """The dashboard app for one project and home (tests pass their own Dashboard, and a Signer to
    forge or check session cookies). Bound beyond localhost without a token it refuses to exist."""
    from funnelops.backends.types import default_actor
    from funnelops.errors import UsageError
    from funnelops.ui import api, pages
    from funnelops.ui.security import is_local_bind

    if not is_local_bind(settings.host) and not settings.token:
        raise UsageError(f"bound to {settings.host} (beyond localhost) without a token",
                         "give one with --token or FUNNELOPS_UI_TOKEN, or let `funnelops ui` make one")

    board = dashboard or Dashboard(settings)
    routes = [*api.routes(), *pages.routes(), Mount("/static", StaticFiles(directory=STATIC), name="static")]

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        board.close()  # the ledger and warehouse connections, when the server stops

    guard = Middleware(AccessGuard, host=settings.host, token=settings.token, read_only=settings.read_only,
                       default_user=default_actor(), signer=signer)
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[guard])
    app.state.dashboard = board
    app.state.settings = settings
    return app
