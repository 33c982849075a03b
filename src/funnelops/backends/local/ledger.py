"""The lifecycle ledger: which stages are done, when, by whom, with which spec.

`LocalLedger` implements `backends.base.Ledger` in the SQLite file under the home dir (on gcp
the same records live in a GCS object; see `backends/gcp`). Besides the stages it keeps every
lifecycle job's completion since the last reset, in order, so a stage is
recorded only after its jobs ran in their order (lifecycle/order.py), and the events (audit).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from funnelops.backends.local.home import LocalHome
from funnelops.backends.local.ledger_db import LedgerDB
from funnelops.backends.types import StageRecord, default_actor, now_iso, record_refusal

__all__ = ["LocalLedger", "StageRecord", "default_actor", "record_refusal"]

BEST_EFFORT_WAIT_S = 2.0  # a best-effort event (a refusal's audit) waits this long for the write lock


class LocalLedger:
    """Ledger in `<home>/ledger.sqlite`."""

    def __init__(self, home: Path, db: LedgerDB | None = None) -> None:
        self.db = db if db is not None else LedgerDB(LocalHome(home).ledger)

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

    def record_event(self, kind: str, subject: str, data: dict[str, Any], *, best_effort: bool = False) -> None:
        """Append an audit event; `best_effort` waits at most BEST_EFFORT_WAIT_S for the write lock
        (then LedgerLocked), so a process stopped inside a write cannot hold up a refusal."""
        with self.db.write(wait_s=BEST_EFFORT_WAIT_S if best_effort else None) as con:
            con.execute("INSERT INTO events (at, kind, subject, data) VALUES (?, ?, ?, ?)",
                        (now_iso(), kind, subject, json.dumps(data, ensure_ascii=False)))

    def claim_once(self, key: str) -> bool:
        """True for the first caller with `key`, ever; False for every later one (one INSERT: SQLite
        decides the race). What lets two observers of one run's end send one notification."""
        with self.db.write() as con:
            cur = con.execute("INSERT OR IGNORE INTO claims (key, at) VALUES (?, ?)", (key, now_iso()))
            return cur.rowcount == 1

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
