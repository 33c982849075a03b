"""Saved plans: `plan -out FILE` writes what was reviewed, `apply FILE` applies exactly that.

A saved plan is a JSON document: the stage, the project's spec hash, every planned resource with
its action, its changed fields, its desired config after apply and a digest of the config that was
observed, and one fingerprint of all those observations. `apply FILE` plans again under the apply
lock and refuses (nothing touched) unless the new plan is the same plan: same spec hash, same
actions and configs, same observations. A plan reviewed on Monday is not silently applied on
Friday against a project or a platform that moved in between (Terraform's "saved plan is stale").

The document also carries a checksum of its own content, so a file edited by hand is refused as
such instead of as a puzzling mismatch.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from funnelops.errors import FunnelopsError, UsageError
from funnelops.plan.model import Change, Plan

FORMAT_VERSION = 1
KIND = "funnelops-plan"


class StalePlan(FunnelopsError):
    """The saved plan no longer matches the project or the live state: re-run plan."""

    kind = "stale_plan"


def _canonical(value: Any) -> Any:
    """JSON-safe and order-independent (keys sorted when dumped), as the file stores it."""
    return json.loads(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str))


def _digest(value: Any) -> str:
    text = json.dumps(_canonical(value), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _entry(change: Change) -> dict[str, Any]:
    observed = change.observed.config if change.observed is not None else None
    return {"address": change.address, "action": change.action,
            "fields": _canonical([f.to_dict() for f in change.fields]),
            "after": _canonical(change.resource.config) if change.resource is not None else None,
            "observed_sha256": _digest(observed) if observed is not None else None}


def _fingerprint(entries: list[dict[str, Any]]) -> str:
    return _digest([[e["address"], e["observed_sha256"]] for e in entries])


def saved_plan_document(plan: Plan, project_id: str, created_at: datetime | None = None,
                        env: str | None = None) -> dict[str, Any]:
    """The document `plan -out FILE` writes (see the module docstring); `env` (the selected
    environment, docs/environments.md) is recorded when there is one."""
    entries = [_entry(c) for c in plan.changes]
    doc: dict[str, Any] = {
        "format_version": FORMAT_VERSION, "kind": KIND, "backend": plan.backend, "project": project_id,
        **({"env": env} if env else {}), "stage": plan.stage, "spec_hash": plan.spec_hash,
        "created_at": (created_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        "summary": plan.summary(), "changes": entries, "observed_fingerprint": _fingerprint(entries)}
    doc["checksum"] = _digest(doc)
    return doc


def write_saved_plan(path: Path, doc: dict[str, Any]) -> None:
    """Write atomically: a half-written plan file would be refused, but never half-read."""
    path = path.expanduser()
    if path.parent and not path.parent.is_dir():
        raise UsageError(f"cannot write the plan to {path}: folder {path.parent} does not exist",
                         "create the folder or choose another path for -out")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@dataclass(frozen=True)
class SavedPlan:
    path: Path
    doc: dict[str, Any]

    @property
    def stage(self) -> str:
        return str(self.doc["stage"])

    @property
    def changes(self) -> list[dict[str, Any]]:
        return list(self.doc["changes"])


def _bad(path: Path, why: str) -> UsageError:
    return UsageError(f"{path} is not a funnelops plan file: {why}",
                      "write one with `funnelops plan --stage STAGE -out FILE`, then `funnelops apply FILE`")


def load_saved_plan(path: Path) -> SavedPlan:
    """Read and check FILE; a missing, unreadable, foreign or edited file is a UsageError (exit 2)."""
    path = path.expanduser()
    if not path.is_file():
        raise UsageError(f"plan file {path} does not exist",
                         "write it with `funnelops plan --stage STAGE -out FILE` first")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad(path, f"cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise _bad(path, f"not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise _bad(path, f"no \"kind\": \"{KIND}\"")
    if doc.get("format_version") != FORMAT_VERSION:
        raise _bad(path, f"format_version {doc.get('format_version')!r}, this funnelops reads {FORMAT_VERSION}")
    missing = [k for k in ("backend", "project", "stage", "spec_hash", "changes", "observed_fingerprint", "checksum")
               if k not in doc]
    if missing or not isinstance(doc.get("changes"), list):
        raise _bad(path, "missing " + ", ".join(missing or ["changes"]))
    body = {k: v for k, v in doc.items() if k != "checksum"}
    if _digest(body) != doc["checksum"]:
        raise UsageError(f"plan file {path} was edited after `plan -out` wrote it (its checksum does not match)",
                         "a saved plan is applied as reviewed or not at all: run `funnelops plan -out FILE` again")
    return SavedPlan(path, doc)


def check_target(saved: SavedPlan, project_id: str, backend: str, env: str | None = None) -> None:
    """A plan written for another environment, project or backend is refused before anything is observed."""
    if saved.doc.get("env") != env:
        def name(e: Any) -> str:
            return f"environment {e}" if e else "no environment"
        raise UsageError(f"plan file {saved.path} was planned for {name(saved.doc.get('env'))}, not {name(env)}",
                         f"apply it with --env {saved.doc.get('env')}" if saved.doc.get("env") else
                         "apply it without --env (and without FUNNELOPS_ENV or `env` in funnelops.toml)")
    if saved.doc["project"] != project_id or saved.doc["backend"] != backend:
        raise UsageError(f"plan file {saved.path} is for project {saved.doc['project']} on the "
                         f"{saved.doc['backend']} backend, not project {project_id} on {backend}",
                         "apply it with the project and backend it was planned for, or plan again here")


def check_still_current(saved: SavedPlan, plan: Plan) -> None:
    """Refuse (StalePlan, exit 1) unless `plan`, made now, is the saved plan; names the first
    resource that differs: in the desired config (the project moved) or in what is observed (the
    live state moved)."""
    def stale(why: str) -> str:
        return f"the plan is stale ({why}): re-run plan"

    hint = f"review the new plan: `funnelops plan --stage {saved.stage} -out {saved.path}`, then apply it"
    now = {e["address"]: e for e in (_entry(c) for c in plan.changes)}
    then = {e["address"]: e for e in saved.changes}
    for address in list(then) + [a for a in now if a not in then]:
        a, b = then.get(address), now.get(address)
        if a is None or b is None:
            where = "is no longer planned" if b is None else "is planned now but was not then"
            raise StalePlan(stale(f"{address} {where}"), hint, resource=address)
        if a["observed_sha256"] != b["observed_sha256"]:  # first: a moved platform changes `fields` too
            raise StalePlan(stale(f"{address} changed on the platform since the plan was made"), hint,
                            resource=address)
        if (a["action"], a["after"], a["fields"]) != (b["action"], b["after"], b["fields"]):
            raise StalePlan(stale(f"{address} changed in the project: planned {a['action']}, now {b['action']}"),
                            hint, resource=address)
    if saved.doc["spec_hash"] != plan.spec_hash:
        raise StalePlan(stale(f"the project changed since the plan was made: spec hash "
                              f"{str(saved.doc['spec_hash'])[:12]} -> {plan.spec_hash[:12]}"), hint)
