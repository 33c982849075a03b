"""Backends: where a project is deployed. `open_backend` picks one; gcp is imported lazily."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from funnelops.backends.base import Backend


def open_backend(name: str, loaded: Any, home: Path, *, reinit: bool = False) -> "Backend":
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
