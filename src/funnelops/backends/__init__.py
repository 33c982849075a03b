"""Backends: where a project is deployed. `open_backend` picks one; gcp is imported lazily."""

from __future__ import annotations

from pathlib import Path


def open_backend(name: str, loaded, home: Path):
    """The backend `name` ('local' or 'gcp') for a loaded project."""
    from funnelops.errors import UsageError

    if name == "local":
        from funnelops.backends.local import LocalBackend

        return LocalBackend.for_project(loaded, home)
    if name == "gcp":
        from funnelops.backends.gcp import GcpBackend  # raises MissingExtra without the gcp extra

        return GcpBackend.for_project(loaded, home)
    raise UsageError(f"unknown backend '{name}'", "use --backend local or --backend gcp")
