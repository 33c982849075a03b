"""The ``alert_policy`` kind on the local backend: not applicable.

A Cloud Monitoring alert watches Google's logs; locally the supervisor itself posts run ends to
the project's `notifications.channels`. `validate` says so as a note when a project asks for
`notifications.gcp_alert`; nothing is ever observed here, and nothing is planned
(`LocalBackend.owned_resources` is empty).
"""

from __future__ import annotations

from collections.abc import Iterable

from funnelops.backends.base import Observed
from funnelops.errors import BackendError
from funnelops.resources import Resource


class NoAlertPolicy:
    kind = "alert_policy"

    def observe(self, names: Iterable[str]) -> dict[str, Observed]:
        return {}

    def create(self, res: Resource) -> None:
        raise BackendError(f"the local backend has no Cloud Monitoring ({res.address})",
                           "the alert policy is made by the gcp backend only")

    def update(self, res: Resource, observed: Observed, changed: list[str]) -> None:
        self.create(res)

    def delete(self, name: str, observed: Observed) -> None:
        """Nothing to delete: nothing is ever observed."""
