"""`funnelops ui`: serve the web dashboard for this project and home."""

from __future__ import annotations

import errno
import os
import secrets
import socket
import sys
from typing import Any

import typer

from funnelops.cli.context import AppContext, esc, get_ctx
from funnelops.errors import UsageError

MIN_TOKEN = 16
HELP = """Serve the web dashboard: lifecycle, runs (live), charts, schedulers, lineage, plan, and a
Force button that runs `pipeline workflow`'s code under the same lease (refused, naming the run,
while the workflow runs).

\b
Access: bound to localhost (the default) anyone on this machine may use it, no token. Bound to
another address (--host 0.0.0.0) every request needs a token: --token, else FUNNELOPS_UI_TOKEN, else
one is generated and printed at start in the URL to open (/login?token=...). Changes (Force, pause,
resume) also need the page's CSRF token and an Origin of the dashboard itself. --read-only refuses
every change (shared screens). The JSON API is under /api/ (docs/ui.md).

\b
Prints the URL to open, then serves until Ctrl-C (exit 0). A busy port is exit 2; --port 0 picks a
free one. With --json: one JSON line {event: "serving", url, ...} when ready (--dry-run: one
document, nothing served).
"""


def register(app: typer.Typer) -> None:
    app.command("ui", help=HELP)(ui)


def ui(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="The address to bind: 127.0.0.1, localhost or ::1 need no "
                             "token; any other (0.0.0.0, a LAN address) requires one."),
    port: int = typer.Option(8400, "--port", min=0, max=65535, help="The TCP port (0: any free port, printed)."),
    read_only: bool = typer.Option(False, "--read-only", help="Show everything, change nothing: Force, pause and "
                                   "resume are refused (403) and their buttons hidden."),
    token: str | None = typer.Option(None, "--token", envvar="FUNNELOPS_UI_TOKEN", show_default=False,
                                     help=f"The access token (at least {MIN_TOKEN} characters); required beyond "
                                          "localhost, generated and printed when not given. Given on localhost, "
                                          "it is required there too."),
) -> None:
    from funnelops.ui.dashboard import UiSettings
    from funnelops.ui.security import is_local_bind

    app = get_ctx(ctx)
    _ = app.project  # a missing or invalid project fails here (exit 2), before anything is bound
    backend = app.backend_kind
    if token is not None and len(token) < MIN_TOKEN:
        raise UsageError(f"--token is too short ({len(token)} characters; at least {MIN_TOKEN})",
                         "use a long random one, or leave it out and one is generated")
    local = is_local_bind(host)
    if token is None and not local:
        token = secrets.token_urlsafe(24)
    sock = _bind(host, port)
    try:
        port = sock.getsockname()[1]
        settings = UiSettings(project_path=app.project_path, home=app.home, backend_name=app.backend_name,
                              env=app.env, host=host, port=port, read_only=read_only, token=token)
        info = _serving_info(app, settings, backend)
        if app.dry_run:
            app.console.print(f"dry run: would serve the dashboard at {esc(info['url_base'])} "
                              f"({'read-only' if read_only else 'read-write'}, "
                              f"{'token required' if token else 'no token: localhost'})")
            app.console.emit({"dry_run": True, "command": "ui", **{k: v for k, v in info.items() if k != "url"}})
            return
        from funnelops.ui.dashboard import Dashboard

        board = Dashboard(settings)
        _ = board.backend  # a damaged home fails here, with the CLI's message, not as a page's 500
        _announce(app, info, token)
        _serve(settings, board, sock)
    finally:
        sock.close()
    app.console.print("dashboard stopped")


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here (not by uvicorn) so a busy port is a clear exit 2 before
    anything starts, and `--port 0` learns its port before the URL is printed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: not an address of this machine ({exc.strerror})",
                         "use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface, token required)") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is already in use (another `funnelops ui`, or another server)",
                             f"pick another port: funnelops ui --port {port + 1 if port < 65535 else 8401} "
                             "(or --port 0 for any free one)") from exc
        if exc.errno == errno.EACCES:
            raise UsageError(f"port {port} on {host}: permission denied (ports below 1024 need privileges)",
                             "use a port from 1024 up, e.g. --port 8400") from exc
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}", "check --host and --port") from exc
    sock.setblocking(False)
    return sock


def _serving_info(app: AppContext, settings: Any, backend: str) -> dict[str, Any]:
    shown = settings.host if settings.host not in ("0.0.0.0", "::") else socket.gethostname()
    shown = f"[{shown}]" if ":" in shown else shown
    base = f"http://{shown}:{settings.port}"
    url = f"{base}/login?token={settings.token}" if settings.token else f"{base}/"
    return {"url": url, "url_base": f"{base}/", "host": settings.host, "port": settings.port,
            "project_file": str(app.project_path.absolute()), "home": str(app.home), "backend": backend,
            "env": app.env, "read_only": settings.read_only, "token_required": settings.token is not None}


def _announce(app: AppContext, info: dict[str, Any], token: str | None) -> None:
    """What the operator needs: the URL to open (with the token when one is needed), what is served."""
    c = app.console
    c.print(f"[bold]funnelops dashboard[/]: open {esc(info['url'])}",
            f"  project:   {esc(info['project_file'])}" + (f" (environment {esc(info['env'])})" if info["env"] else ""),
            f"  home:      {esc(info['home'])}",
            f"  backend:   {esc(info['backend'])}",
            f"  read-only: {'yes (Force, pause and resume are refused)' if info['read_only'] else 'no'}",
            "  access:    " + ("token required (in the URL above; or `Authorization: Bearer TOKEN`)" if token
                               else "this machine only, no token"),
            "Ctrl-C to stop")
    if app.as_json:
        import json

        sys.stdout.write(json.dumps({"event": "serving", **info}, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    sys.stdout.flush()


def _serve(settings: Any, board: Any, sock: socket.socket) -> None:
    """Serve until Ctrl-C or SIGTERM; both are a normal stop (exit 0, no traceback)."""
    import uvicorn

    from funnelops.ui.app import create_app

    config = uvicorn.Config(create_app(settings, board), log_level=os.environ.get("FUNNELOPS_UI_LOG", "warning"),
                            access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it caught, once it has shut down cleanly
        pass
