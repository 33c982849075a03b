"""Backends: where a project is deployed. `open_backend` picks one; gcp is imported lazily."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from funnelops.backends.base import Backend
    from funnelops.flows.engines.base import FlowsRuntime

FLOWS_BACKENDS = ("local", "gcp")


def open_backend(name: str, loaded: Any, home: Path, *, reinit: bool = False) -> Backend:
    """The backend `name` ('local' or 'gcp') for a loaded project.

    `reinit` lets the local backend start a new ledger beside existing state (`--reinit`).
    """
    from funnelops.errors import UsageError

    if name == "local":
        from funnelops.backends.local import LocalBackend

        return LocalBackend.for_project(loaded, home, reinit=reinit)
    if name == "gcp":
        from funnelops.backends.gcp import GcpBackend  # raises MissingExtra without the gcp extra

        return GcpBackend.for_project(loaded, home)
    raise UsageError(f"unknown backend '{name}'", "use --backend local or --backend gcp")


def flows_runtime(name: str, *, home: Path, loaded: Any, ctx: Any = None) -> FlowsRuntime:
    """What the flows program runs on for backend `name`: its engines, clients and overlap guard.

    The flows package imports no backend; this registry builds the composition lazily, so the
    gcp one (Spark, google-cloud) is only imported where it runs. `ctx` (the run's
    RunContext) carries the gcp run tail (--lease, --workflow); the local backend ignores it.
    """
    from funnelops.errors import UsageError

    if name == "local":
        from funnelops.backends.local.flows_runtime import local_flows_runtime

        return local_flows_runtime(home, loaded)
    if name == "gcp":
        from funnelops.backends.gcp.flows_runtime import gcp_flows_runtime

        return gcp_flows_runtime(home, loaded, ctx)
    raise UsageError(f"unknown backend '{name}'", f"use one of: {', '.join(FLOWS_BACKENDS)}")
