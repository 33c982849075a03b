"""One retry policy for every Google call, and errors that name what failed.

Why our own policy rather than each client's: the four clients disagree (Dataproc's ``get``
retries 503 but not 429, BigQuery starts its backoff at 1 s, storage retries only what it deems
idempotent). funnelops calls every client with ``retry=None`` and wraps the call here, so 429,
5xx and timeouts are retried the same way everywhere, and 400/403/404 fail at once with a
:class:`BackendError` that names the resource and the field or permission at fault.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any, TypeVar
from collections.abc import Callable

from funnelops.errors import BackendError

T = TypeVar("T")

RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class Policy:
    """Exponential backoff with full jitter, bounded by a deadline."""

    def __init__(self, initial: float = 0.05, maximum: float = 2.0, deadline: float = 60.0) -> None:
        self.initial = float(os.environ.get("FUNNELOPS_GCP_RETRY_INITIAL_S", initial))
        self.maximum = maximum
        self.deadline = float(os.environ.get("FUNNELOPS_GCP_RETRY_DEADLINE_S", deadline))


DEFAULT = Policy()


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a google.api_core / requests error, if it has one."""
    code = getattr(exc, "code", None)
    if isinstance(code, int) and 100 <= code < 600:
        return code
    resp = getattr(exc, "response", None)
    status = getattr(resp, "status_code", None)
    return status if isinstance(status, int) else None


def _transient(exc: BaseException) -> bool:
    status = status_of(exc)
    if status is not None:
        return status in RETRY_STATUS
    name = type(exc).__name__
    # requests / urllib3 / google.auth transport failures carry no status: network trouble.
    return name in ("ConnectionError", "Timeout", "ReadTimeout", "ConnectTimeout", "TransportError",
                    "ChunkedEncodingError", "RemoteDisconnected", "ProtocolError")


def error_payload(exc: BaseException) -> dict[str, Any]:
    """Google's ``{"error": {...}}`` body, when the exception carries the HTTP response."""
    resp = getattr(exc, "response", None)
    try:
        data = resp.json() if resp is not None and hasattr(resp, "json") else None
    except Exception:  # not JSON (HTML from a proxy, say)
        data = None
    return (data or {}).get("error") or {} if isinstance(data, dict) else {}


def api_status(exc: BaseException) -> str:
    """The canonical status word (ABORTED, ALREADY_EXISTS...) of an API error, or ''."""
    return str(error_payload(exc).get("status") or "")


def describe(exc: BaseException, what: str, permission: str | None = None) -> BackendError:
    """A BackendError that says which resource, what Google said, and what to check."""
    status = status_of(exc)
    message = getattr(exc, "message", None) or str(exc)
    payload = error_payload(exc)
    if payload.get("message"):
        message = payload["message"]
    hint = None
    if status == 403:
        hint = (f"the credentials in use lack permission {permission} on {what}" if permission
                else f"the credentials in use lack a permission on {what}") + \
               "; grant it, or run with an account that has it"
    elif status == 404:
        hint = f"{what} (or its parent) does not exist; run `funnelops job create-infra` first"
    elif status == 400:
        hint = "a field Google refused is named above; fix it in the project definition"
    elif status == 409:
        hint = "someone changed it at the same time; run the command again"
    elif status == 412:
        hint = "it changed while we were writing it; run the command again"
    code = f"{status} " if status else ""
    return BackendError(f"{what}: {code}{message}", hint, status=status, resource=what,
                        permission=permission)


def call(fn: Callable[[], T], what: str, *, permission: str | None = None, policy: Policy | None = None,
         retry_on: Callable[[BaseException], bool] | None = None, raw: bool = False) -> T:
    """Run ``fn`` with the policy; transient errors are retried, the rest described.

    ``raw=True`` re-raises the client's own exception (for callers that branch on 404/409/412).
    """
    pol = policy or DEFAULT
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if isinstance(exc, BackendError):
                raise
            transient = _transient(exc) or (retry_on is not None and retry_on(exc))
            elapsed = time.monotonic() - started
            if transient and elapsed < pol.deadline:
                attempt += 1
                delay = min(pol.maximum, pol.initial * (2 ** min(attempt, 16)))
                time.sleep(random.uniform(0, delay) + pol.initial / 2)
                continue
            if raw:
                raise
            raise describe(exc, what, permission) from None


def is_status(exc: BaseException, *codes: int) -> bool:
    return status_of(exc) in codes
