"""Server-rendered pages (helper: pages)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route


async def index(request: Request) -> HTMLResponse:
    return HTMLResponse("<!doctype html><title>funnelops</title><h1>funnelops</h1>")


def routes() -> list[Route]:
    return [Route("/", index)]
