"""Cloud Monitoring v3 alert policies (``projects.alertPolicies``): the log-based alert funnelops makes.

The schemas come from monitoring.v3.json like every other service; what they cannot say is
checked here, as Google's front end does (https://cloud.google.com/monitoring/alerts/log-based-alerts
and the AlertPolicy reference):

* a ``conditionMatchedLog`` condition must be the policy's only condition;
* a policy with one needs ``alertStrategy.notificationRateLimit.period`` ("Required for
  log-based alerting policies");
* ``notificationChannels`` are full names ``projects/P/notificationChannels/ID``;
* ``conditions`` is not empty, and ``updateMask`` names fields of the AlertPolicy.

Server-side fields are filled as Google fills them: ``name`` (a numeric id), each condition's
``name``, ``creationRecord`` / ``mutationRecord``, ``combiner`` and ``enabled`` defaults.
"""

from __future__ import annotations

import copy
import itertools
import re
from typing import TYPE_CHECKING, Any

from .common import Request, bad_request, not_found, now_rfc3339, page

if TYPE_CHECKING:
    from .server import GcpDouble

_CHANNEL = re.compile(r"^projects/[^/]+/notificationChannels/[^/]+$")
_MASKABLE = {"displayName", "documentation", "userLabels", "conditions", "combiner", "enabled",
             "notificationChannels", "alertStrategy", "severity"}
_SNAKE = {"display_name": "displayName", "user_labels": "userLabels", "notification_channels": "notificationChannels",
          "alert_strategy": "alertStrategy"}


class MonitoringService:
    def __init__(self, double: GcpDouble) -> None:
        self.double = double
        self._ids = itertools.count(1000001)
        self.reset()

    def reset(self) -> None:
        self._policies: dict[str, dict[str, Any]] = {}

    def handlers(self) -> dict[str, Any]:
        base = "monitoring.projects.alertPolicies"
        return {f"{base}.create": self._create, f"{base}.get": self._get, f"{base}.list": self._list,
                f"{base}.patch": self._patch, f"{base}.delete": self._delete}

    def policies(self) -> list[dict[str, Any]]:
        with self.double.lock:
            return [copy.deepcopy(p) for p in self._policies.values()]

    # -- rules -------------------------------------------------------------------------------
    @staticmethod
    def _check(policy: dict[str, Any]) -> None:
        conditions = policy.get("conditions") or []
        if not conditions:
            raise bad_request("Field alert_policy.conditions must contain at least one condition")
        logs = [c for c in conditions if c.get("conditionMatchedLog")]
        if logs and len(conditions) > 1:
            raise bad_request("An alerting policy with a log-match condition (conditionMatchedLog) may not have "
                              "other conditions")
        if logs and not ((policy.get("alertStrategy") or {}).get("notificationRateLimit") or {}).get("period"):
            raise bad_request("Field alert_policy.alert_strategy.notification_rate_limit is required for a "
                              "log-based alerting policy (conditionMatchedLog)")
        for c in logs:
            if not (c["conditionMatchedLog"].get("filter") or "").strip():
                raise bad_request("Field conditionMatchedLog.filter is required")
        for ch in policy.get("notificationChannels") or []:
            if not _CHANNEL.match(ch):
                raise bad_request(f"Invalid notification channel name {ch!r}: expected "
                                  "projects/[PROJECT_ID]/notificationChannels/[CHANNEL_ID]")

    def _finish(self, policy: dict[str, Any]) -> dict[str, Any]:
        policy.setdefault("combiner", "OR")
        policy.setdefault("enabled", True)
        for i, c in enumerate(policy.get("conditions") or []):
            c["name"] = c.get("name") or f"{policy['name']}/conditions/{9000 + i}"
        policy["mutationRecord"] = {"mutateTime": now_rfc3339(), "mutatedBy": "funnelops-double"}
        return policy

    def _policy(self, req: Request) -> dict[str, Any]:
        name = f"projects/{req.params['projectsId']}/alertPolicies/{req.params['alertPoliciesId']}"
        if name not in self._policies:
            raise not_found(f"alertPolicy {name}")
        return self._policies[name]

    # -- handlers ------------------------------------------------------------------------------
    def _create(self, req: Request) -> tuple[int, Any]:
        policy = copy.deepcopy(req.body or {})
        policy.pop("name", None)  # assigned by the service
        self._check(policy)
        policy["name"] = f"projects/{req.params['projectsId']}/alertPolicies/{next(self._ids)}"
        policy["creationRecord"] = {"mutateTime": now_rfc3339(), "mutatedBy": "funnelops-double"}
        self._policies[policy["name"]] = self._finish(policy)
        return 200, copy.deepcopy(policy)

    def _get(self, req: Request) -> tuple[int, Any]:
        return 200, copy.deepcopy(self._policy(req))

    def _list(self, req: Request) -> tuple[int, Any]:
        prefix = f"projects/{req.params['projectsId']}/alertPolicies/"
        items = [copy.deepcopy(p) for n, p in sorted(self._policies.items()) if n.startswith(prefix)]
        chunk, nxt = page(items, req.query, "pageSize", 1000)
        out: dict[str, Any] = {"alertPolicies": chunk} if chunk else {}
        if nxt:
            out["nextPageToken"] = nxt
        return 200, out

    def _patch(self, req: Request) -> tuple[int, Any]:
        current = self._policy(req)
        body = req.body or {}
        raw_mask = req.q("updateMask")
        fields = [f.strip() for f in raw_mask.split(",")] if raw_mask else list(body)
        fields = [_SNAKE.get(f, f) for f in fields if f]
        unknown = [f for f in fields if f not in _MASKABLE]
        if unknown:
            raise bad_request(f"Invalid update mask: unknown field(s) {unknown}")
        updated = copy.deepcopy(current)
        for f in fields:
            if f in body:
                updated[f] = copy.deepcopy(body[f])
            else:
                updated.pop(f, None)
        self._check(updated)
        self._policies[current["name"]] = self._finish(updated)
        return 200, copy.deepcopy(updated)

    def _delete(self, req: Request) -> tuple[int, Any]:
        policy = self._policy(req)
        del self._policies[policy["name"]]
        return 200, {}
