"""The ledger (and the run records) in one GCS object, written with generation preconditions.

``gs://<artifacts>/funnelops/ledger.json`` holds the completed lifecycle stages, their history,
recent events and run records. Every write is read-modify-write guarded by
``if_generation_match`` (0 when the object does not exist yet), retried on 412 with a fresh
read, so two CLI invocations on two pipeline agents never lose each other's records. Lists are
capped so the object stays small (the newest entries are kept).
"""

from __future__ import annotations

import json
import random
import re
import time
from typing import Any
from collections.abc import Callable

from funnelops.backends.gcp import retry
from funnelops.backends.gcp.clients import Clients
from funnelops.errors import BackendError
from funnelops.backends.types import StageRecord, now_iso

LEDGER = "funnelops/ledger.json"
CLAIMS = "funnelops/"  # claim_once(key) -> funnelops/<key>.json (e.g. funnelops/notified/<run>.json)
MAX_EVENTS = 500
MAX_RUNS = 500
MAX_HISTORY = 200
MAX_JOBS = 200


class GcsJson:
    """One JSON document in GCS with optimistic concurrency."""

    def __init__(self, clients: Clients, bucket: str, name: str, ensure_bucket: Callable[[], None]) -> None:
        self.clients = clients
        self.bucket = bucket
        self.name = name
        self.ensure_bucket = ensure_bucket

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"

    def read(self) -> tuple[dict[str, Any], int]:
        """The document and its generation ({} and 0 when it, or its bucket, does not exist)."""
        from google.api_core import exceptions

        blob = self.clients.storage.bucket(self.bucket).blob(self.name)
        try:
            data = retry.call(lambda: blob.download_as_bytes(retry=None), self.uri, raw=True)
        except exceptions.NotFound:
            return {}, 0
        except Exception as exc:
            raise retry.describe(exc, self.uri, "storage.objects.get") from None
        try:
            return json.loads(data or b"{}"), int(blob.generation or 0)
        except ValueError:
            raise BackendError(f"{self.uri} is not valid JSON", "restore it from a backup or delete it") from None

    def update(self, change: Callable[[dict[str, Any]], Any], attempts: int = 30) -> Any:
        """Apply ``change`` to the document (in place) atomically; returns what it returns."""
        from google.api_core import exceptions

        for i in range(attempts):
            doc, gen = self.read()
            result = change(doc)
            blob = self.clients.storage.bucket(self.bucket).blob(self.name)
            body = json.dumps(doc, ensure_ascii=False, sort_keys=True)
            try:
                retry.call(lambda: blob.upload_from_string(body, content_type="application/json",  # noqa: B023 (called in this iteration)
                                                           if_generation_match=gen, retry=None),  # noqa: B023 (called in this iteration)
                           self.uri, raw=True)
                return result
            except exceptions.PreconditionFailed:
                time.sleep(random.uniform(0, min(0.5, 0.01 * 2 ** i)))  # lost the race: re-read
            except exceptions.NotFound:
                self.ensure_bucket()
            except Exception as exc:
                raise retry.describe(exc, self.uri, "storage.objects.create") from None
        raise BackendError(f"{self.uri} kept changing while we wrote it ({attempts} attempts)", "run again")


