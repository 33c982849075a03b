"""Shared pieces of the contract double: the Google error shape, requests, time and paging.

Google's REST front ends answer errors with one JSON shape (``{"error": {"code", "message",
"status", "errors": [...]}}``). The official clients map that shape to
``google.api_core.exceptions`` classes, and the BigQuery client's retry predicate also reads
``errors[0].reason``; so every error the double sends goes through :class:`ApiError` to keep
that shape exact.
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field
from typing import Any

# HTTP status -> (canonical status name, legacy reason used by BigQuery's retry predicate).
_STATUS = {
    400: ("INVALID_ARGUMENT", "invalid"),
    401: ("UNAUTHENTICATED", "unauthorized"),
    403: ("PERMISSION_DENIED", "accessDenied"),
    404: ("NOT_FOUND", "notFound"),
    409: ("ALREADY_EXISTS", "duplicate"),
    412: ("FAILED_PRECONDITION", "conditionNotMet"),
    429: ("RESOURCE_EXHAUSTED", "rateLimitExceeded"),
    500: ("INTERNAL", "internalError"),
    503: ("UNAVAILABLE", "backendError"),
}

# google.rpc.Code numbers, used inside Operation.error and Job.status.
RPC_CODES = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9, "ABORTED": 10, "INTERNAL": 13, "UNAVAILABLE": 14,
    "UNAUTHENTICATED": 16,
}


class ApiError(Exception):
    """An error answer. Raise it anywhere in a handler; the server renders it."""

    def __init__(self, code: int, message: str, status: str | None = None,
                 reason: str | None = None) -> None:
        super().__init__(message)
        default_status, default_reason = _STATUS.get(code, ("UNKNOWN", "unknown"))
        self.code = code
        self.message = message
        self.status = status or default_status
        self.reason = reason or default_reason

    def body(self) -> dict[str, Any]:
        return {"error": {
            "code": self.code,
            "message": self.message,
            "status": self.status,
            "errors": [{"message": self.message, "domain": "global", "reason": self.reason}],
        }}


def not_found(what: str) -> ApiError:
    return ApiError(404, f"Not found: {what}")


def already_exists(what: str) -> ApiError:
    return ApiError(409, f"Already Exists: {what}")


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


@dataclass
class Request:
    """One decoded API request, as handed to a service handler."""

    method_id: str
    verb: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def q(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, default)


def now_rfc3339() -> str:
    """Wall-clock time in the RFC 3339 'Zulu' form the proto3 JSON mapping uses."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_millis() -> str:
    """BigQuery's timestamps: int64 milliseconds since the epoch, encoded as a string."""
    return str(int(time.time() * 1000))


def page(items: list[Any], query: dict[str, str], size_key: str, default_size: int = 1000
         ) -> tuple[list[Any], str | None]:
    """Slice a listing by ``pageToken`` and a page size; the token is an opaque offset."""
    try:
        start = int(query.get("pageToken") or 0)
        size = int(query.get(size_key) or default_size) or default_size
    except ValueError as exc:
        raise bad_request(f"Invalid page token or size: {exc}") from exc
    chunk = items[start:start + size]
    nxt = str(start + size) if start + size < len(items) else None
    return chunk, nxt
