"""Who may see and act on the dashboard: token or session, CSRF, Origin and Host checks, read-only.

Why each check (every one is attacked in tests/unit/ui/test_security.py):
- Bound to localhost, only people on this machine reach the port: no token. Bound elsewhere, the
  network reaches it: every request needs the token (`Authorization: Bearer T`) or a session cookie
  that `/login` signs with a key made at server start (HMAC-SHA256; a restart signs everyone out).
- A page on another origin can make the operator's browser POST to the dashboard (even on
  localhost, cookies or not): every state-changing request needs the `funnelops_csrf` cookie's value
  echoed in `X-CSRF-Token` (or a `csrf_token` form field), which another origin can neither read
  nor set, and an `Origin`/`Referer`, when sent, naming this very host. A request carrying the
  Bearer token is exempt from the double submit: a browser never attaches it on its own.
- DNS rebinding (evil.example resolving to 127.0.0.1) turns another site into "same origin" for a
  localhost dashboard: bound to localhost, the Host header must name a loopback host.
- `--read-only` (shared screens): every state-changing request is refused, whoever sends it.

What it hands the app: `request.state.user` (the login name, else the OS user) and
`request.state.csrf_token` (pages put it in `<meta name="csrf-token">`); the cookie is set here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SESSION_COOKIE = "funnelops_session"
CSRF_COOKIE = "funnelops_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SESSION_MAX_AGE_S = 12 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PREFIXES = ("/static/",)  # the package's own CSS/JS: nothing of the platform in them
MAX_FORM_BYTES = 64 * 1024
USER_NAME = re.compile(r"[\w][\w .@+-]{0,63}")
CSRF_VALUE = re.compile(r"[A-Za-z0-9_-]{32,128}")


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address (127.0.0.0/8, ::1); never a name that merely starts like
    one (`127.0.0.1.evil.example` is a DNS name anyone can point anywhere)."""
    import ipaddress

    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_local_bind(host: str) -> bool:
    """True when only this machine can reach the address."""
    return is_loopback(host)


def valid_user(name: str) -> bool:
    """A name recorded as a run's actor: letters, digits, `. _ @ + -` and spaces, 1 to 64."""
    return bool(USER_NAME.fullmatch(name))


