"""Dataproc workflow templates: one list to observe, updates in place with the current version.

An update is Dataproc's read-modify-write: read the template's current ``version``, send the
desired template (built from the project, never the fetched one echoed back: that carries
output-only ``createTime``/``updateTime``) with that version, and if someone updated it in
between (409 ABORTED, or 400 FAILED_PRECONDITION) read again and retry. A template is never deleted and re-created to change
its arguments: its name, run history and scheduler targets stay.
"""

from __future__ import annotations

import json
from typing import Any
from collections.abc import Callable, Iterable

from funnelops.backends.base import Observed
from funnelops.backends.gcp import retry
from funnelops.backends.gcp.artifacts import Artifacts
from funnelops.backends.gcp.clients import Clients
from funnelops.backends.shapes import GRANULARITY_LABEL, template_from_dataproc, template_to_dataproc
from funnelops.errors import BackendError
from funnelops.resources import Resource

MAX_RMW = 8
# How Dataproc may answer an update naming a stale version: 409 ABORTED (google.rpc's guideline for
# "restart the read-modify-write") or 400 FAILED_PRECONDITION (the REST client raises BadRequest
# for any 400, so the status word, not the exception class, decides).
STALE_STATUSES = ("ABORTED", "FAILED_PRECONDITION")


def to_dict(message: Any) -> dict[str, Any]:
    """A proto-plus message as its JSON mapping (camelCase, enums by name)."""
    from google.protobuf import json_format

    return json_format.MessageToDict(type(message).pb(message))


class TemplateHandler:
    kind = "workflow_template"

    def __init__(self, clients: Clients, artifacts: Artifacts, before_write: Callable[[], object]) -> None:
        self.clients = clients
        self.artifacts = artifacts
        self.before_write = before_write  # uploads artifacts (and makes their bucket) once

    @property
    def api(self) -> Any:
        return self.clients.dataproc

    def list_bodies(self) -> list[dict[str, Any]]:
        def fetch() -> list[dict[str, Any]]:
            pager = self.api.list_workflow_templates(
                request={"parent": self.clients.region_path, "page_size": 1000}, retry=None)
            return [to_dict(t) for t in pager]

        return retry.call(fetch, f"workflow templates in {self.clients.region_path}",
                          permission="dataproc.workflowTemplates.list")

    def observe(self, names: Iterable[str]) -> dict[str, Observed]:
        wanted = set(names)
        out = {}
        for body in self.list_bodies():
            tid = body.get("id") or body.get("name", "").rsplit("/", 1)[-1]
            if tid not in wanted and GRANULARITY_LABEL not in (body.get("labels") or {}):
                continue
            cfg = template_from_dataproc(body, self.artifacts.main_name)
            # The wheelhouse install is the backend's, not the project's: compared here, never diffed as config.
            cfg.pop("init_actions", None)
            stale = self._stale_init_actions(tid, body)
            if stale is not None:  # not in the neutral shape: a mismatch shows as a change to send
                cfg["initialization_actions"] = stale
            out[tid] = Observed(cfg,
                                extra={"version": int(body.get("version", 0)), "name": body.get("name")})
        return out

    def init_actions(self, workflow: str) -> list[dict[str, str]]:
        """What the workflow's cluster runs at creation: the wheelhouse install, unless its placement
        says ``bootstrap: none`` (a custom image that carries the dependencies)."""
        from funnelops.backends.gcp.artifacts import bootstraps

        loaded = self.artifacts.loaded
        wf = next((w for w in loaded.spec.workflows if w.name == workflow), None) if loaded is not None else None
        return self.artifacts.init_actions() if wf is None or bootstraps(wf) else []

    def _stale_init_actions(self, workflow: str, body: dict[str, Any]) -> list[str] | None:
        """The template's init action files when they are not what this project sends, else None."""
        got = body.get("placement", {}).get("managedCluster", {}).get("config", {}).get("initializationActions", [])
        want = self.init_actions(workflow)
        if [a.get("executableFile") for a in got] == [a["executableFile"] for a in want]:
            return None
        return [a.get("executableFile", "") for a in got]

    def body(self, res: Resource) -> dict[str, Any]:
        return template_to_dataproc(res.name, res.config, self.artifacts.main_uri, self.artifacts.python_file_uris,
                                    init_actions=self.init_actions(res.name))

    @staticmethod
    def _message(body: dict[str, Any]) -> Any:
        from google.cloud import dataproc_v1

        return dataproc_v1.WorkflowTemplate.from_json(json.dumps(body))

    def create(self, res: Resource) -> None:
        from google.api_core import exceptions

        self.before_write()
        what = f"workflow template {res.name}"
        try:
            retry.call(lambda: self.api.create_workflow_template(
                parent=self.clients.region_path, template=self._message(self.body(res)), retry=None),
                what, permission="dataproc.workflowTemplates.create", raw=True)
        except exceptions.Conflict:  # made meanwhile (or by an interrupted apply): converge it
            self.update(res, None, [])
        except Exception as exc:
            raise retry.describe(exc, what, "dataproc.workflowTemplates.create") from None

    def update(self, res: Resource, observed: Observed | None, changed: list[str]) -> None:
        from google.api_core import exceptions

        self.before_write()
        name = self.clients.template_name(res.name)
        what = f"workflow template {res.name}"
        for _ in range(MAX_RMW):
            current = retry.call(lambda: self.api.get_workflow_template(name=name, retry=None), what,
                                 permission="dataproc.workflowTemplates.get")
            body = self.body(res)
            body.update(name=name, version=int(current.version))
            try:
                retry.call(lambda: self.api.update_workflow_template(template=self._message(body), retry=None),  # noqa: B023 (called in this iteration)
                           what, permission="dataproc.workflowTemplates.update", raw=True)
                return
            except exceptions.GoogleAPICallError as exc:
                if retry.api_status(exc) in STALE_STATUSES or isinstance(exc, exceptions.Conflict):
                    continue  # someone updated it since we read it: read again
                raise retry.describe(exc, what, "dataproc.workflowTemplates.update") from None
            except Exception as exc:
                raise retry.describe(exc, what, "dataproc.workflowTemplates.update") from None
        raise BackendError(f"{what} kept changing while we updated it ({MAX_RMW} attempts)",
                           "something else is updating it in a loop; stop it and run again")

    def delete(self, name: str, observed: Observed) -> None:
        from google.api_core import exceptions

        what = f"workflow template {name}"
        try:
            retry.call(lambda: self.api.delete_workflow_template(name=self.clients.template_name(name), retry=None),
                       what, permission="dataproc.workflowTemplates.delete", raw=True)
        except exceptions.NotFound:
            pass
        except Exception as exc:
            raise retry.describe(exc, what, "dataproc.workflowTemplates.delete") from None
