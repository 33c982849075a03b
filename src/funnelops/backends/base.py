"""The narrow interfaces a backend implements.

The core (plan, lifecycle, runs) talks only to these Protocols; `backends/local` and
`backends/gcp` implement them. Resource configs cross this boundary in one backend-neutral
shape (built by :mod:`funnelops.resources`): a backend translates it to its own API on the way
out and back to the same shape when it observes, so the diff is the same code on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, runtime_checkable

from funnelops.resources import Resource

# The kinds, in the order a plan creates them (deletes go in reverse).
KINDS = ("bucket", "dataset", "table", "external_table", "view", "workflow_template", "scheduler")


@dataclass
class Observed:
    """What a backend found for one resource: its config in the neutral shape, plus facts."""

    config: dict[str, Any]
    rows: int | None = None  # tables: rows held (guards data loss); None if unknown/not a table
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ResourceHandler(Protocol):
    """Create, read, update and delete one kind of resource."""

    kind: str

    def observe(self, names: Iterable[str]) -> dict[str, Observed]:
        """Every resource of this kind that exists among `names` (list calls, not one GET each)."""

    def create(self, res: Resource) -> None: ...

    def update(self, res: Resource, observed: Observed, changed: list[str]) -> None:
        """Change an existing resource in place (only `changed` fields differ)."""

    def delete(self, name: str, observed: Observed) -> None: ...


@runtime_checkable
class Storage(Protocol):
    """Objects in buckets: what external tables wait for and what artifacts live in."""

    def has_objects(self, bucket: str, prefix: str, suffix: str = "") -> bool: ...

    def list_objects(self, bucket: str, prefix: str) -> list[str]: ...


@runtime_checkable
class Backend(Protocol):
    """One deployment target: resource handlers plus storage."""

    name: str
    storage: Storage

    def handler(self, kind: str) -> ResourceHandler: ...

    def close(self) -> None: ...