class GcsLedger:
    """The Ledger protocol (stages, events) plus run records for :mod:`.runtime`."""

    def __init__(self, doc: GcsJson) -> None:
        self.doc = doc

    def stages(self) -> dict[str, StageRecord]:
        data, _ = self.doc.read()
        return {k: StageRecord(**v) for k, v in (data.get("stages") or {}).items()}

    def record_stage(self, stage: str, spec_hash: str, actor: str) -> StageRecord:
        rec = StageRecord(stage, now_iso(), spec_hash, actor)

        def change(doc: dict[str, Any]) -> None:
            doc.setdefault("stages", {})[stage] = rec.to_dict()
            doc["stage_history"] = (doc.get("stage_history") or [])[-(MAX_HISTORY - 1):] + [rec.to_dict()]

        self.doc.update(change)
        return rec

    def reset_stages(self, actor: str) -> None:
        def change(doc: dict[str, Any]) -> None:
            doc["stages"] = {}
            doc["jobs_done"] = []
            _event(doc, "destroy", "", {"actor": actor})

        self.doc.update(change)

    def record_event(self, kind: str, subject: str, data: dict[str, Any], *, best_effort: bool = False) -> None:
        """`best_effort` changes nothing here: an object update waits on no lock another process holds."""
        self.doc.update(lambda doc: _event(doc, kind, subject, data))

    def events(self, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        data, _ = self.doc.read()
        rows = [e for e in reversed(data.get("events") or []) if kind is None or e["kind"] == kind]
        return rows[:limit]

    def record_job(self, job: str, spec_hash: str, actor: str) -> None:
        rec = {"job": job, "completed_at": now_iso(), "spec_hash": spec_hash, "actor": actor}

        def change(doc: dict[str, Any]) -> None:
            doc["jobs_done"] = (doc.get("jobs_done") or [])[-(MAX_JOBS - 1):] + [rec]

        self.doc.update(change)

    def jobs_done(self) -> list[dict[str, Any]]:
        """Lifecycle jobs completed since the last reset, oldest first (the newest MAX_JOBS)."""
        data, _ = self.doc.read()
        return list(data.get("jobs_done") or [])

    def claim_once(self, key: str) -> bool:
        """True for the first caller with `key`: ``gs://<artifacts>/funnelops/<key>.json`` created
        with ifGenerationMatch=0 (GCS lets one creator win). A precondition failure after a retried
        upload may be our own first write whose answer was lost: the token in the body tells."""
        import uuid

        from google.api_core import exceptions

        if not re.fullmatch(r"[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*", key) or \
                any(part in (".", "..") for part in key.split("/")):
            raise ValueError(f"claim key {key!r}: letters, digits, _ . = - and / only")
        name = f"{CLAIMS}{key}.json"
        uri = f"gs://{self.doc.bucket}/{name}"
        token = uuid.uuid4().hex
        body = json.dumps({"key": key, "token": token, "at": now_iso()})
        blob = self.doc.clients.storage.bucket(self.doc.bucket).blob(name)
        for _ in range(3):
            try:
                retry.call(lambda: blob.upload_from_string(body, content_type="application/json",
                                                           if_generation_match=0, retry=None), uri, raw=True)
                return True
            except exceptions.PreconditionFailed:
                try:
                    raw = retry.call(lambda: blob.download_as_bytes(retry=None), uri, raw=True)
                except exceptions.NotFound:
                    continue  # deleted meanwhile: try again
                try:
                    return bool(json.loads(raw).get("token") == token)
                except ValueError:
                    return False
            except exceptions.NotFound:
                self.doc.ensure_bucket()
            except Exception as exc:
                raise retry.describe(exc, uri, "storage.objects.create") from None
        raise BackendError(f"cannot write {uri}", "check the artifacts bucket exists")

    # -- run records (used by the runtime) ------------------------------------------------------
    def runs(self) -> dict[str, dict[str, Any]]:
        data, _ = self.doc.read()
        return dict(data.get("runs") or {})

    def put_runs(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return

        def change(doc: dict[str, Any]) -> None:
            runs = doc.setdefault("runs", {})
            for rec in records:
                runs[str(rec["id"])] = rec
            if len(runs) > MAX_RUNS:
                for key in sorted(runs, key=lambda k: runs[k].get("created_at") or "")[:len(runs) - MAX_RUNS]:
                    del runs[key]

        self.doc.update(change)


def _event(doc: dict[str, Any], kind: str, subject: str, data: dict[str, Any]) -> None:
    events = doc.setdefault("events", [])
    next_id = (events[-1]["id"] + 1) if events else 1
    events.append({"id": next_id, "at": now_iso(), "kind": kind, "subject": subject, "data": data})
    del events[:-MAX_EVENTS]
