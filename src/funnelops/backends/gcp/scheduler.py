"""Cloud Scheduler jobs that instantiate workflow templates.

The job body is :func:`funnelops.backends.shapes.scheduler_to_cloud` (the same body the local
backend stores), with the target URI's host following ``FUNNELOPS_DATAPROC_ENDPOINT`` when it is
set. Updates are PATCHes whose ``updateMask`` names only the fields that changed; the paused
state is set at creation and afterwards only by :meth:`GcpRuntime.set_paused` (``:pause`` /
``:resume``), never reverted by an apply.
"""

from __future__ import annotations

import json
import re
from typing import Any
from collections.abc import Iterable

from funnelops.backends.base import Observed
from funnelops.backends.gcp import retry
from funnelops.backends.gcp.clients import Clients
from funnelops.backends.gcp.dataproc import to_dict
from funnelops.backends.shapes import scheduler_from_cloud, scheduler_to_cloud
from funnelops.resources import Resource

_OURS = re.compile(r"/workflowTemplates/[^/:]+:instantiate$")
# neutral field -> the Job field (updateMask path) that carries it
MASK = {"display_name": "description", "description": "description", "schedule": "schedule",
        "time_zone": "time_zone", "workflow": "http_target", "retry": "retry_config",
        "attempt_deadline": "attempt_deadline"}


class SchedulerHandler:
    kind = "scheduler"

    def __init__(self, clients: Clients, service_account: str | None) -> None:
        self.clients = clients
        self.service_account = service_account

    @property
    def api(self) -> Any:
        return self.clients.scheduler

    def list_jobs(self) -> list[dict[str, Any]]:
        def fetch() -> list[dict[str, Any]]:
            pager = self.api.list_jobs(request={"parent": self.clients.location_path, "page_size": 500}, retry=None)
            return [to_dict(j) for j in pager]

        return retry.call(fetch, f"scheduler jobs in {self.clients.location_path}",
                          permission="cloudscheduler.jobs.list")

    def mark_fired(self, scheduler_id: str, when: str) -> None:
        """Cloud Scheduler records each attempt itself (lastAttemptTime): nothing to write."""

    def observe(self, names: Iterable[str]) -> dict[str, Observed]:
        wanted = set(names)
        out = {}
        for job in self.list_jobs():
            sid = job["name"].rsplit("/", 1)[-1]
            ours = _OURS.search((job.get("httpTarget") or {}).get("uri", "")) and \
                job.get("description", "").startswith("[")
            if sid in wanted or ours:
                out[sid] = Observed(scheduler_from_cloud(job), extra={"state": job.get("state")})
        return out

    def body(self, res: Resource) -> dict[str, Any]:
        body = scheduler_to_cloud(self.clients.job_name(res.name), res.config, self.clients.project,
                                  self.clients.region, self.service_account)
        body["httpTarget"]["uri"] = self.clients.instantiate_uri(res.config["workflow"])
        return body

    @staticmethod
    def _message(body: dict[str, Any]) -> Any:
        from google.cloud import scheduler_v1

        return scheduler_v1.Job.from_json(json.dumps(body))

    def create(self, res: Resource) -> None:
        from google.api_core import exceptions

        what = f"scheduler {res.name}"
        try:
            retry.call(lambda: self.api.create_job(parent=self.clients.location_path,
                                                   job=self._message(self.body(res)), retry=None),
                       what, permission="cloudscheduler.jobs.create", raw=True)
        except exceptions.Conflict:
            return self.update(res, None, list(MASK))
        except Exception as exc:
            raise retry.describe(exc, what, "cloudscheduler.jobs.create") from None
        if res.config.get("paused"):
            self.set_paused(res.name, True)

    def update(self, res: Resource, observed: Observed | None, changed: list[str]) -> None:
        paths = sorted({MASK[f] for f in changed if f in MASK})
        if not paths:
            return
        from google.protobuf import field_mask_pb2

        retry.call(lambda: self.api.update_job(job=self._message(self.body(res)),
                                               update_mask=field_mask_pb2.FieldMask(paths=paths), retry=None),
                   f"scheduler {res.name}", permission="cloudscheduler.jobs.update")

    def delete(self, name: str, observed: Observed) -> None:
        from google.api_core import exceptions

        what = f"scheduler {name}"
        try:
            retry.call(lambda: self.api.delete_job(name=self.clients.job_name(name), retry=None), what,
                       permission="cloudscheduler.jobs.delete", raw=True)
        except exceptions.NotFound:
            pass
        except Exception as exc:
            raise retry.describe(exc, what, "cloudscheduler.jobs.delete") from None

    def set_paused(self, sid: str, paused: bool) -> dict[str, Any]:
        """Pause or resume; already in that state is fine (the API answers 400 FAILED_PRECONDITION)."""
        from google.api_core import exceptions

        name = self.clients.job_name(sid)
        verb = self.api.pause_job if paused else self.api.resume_job
        what = f"scheduler {sid}"
        try:
            return to_dict(retry.call(lambda: verb(name=name, retry=None), what,
                                      permission="cloudscheduler.jobs." + ("pause" if paused else "enable"),
                                      raw=True))
        except (exceptions.BadRequest, exceptions.FailedPrecondition) as exc:
            if retry.api_status(exc) == "FAILED_PRECONDITION":
                return to_dict(retry.call(lambda: self.api.get_job(name=name, retry=None), what))
            raise retry.describe(exc, what) from None
        except Exception as exc:
            raise retry.describe(exc, what, "cloudscheduler.jobs.update") from None