class Signer:
    """HMAC-SHA256 over a JSON payload with a key made per server start (no state on disk)."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key or secrets.token_bytes(32)

    def sign(self, payload: dict[str, Any]) -> str:
        body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{body}.{self._mac(body)}"

    def unsign(self, value: str) -> dict[str, Any] | None:
        body, _, mac = value.rpartition(".")
        if not body or not hmac.compare_digest(mac, self._mac(body)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _mac(self, body: str) -> str:
        return hmac.new(self.key, body.encode(), hashlib.sha256).hexdigest()


class Refusal(Exception):
    """A request the guard turns away: HTTP status, message, hint."""

    def __init__(self, status: int, message: str, hint: str) -> None:
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint


class AccessGuard:
    """Pure ASGI middleware in front of every route (pages, API, /login)."""

    def __init__(self, app: ASGIApp, *, host: str, token: str | None, read_only: bool,
                 default_user: str, signer: Signer | None = None) -> None:
        if not is_local_bind(host) and not token:
            raise ValueError(f"bound to {host} (beyond localhost) without a token: refusing to serve openly")
        self.app, self.host, self.token, self.read_only = app, host, token, read_only
        self.local = is_local_bind(host)
        self.default_user = default_user
        self.signer = signer or Signer()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        cookies = _cookies(headers.get("cookie", ""))
        csrf = cookies.get(CSRF_COOKIE, "")
        new_csrf = None if CSRF_VALUE.fullmatch(csrf) else secrets.token_urlsafe(32)
        csrf = new_csrf or csrf
        set_cookies = [_cookie(CSRF_COOKIE, csrf)] if new_csrf else []
        path = scope.get("path", "/")
        try:
            self._check_host(headers)
            if path == "/login":
                await self._login(scope, receive, send, headers, csrf, set_cookies)
                return
            if path.startswith(PUBLIC_PREFIXES) and scope["method"] in SAFE_METHODS:
                await self.app(scope, receive, _with_cookies(send, set_cookies))  # the sign-in page's CSS
                return
            user = self._identify(scope, headers, cookies)
            if scope["method"] not in SAFE_METHODS:
                receive = await self._check_change(scope, receive, headers, csrf, bearer=user[1])
        except Refusal as exc:
            await _refuse(scope, send, exc, set_cookies)
            return
        state = scope.setdefault("state", {})
        state["user"], state["csrf_token"] = user[0], csrf
        await self.app(scope, receive, _with_cookies(send, set_cookies))

    # -- the checks -------------------------------------------------------------------------
    def _check_host(self, headers: dict[str, str]) -> None:
        if not self.local:
            return  # reached through any name; the token is the guard
        if not is_loopback(_host_name(headers.get("host", ""))):
            raise Refusal(403, f"Host '{headers.get('host', '')}' is not this machine's dashboard",
                          "open it as http://127.0.0.1:PORT or http://localhost:PORT (the dashboard is bound to "
                          "localhost; other names are refused against DNS rebinding)")

    def _identify(self, scope: Scope, headers: dict[str, str], cookies: dict[str, str]) -> tuple[str, bool]:
        """(user, authenticated by the Bearer token); Refusal(401) when a token is needed and missing."""
        session = self._session(cookies)
        auth = headers.get("authorization", "")
        if self.token and auth:
            scheme, _, given = auth.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
                raise Refusal(401, "wrong token in the Authorization header",
                              "send `Authorization: Bearer TOKEN` with the token `funnelops ui` printed "
                              "(or FUNNELOPS_UI_TOKEN)")
            name = headers.get("x-funnelops-user", "")
            return (name if valid_user(name) else "api"), True
        if session is not None:
            return session, False
        if self.token:
            raise Refusal(401, "this dashboard needs its token",
                          "open the URL `funnelops ui` printed (/login?token=...), sign in at /login, or send "
                          "`Authorization: Bearer TOKEN`")
        return self.default_user, False

    def _session(self, cookies: dict[str, str]) -> str | None:
        data = self.signer.unsign(cookies.get(SESSION_COOKIE, ""))
        if not data or not isinstance(data.get("u"), str) or not isinstance(data.get("t"), (int, float)):
            return None
        if time.time() - data["t"] > SESSION_MAX_AGE_S or not valid_user(data["u"]):
            return None
        return str(data["u"])

    async def _check_change(self, scope: Scope, receive: Receive, headers: dict[str, str], csrf: str,
                            bearer: bool) -> Receive:
        """Read-only, Origin/Referer and the double submit, for every state-changing request; returns
        the `receive` to hand on (a form body read here is replayed to the app)."""
        if self.read_only:
            raise Refusal(403, "read-only dashboard", "this dashboard was started with --read-only: it shows, "
                          "it does not change anything; run the command from the CLI instead")
        _check_origin(headers)
        if bearer:
            return receive
        given = headers.get(CSRF_HEADER, "")
        if not given and _is_form(headers):
            body, receive = await _buffer(receive)
            given = (parse_qs(body.decode("utf-8", "replace")).get(CSRF_FIELD) or [""])[0]
        if not given or not hmac.compare_digest(given.encode(), csrf.encode()):
            raise Refusal(403, "missing or wrong CSRF token",
                          "reload the page and try again (the request must carry the page's "
                          "`<meta name=\"csrf-token\">` in the X-CSRF-Token header)")
        return receive

    # -- /login -----------------------------------------------------------------------------
    async def _login(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], csrf: str,
                     set_cookies: list[str]) -> None:
        """GET shows the form (or, with ?token=, signs in: the URL `funnelops ui` prints); POST signs in
        from the form (token, user, csrf_token). Success: a session cookie and a redirect to `next`."""
        query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        target = _safe_next(query.get("next", "/"))
        if scope["method"] == "POST":
            _check_origin(headers)
            body, _ = await _buffer(receive)
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
            if not hmac.compare_digest(form.get(CSRF_FIELD, "").encode(), csrf.encode()):
                raise Refusal(403, "missing or wrong CSRF token", "reload the sign-in page and try again")
            fields = form
        elif scope["method"] in ("GET", "HEAD") and "token" in query:
            fields = query
        else:
            await _send(send, 200, _login_page(csrf, target, self.token is not None, ""), "text/html", set_cookies)
            return
        user = fields.get("user", "").strip() or self.default_user
        if self.token and not hmac.compare_digest(fields.get("token", "").encode(), self.token.encode()):
            await _send(send, 401, _login_page(csrf, target, True, "Wrong token."), "text/html", set_cookies)
            return
        if not valid_user(user):
            await _send(send, 400, _login_page(csrf, target, self.token is not None,
                                               "The name may hold letters, digits, spaces and . _ @ + - (1 to 64)."),
                        "text/html", set_cookies)
            return
        session = _cookie(SESSION_COOKIE, self.signer.sign({"u": user, "t": int(time.time())}))
        await _send(send, 303, b"", "text/plain", [*set_cookies, session], location=target)


# -- helpers ------------------------------------------------------------------------------------
def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(header: str) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed Cookie header is no cookies, not a 500
        return {}
    return {k: m.value for k, m in jar.items()}


def _cookie(name: str, value: str) -> str:
    return f"{name}={value}; Path=/; HttpOnly; SameSite=Strict"


def _host_name(host: str) -> str:
    """'localhost:8400' -> 'localhost', '[::1]:8400' -> '::1'."""
    if host.startswith("["):
        return host[1:host.find("]")].lower() if "]" in host else ""
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


def _check_origin(headers: dict[str, str]) -> None:
    """A state-changing request from a page must come from a page of this very host."""
    source = headers.get("origin") or headers.get("referer")
    if source is None:
        return  # scripts (curl) send neither; the CSRF token or the Bearer token still guards
    netloc = urlsplit(source).netloc.lower() if source != "null" else "null"
    if netloc != headers.get("host", "").lower():
        raise Refusal(403, f"cross-origin request refused (Origin {source} is not {headers.get('host', '')})",
                      "use the dashboard's own pages; other sites cannot act on it")


def _is_form(headers: dict[str, str]) -> bool:
    return headers.get("content-type", "").split(";")[0].strip() == "application/x-www-form-urlencoded"


async def _buffer(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body (at most MAX_FORM_BYTES), and a `receive` that replays it."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_FORM_BYTES:
            raise Refusal(413, "form too large", f"a form is at most {MAX_FORM_BYTES} bytes")
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return body, replay


def _safe_next(target: str) -> str:
    """Only a path of this site (no `//host`, no scheme): the login must not redirect elsewhere."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or "://" in target:
        return "/"
    return target


