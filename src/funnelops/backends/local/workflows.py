"""Workflow templates and schedulers on the local backend, stored in the ledger.

They are stored in the shapes Dataproc and Cloud Scheduler take (see `backends/shapes.py`), with
the same server-side rules: a template has a `version` bumped on every update and an update
names the version it read (read-modify-write), so what works here works on gcp.
"""

from __future__ import annotations

import json
from typing import Any
from collections.abc import Iterable

from funnelops.backends.base import Observed
from funnelops.backends.shapes import (scheduler_from_cloud, scheduler_to_cloud, template_from_dataproc,
                                       template_to_dataproc)
from funnelops.errors import BackendError
from funnelops.resources import Resource
from funnelops.backends.local.ledger_db import LedgerDB, now_iso

MODULE_PREFIX = "module:"


def main_uri(main: str) -> str:
    return MODULE_PREFIX + main


def main_name(uri: str) -> str:
    return uri[len(MODULE_PREFIX):] if uri.startswith(MODULE_PREFIX) else uri


class TemplateStore:
    """Dataproc-shaped workflow templates in the ledger."""

    def __init__(self, db: LedgerDB, project: str, region: str) -> None:
        self.db = db
        self.project = project
        self.region = region

    def resource_name(self, name: str) -> str:
        return f"projects/{self.project}/regions/{self.region}/workflowTemplates/{name}"

    def all(self) -> dict[str, dict[str, Any]]:
        if not self.db.exists():
            return {}
        with self.db.read() as con:
            rows = con.execute("SELECT name, body, version, create_time, update_time FROM templates").fetchall()
        out = {}
        for r in rows:
            body = json.loads(r["body"])
            body.update(name=self.resource_name(r["name"]), version=r["version"],
                        createTime=r["create_time"], updateTime=r["update_time"])
            out[r["name"]] = body
        return out

    def get(self, name: str) -> dict[str, Any] | None:
        return self.all().get(name)

    def create(self, name: str, body: dict[str, Any]) -> None:
        ts = now_iso()
        with self.db.write() as con:
            if con.execute("SELECT 1 FROM templates WHERE name = ?", (name,)).fetchone():
                raise BackendError(f"workflow template '{name}' already exists")
            con.execute("INSERT INTO templates VALUES (?, ?, 1, ?, ?)", (name, json.dumps(body), ts, ts))

    def update(self, name: str, body: dict[str, Any], version: int) -> int:
        """Replace the template if it is still at `version`; returns the new version."""
        with self.db.write() as con:
            row = con.execute("SELECT version FROM templates WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise BackendError(f"workflow template '{name}' not found")
            if row["version"] != version:
                raise BackendError(f"workflow template '{name}' changed since it was read "
                                   f"(version {version}, now {row['version']})", "run the command again")
            con.execute("UPDATE templates SET body = ?, version = version + 1, update_time = ? WHERE name = ?",
                        (json.dumps(body), now_iso(), name))
            return version + 1

    def delete(self, name: str) -> None:
        with self.db.write() as con:
            con.execute("DELETE FROM templates WHERE name = ?", (name,))


class TemplateHandler:
    kind = "workflow_template"

    def __init__(self, store: TemplateStore) -> None:
        self.store = store

    def observe(self, names: Iterable[str]) -> dict[str, Observed]:
        return {n: Observed(template_from_dataproc(b, main_name), extra={"version": b["version"]})
                for n, b in self.store.all().items()}

    def body(self, res: Resource) -> dict[str, Any]:
        return template_to_dataproc(res.name, res.config, main_uri)

    def create(self, res: Resource) -> None:
        self.store.create(res.name, self.body(res))

    def update(self, res: Resource, observed: Observed, changed: list[str]) -> None:
        for _ in range(3):  # read-modify-write, retried if someone updated in between
            current = self.store.get(res.name)
            if current is None:
                return self.create(res)
            try:
                self.store.update(res.name, self.body(res), current["version"])
                return
            except BackendError:
                continue
        raise BackendError(f"workflow template '{res.name}' kept changing while updating it", "retry")

    def delete(self, name: str, observed: Observed) -> None:
        self.store.delete(name)


class SchedulerStore:
    """Cloud-Scheduler-shaped jobs in the ledger; `state` is ENABLED or PAUSED."""

    def __init__(self, db: LedgerDB, project: str, region: str, service_account: str | None) -> None:
        self.db = db
        self.project = project
        self.region = region
        self.service_account = service_account

    def job_name(self, sid: str) -> str:
        return f"projects/{self.project}/locations/{self.region}/jobs/{sid}"

    def all(self) -> dict[str, dict[str, Any]]:
        if not self.db.exists():
            return {}
        with self.db.read() as con:
            rows = con.execute("SELECT id, body, state, last_fire FROM schedulers").fetchall()
        out = {}
        for r in rows:
            body = json.loads(r["body"])
            body["state"] = r["state"]
            if r["last_fire"]:
                body["lastAttemptTime"] = r["last_fire"]
            out[r["id"]] = body
        return out

    def put(self, sid: str, body: dict[str, Any], state: str | None = None) -> None:
        ts = now_iso()
        with self.db.write() as con:
            row = con.execute("SELECT state FROM schedulers WHERE id = ?", (sid,)).fetchone()
            if row is None:
                con.execute("INSERT INTO schedulers (id, body, state, create_time, update_time) VALUES (?, ?, ?, ?, ?)",
                            (sid, json.dumps(body), state or "ENABLED", ts, ts))
            else:
                con.execute("UPDATE schedulers SET body = ?, state = ?, update_time = ? WHERE id = ?",
                            (json.dumps(body), state or row["state"], ts, sid))

    def set_state(self, sid: str, state: str) -> None:
        with self.db.write() as con:
            cur = con.execute("UPDATE schedulers SET state = ?, update_time = ? WHERE id = ?", (state, now_iso(), sid))
            if cur.rowcount == 0:
                raise BackendError(f"scheduler '{sid}' does not exist", "run `funnelops job create-infra` first")

    def mark_fired(self, scheduler_id: str, when: str) -> None:
        with self.db.write() as con:
            con.execute("UPDATE schedulers SET last_fire = ? WHERE id = ?", (when, scheduler_id))

    def delete(self, sid: str) -> None:
        with self.db.write() as con:
            con.execute("DELETE FROM schedulers WHERE id = ?", (sid,))


class SchedulerHandler:
    kind = "scheduler"

    def __init__(self, store: SchedulerStore) -> None:
        self.store = store

    def observe(self, names: Iterable[str]) -> dict[str, Observed]:
        return {sid: Observed(scheduler_from_cloud(b)) for sid, b in self.store.all().items()}

    def _body(self, res: Resource) -> dict[str, Any]:
        return scheduler_to_cloud(self.store.job_name(res.name), res.config, self.store.project,
                                  self.store.region, self.store.service_account)

    def create(self, res: Resource) -> None:
        self.store.put(res.name, self._body(res), "PAUSED" if res.config.get("paused") else "ENABLED")

    def update(self, res: Resource, observed: Observed, changed: list[str]) -> None:
        self.store.put(res.name, self._body(res))  # keeps the paused/enabled state as operated

    def delete(self, name: str, observed: Observed) -> None:
        self.store.delete(name)
