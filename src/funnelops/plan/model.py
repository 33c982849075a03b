"""A plan is immutable data: built by `diff`, shown by `render`, carried out by `apply`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from funnelops.backends.base import Observed
from funnelops.resources import Resource

ACTIONS = ("create", "update", "replace", "delete", "unchanged", "waiting")
MUTATING = ("create", "update", "replace", "delete")


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class Change:
    kind: str
    name: str
    action: str
    resource: Resource | None = None  # desired (None for delete)
    observed: Observed | None = None  # current (None for create/waiting)
    fields: tuple[FieldChange, ...] = ()
    reason: str = ""
    data_loss: bool = False  # replace/delete of something that holds data
    protected: bool = False  # replace/delete of something under deletion protection

    @property
    def address(self) -> str:
        return f"{self.kind}.{self.name}"

    @property
    def depends_on(self) -> tuple[str, ...]:
        return self.resource.depends_on if self.resource else ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"address": self.address, "kind": self.kind, "name": self.name,
                               "action": self.action, "fields": [f.to_dict() for f in self.fields]}
        if self.reason:
            out["reason"] = self.reason
        if self.data_loss:
            out["data_loss"] = True
        if self.protected:
            out["deletion_protection"] = True
        return out


@dataclass(frozen=True)
class Plan:
    stage: str
    backend: str
    changes: tuple[Change, ...] = field(default_factory=tuple)
    spec_hash: str = ""

    def summary(self) -> dict[str, int]:
        counts = {a: 0 for a in ACTIONS}
        for c in self.changes:
            counts[c.action] += 1
        return counts

    @property
    def has_changes(self) -> bool:
        return any(c.action in MUTATING for c in self.changes)

    def mutating(self) -> list[Change]:
        return [c for c in self.changes if c.action in MUTATING]

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "backend": self.backend, "spec_hash": self.spec_hash,
                "summary": self.summary(), "changes": [c.to_dict() for c in self.changes]}
