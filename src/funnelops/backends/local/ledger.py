"""The lifecycle ledger: which stages are done, when, by whom, with which spec.

`Ledger` is the interface the lifecycle uses; `LocalLedger` keeps it in the SQLite file under
the home dir. (On gcp the same records live in a GCS object; see `backends/gcp`.) Besides the
stages it keeps every lifecycle job's completion since the last reset, in order, so a stage is
recorded only after its jobs ran in their order (lifecycle/order.py), and the events (audit).
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from funnelops.backends.local.ledger_db import LedgerDB, now_iso


def default_actor() -> str:
    """Who is acting: FUNNELOPS_ACTOR (pipelines set it), else user@host."""
    env = os.environ.get("FUNNELOPS_ACTOR")
    if env:
        return env
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class StageRecord:
    stage: str
    completed_at: str
    spec_hash: str
    actor: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Ledger(Protocol):
    def stages(self) -> dict[str, StageRecord]: ...

    def record_stage(self, stage: str, spec_hash: str, actor: str) -> StageRecord: ...

    def reset_stages(self, actor: str) -> None: ...

    def record_event(self, kind: str, subject: str, data: dict[str, Any]) -> None: ...

    def events(self, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]: ...

    def record_job(self, job: str, spec_hash: str, actor: str) -> None: ...

    def jobs_done(self) -> list[dict[str, Any]]: ...


def record_refusal(ledger: Any, subject: str, exc: Exception, **data: Any) -> None:
    """Audit a refusal (a run in progress, a stage or job order) as a `refused` event.

    Best effort: the refusal itself is what the user must see, so a ledger that cannot be
    written (or none at all) never replaces it with another error.
    """
    if ledger is None:
        return
    body = {"reason": getattr(exc, "kind", type(exc).__name__), "message": getattr(exc, "message", str(exc)),
            "actor": data.pop("actor", None) or default_actor(), **data}
    holder = getattr(exc, "details", {}).get("holder")
    if holder is not None and "holder" not in body:
        body["holder"] = holder
    try:
        ledger.record_event("refused", subject, body)
    except Exception:  # noqa: BLE001 -- see the docstring
        pass


class LocalLedger:
    """Ledger in `<home>/ledger.sqlite`."""

    def __init__(self, home: Path, db: LedgerDB | None = None) -> None:
        self.db = db if db is not None else LedgerDB(Path(home) / "ledger.sqlite")

    def stages(self) -> dict[str, StageRecord]:
        if not self.db.exists():
            return {}
        with self.db.read() as con:
            rows = con.execute("SELECT stage, completed_at, spec_hash, actor FROM stages").fetchall()
        return {r["stage"]: StageRecord(**dict(r)) for r in rows}

    def record_stage(self, stage: str, spec_hash: str, actor: str) -> StageRecord:
        rec = StageRecord(stage, now_iso(), spec_hash, actor)
        with self.db.write() as con:
            con.execute("INSERT OR REPLACE INTO stages VALUES (?, ?, ?, ?)",
                        (rec.stage, rec.completed_at, rec.spec_hash, rec.actor))
            con.execute("INSERT INTO stage_history (stage, completed_at, spec_hash, actor) VALUES (?, ?, ?, ?)",
                        (rec.stage, rec.completed_at, rec.spec_hash, rec.actor))
        return rec

    def reset_stages(self, actor: str) -> None:
        """Forget completed stages and jobs (after destroy); the stage history keeps them."""
        with self.db.write() as con:
            con.execute("DELETE FROM stages")
            con.execute("DELETE FROM jobs_done")
        self.record_event("destroy", "", {"actor": actor})

    def record_job(self, job: str, spec_hash: str, actor: str) -> None:
        with self.db.write() as con:
            con.execute("INSERT INTO jobs_done (job, completed_at, spec_hash, actor) VALUES (?, ?, ?, ?)",
                        (job, now_iso(), spec_hash, actor))

    def jobs_done(self) -> list[dict[str, Any]]:
        """Lifecycle jobs completed since the last reset, oldest first."""
        if not self.db.path.exists():
            return []
        with self.db.read() as con:
            rows = con.execute("SELECT job, completed_at, spec_hash, actor FROM jobs_done ORDER BY id").fetchall()
        return [dict(r) for r in rows]

    def record_event(self, kind: str, subject: str, data: dict[str, Any]) -> None:
        with self.db.write() as con:
            con.execute("INSERT INTO events (at, kind, subject, data) VALUES (?, ?, ?, ?)",
                        (now_iso(), kind, subject, json.dumps(data, ensure_ascii=False)))

    def events(self, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        if not self.db.exists():
            return []
        with self.db.read() as con:
            q = "SELECT id, at, kind, subject, data FROM events"
            args: tuple = ()
            if kind:
                q += " WHERE kind = ?"
                args = (kind,)
            rows = con.execute(q + " ORDER BY id DESC LIMIT ?", args + (limit,)).fetchall()
        return [{**dict(r), "data": json.loads(r["data"])} for r in rows]