def _with_cookies(send: Send, cookies: list[str]) -> Send:
    if not cookies:
        return send

    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            message.setdefault("headers", [])
            message["headers"] = [*message["headers"], *((b"set-cookie", c.encode()) for c in cookies)]
        await send(message)

    return sender


async def _send(send: Send, status: int, body: bytes, content_type: str, cookies: list[str],
                location: str | None = None, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", f"{content_type}; charset=utf-8".encode()), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store"), *((b"set-cookie", c.encode()) for c in cookies), *(extra or [])]
    if location is not None:
        headers.append((b"location", location.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse(scope: Scope, send: Send, exc: Refusal, cookies: list[str]) -> None:
    """JSON {error, hint, details} under /api/, a small page elsewhere (a sign-in redirect for a page
    GET without credentials)."""
    path = scope.get("path", "/")
    extra = [(b"www-authenticate", b'Bearer realm="funnelops"')] if exc.status == 401 else []
    if path.startswith("/api/"):
        body = json.dumps({"error": exc.message, "hint": exc.hint, "details": {}}).encode()
        await _send(send, exc.status, body, "application/json", cookies, extra=extra)
        return
    if exc.status == 401 and scope["method"] in SAFE_METHODS:
        query = scope.get("query_string", b"").decode()
        here = path + (f"?{query}" if query else "")
        await _send(send, 303, b"", "text/plain", cookies, location=f"/login?next={quote(here, safe='')}")
        return
    page = (f"<!doctype html><html lang=en><meta charset=utf-8><title>funnelops: refused</title>"
            f"<link rel=stylesheet href=/static/app.css><main class=refusal><h1>Refused</h1>"
            f"<p class=error>{html.escape(exc.message)}</p><p class=hint>{html.escape(exc.hint)}</p>"
            f"<p><a href=/>Back to the dashboard</a></p></main></html>")
    await _send(send, exc.status, page.encode(), "text/html", cookies, extra=extra)


def _login_page(csrf: str, target: str, needs_token: bool, error: str) -> bytes:
    token_field = ("<label>Token <input name=token type=password autocomplete=current-password required></label>"
                   if needs_token else "")
    err = f"<p class=error role=alert>{html.escape(error)}</p>" if error else ""
    return (f"<!doctype html><html lang=en><meta charset=utf-8><title>funnelops: sign in</title>"
            f"<link rel=stylesheet href=/static/app.css><meta name=csrf-token content=\"{html.escape(csrf)}\">"
            f"<main class=login><h1>funnelops dashboard</h1>{err}"
            f"<form id=login method=post action=\"/login?next={quote(target, safe='/')}\">"
            f"<input type=hidden name={CSRF_FIELD} value=\"{html.escape(csrf)}\">{token_field}"
            f"<label>Your name <input name=user maxlength=64 placeholder=\"recorded as the actor of your forces\">"
            f"</label><button type=submit>Sign in</button></form></main></html>").encode()
