"""The JSON API under /api/: the CLI's --json documents, same shapes (helper: api+security)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def status(request: Request) -> JSONResponse:
    from starlette.concurrency import run_in_threadpool

    return JSONResponse(await run_in_threadpool(request.app.state.dashboard.status))


def routes() -> list[Route]:
    return [Route("/api/status", status)]
