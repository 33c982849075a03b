"""One JSON POST to a webhook, with a short timeout and a couple of retries (stdlib only).

Why stdlib: a notification is one small POST, and the local supervisor sends it; a new HTTP
dependency would be carried by every install for that. Retries: a 5xx answer or a refused/reset
connection is retried twice with backoff; a 4xx is not (the receiver said no), and neither is a
timeout (a receiver that hangs would only hang again, and the caller must not wait 3x). The URL is
a secret: it is never part of a returned message, whatever urllib put in its exception text.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

RETRIES = 2
BACKOFF_S = 0.5


@dataclass
class PostResult:
    ok: bool
    status: int | None  # the last HTTP status (None: no answer)
    attempts: int
    detail: str  # what happened, without the URL


def _scrub(text: str, url: str) -> str:
    """`text` with the URL, and its host, removed (urllib may name either)."""
    host = urlsplit(url).hostname or ""
    for secret in (url, url.rstrip("/"), host):
        if secret:
            text = text.replace(secret, "<url>")
    return text


def post_json(url: str, body: dict[str, Any], timeout_s: float = 5.0, retries: int = RETRIES,
              backoff_s: float = BACKOFF_S) -> PostResult:
    if urlsplit(url).scheme not in ("http", "https"):  # never file:, ftp: or a typo
        return PostResult(False, None, 0, "not an http(s) URL")
    data = json.dumps(body, ensure_ascii=False).encode()
    attempts, status, detail = 0, None, ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        attempts += 1
        req = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "funnelops"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                return PostResult(True, resp.status, attempts, f"HTTP {resp.status}")
        except urllib.error.HTTPError as exc:
            status, detail = exc.code, f"HTTP {exc.code}"
            if exc.code < 500:
                break
        except TimeoutError:
            status, detail = None, f"no answer within {timeout_s:g}s"
            break
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, (TimeoutError, socket.timeout)):
                status, detail = None, f"no answer within {timeout_s:g}s"
                break
            status, detail = None, _scrub(f"connection failed: {reason}", url)
        except ValueError as exc:  # not a URL urllib can open (no scheme...): never retried
            status, detail = None, _scrub(f"not a usable URL: {exc}", url)
            break
    return PostResult(False, status, attempts, detail)
