"""The dashboard's access guard (funnelops/ui/security.py), attacked: every way in without the token,
a forged session, a forced POST from another origin, a rebinding Host, a POST on a read-only screen.

The guard sits in front of a tiny Starlette app that echoes what it was handed (user, CSRF token,
the form body), so each test sees both the refusal and, on the happy path, what reached the app.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from funnelops.ui.security import CSRF_COOKIE, SESSION_COOKIE, AccessGuard, Signer

from starlette.testclient import TestClient  # on httpx2 (the dev extra), as Starlette 1.x wants

TOKEN = "s3cret-token-for-the-tests-0123456789"
LOCAL = "http://127.0.0.1:8400"
REMOTE = "http://10.1.2.3:8400"


async def echo(request: Request) -> JSONResponse:
    body = (await request.body()).decode()
    return JSONResponse({"user": request.state.user, "csrf": request.state.csrf_token, "body": body,
                         "method": request.method})


async def page(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"page for {request.state.user}")


def make(host: str = "127.0.0.1", token: str | None = None, read_only: bool = False,
         signer: Signer | None = None) -> Starlette:
    routes = [Route("/api/echo", echo, methods=["GET", "POST", "DELETE"]), Route("/page", page, methods=["GET", "POST"])]
    guard = Middleware(AccessGuard, host=host, token=token, read_only=read_only, default_user="ana@box",
                       signer=signer)
    return Starlette(routes=routes, middleware=[guard])


def client(app: Starlette, base: str = LOCAL, **kw: Any) -> TestClient:
    return TestClient(app, base_url=base, follow_redirects=False, **kw)


def primed(c: TestClient) -> str:
    """GET once (as a page load does) and return the CSRF token the guard handed out."""
    r = c.get("/api/echo")
    assert r.status_code == 200, r.text
    token = r.json()["csrf"]
    assert c.cookies.get(CSRF_COOKIE) == token
    return token


def signed_in(c: TestClient, user: str = "maria") -> None:
    r = c.get(f"/login?token={TOKEN}&user={user}")
    assert r.status_code == 303, r.text


# -- localhost ----------------------------------------------------------------------------------
def test_localhost_needs_no_token_and_hands_the_app_the_os_user_and_a_csrf_token() -> None:
    c = client(make())
    r = c.get("/api/echo")
    assert r.status_code == 200 and r.json()["user"] == "ana@box"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert r.json()["csrf"] == c.cookies.get(CSRF_COOKIE) and len(r.json()["csrf"]) >= 32
    again = c.get("/api/echo")  # the same token for the session, no new cookie
    assert again.json()["csrf"] == r.json()["csrf"] and "set-cookie" not in again.headers


def test_localhost_post_with_the_double_submit_passes_and_without_it_is_refused() -> None:
    c = client(make())
    token = primed(c)
    assert c.post("/api/echo", json={"x": 1}, headers={"X-CSRF-Token": token}).status_code == 200
    missing = c.post("/api/echo", json={"x": 1})  # the cookie alone (what a forged form carries)
    assert missing.status_code == 403 and "CSRF" in missing.json()["error"]
    wrong = c.post("/api/echo", headers={"X-CSRF-Token": token[:-1] + ("A" if token[-1] != "A" else "B")})
    assert wrong.status_code == 403
    c.cookies.clear()  # header without the cookie: a token from elsewhere does not match a fresh cookie
    assert c.post("/api/echo", headers={"X-CSRF-Token": token}).status_code == 403
    assert c.request("DELETE", "/api/echo").status_code == 403  # every unsafe method, not only POST


def test_a_form_post_carries_the_csrf_field_and_the_app_still_reads_the_whole_body() -> None:
    c = client(make())
    token = primed(c)
    r = c.post("/api/echo", data={"csrf_token": token, "note": "hola"})
    assert r.status_code == 200 and "note=hola" in r.json()["body"] and "csrf_token=" in r.json()["body"]
    assert c.post("/api/echo", data={"csrf_token": "x" * 40, "note": "hola"}).status_code == 403


@pytest.mark.parametrize("header,value", [
    ("Origin", "http://evil.example"),
    ("Origin", "http://127.0.0.1:9999"),  # another port is another origin
    ("Origin", "null"),  # sandboxed iframes, data: URLs
    ("Referer", "http://evil.example/attack.html"),
])
def test_a_post_from_another_origin_is_refused_even_with_the_csrf_token(header: str, value: str) -> None:
    c = client(make())
    token = primed(c)
    r = c.post("/api/echo", headers={"X-CSRF-Token": token, header: value})
    assert r.status_code == 403 and "cross-origin" in r.json()["error"]
    same = c.post("/api/echo", headers={"X-CSRF-Token": token, header: f"{LOCAL}/schedulers"
                                        if header == "Referer" else LOCAL})
    assert same.status_code == 200


@pytest.mark.parametrize("host", ["evil.example:8400", "evil.example", "127.0.0.1.evil.example:8400", "10.0.0.5:8400"])
def test_a_rebinding_host_is_refused_on_a_localhost_bind(host: str) -> None:
    c = client(make())
    r = c.get("/api/echo", headers={"Host": host})
    assert r.status_code == 403 and "DNS rebinding" in r.json()["hint"]
    page_refusal = c.get("/page", headers={"Host": host})
    assert page_refusal.status_code == 403 and page_refusal.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("host", ["127.0.0.1:8400", "localhost:8400", "[::1]:8400", "localhost"])
def test_loopback_names_are_this_machine(host: str) -> None:
    assert client(make()).get("/api/echo", headers={"Host": host}).status_code == 200


# -- beyond localhost: the token ----------------------------------------------------------------
def test_a_non_local_bind_without_a_token_refuses_to_serve() -> None:
    with pytest.raises(ValueError, match="without a token"):
        client(make(host="0.0.0.0")).get("/api/echo")


def test_no_token_is_refused_json_for_the_api_and_a_sign_in_redirect_for_pages() -> None:
    c = client(make(host="0.0.0.0", token=TOKEN), base=REMOTE)
    r = c.get("/api/echo")
    assert r.status_code == 401 and r.json()["error"] == "this dashboard needs its token"
    assert set(r.json()) == {"error", "hint", "details"} and "Bearer" in r.headers["www-authenticate"]
    p = c.get("/page?x=1")
    assert p.status_code == 303 and p.headers["location"] == "/login?next=%2Fpage%3Fx%3D1"
    assert c.post("/page").status_code == 401  # an unsafe page request is not redirected: refused


def test_a_wrong_bearer_token_is_refused() -> None:
    c = client(make(host="0.0.0.0", token=TOKEN), base=REMOTE)
    for wrong in (TOKEN[:-1], TOKEN + "x", "", TOKEN.upper()):
        r = c.get("/api/echo", headers={"Authorization": f"Bearer {wrong}"})
        assert r.status_code == 401 and "wrong token" in r.json()["error"], wrong


@pytest.mark.parametrize("where", ["query", "basic", "raw header", "x-token", "cookie"])
def test_the_right_token_in_the_wrong_place_is_refused(where: str) -> None:
    import base64

    c = client(make(host="0.0.0.0", token=TOKEN), base=REMOTE)
    kw: dict[str, Any] = {
        "query": {"params": {"token": TOKEN}},
        "basic": {"headers": {"Authorization": "Basic " + base64.b64encode(f"u:{TOKEN}".encode()).decode()}},
        "raw header": {"headers": {"Authorization": TOKEN}},
        "x-token": {"headers": {"X-Token": TOKEN}},
        "cookie": {"headers": {"Cookie": f"{SESSION_COOKIE}={TOKEN}"}},
    }[where]
    assert c.get("/api/echo", **kw).status_code == 401


def test_the_bearer_token_reads_and_acts_and_is_exempt_from_the_double_submit() -> None:
    c = client(make(host="0.0.0.0", token=TOKEN), base=REMOTE)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert c.get("/api/echo", headers=auth).json()["user"] == "api"
    r = c.post("/api/echo", headers={**auth, "X-Funnelops-User": "ci-bot"})
    assert r.status_code == 200 and r.json()["user"] == "ci-bot"  # a browser never attaches Bearer on its own
    assert c.post("/api/echo", headers={**auth, "Origin": "http://evil.example"}).status_code == 403


def test_login_with_the_printed_url_signs_in_and_the_session_cookie_is_httponly_strict() -> None:
    c = client(make(host="0.0.0.0", token=TOKEN), base=REMOTE)
    r = c.get(f"/login?token={TOKEN}&user=maria&next=/runs/3")
    assert r.status_code == 303 and r.headers["location"] == "/runs/3"
    session = [h for h in r.headers.get_list("set-cookie") if h.startswith(f"{SESSION_COOKIE}=")]
    assert session and "HttpOnly" in session[0] and "SameSite=Strict" in session[0]
    assert c.get("/api/echo").json()["user"] == "maria"
    token = c.cookies.get(CSRF_COOKIE)
    assert c.post("/api/echo", headers={"X-CSRF-Token": token}).status_code == 200
    assert c.post("/api/echo").status_code == 403  # the session does not lift the CSRF check


def test_login_form_post_needs_its_csrf_field_and_the_right_token() -> None:
    c = client(make(host="0.0.0.0", token=TOKEN), base=REMOTE)
    form = c.get("/login")
    assert form.status_code == 200 and "name=csrf-token" in form.text
    csrf = c.cookies.get(CSRF_COOKIE)
    assert f'value="{csrf}"' in form.text and "name=token" in form.text
    assert c.post("/login", data={"token": TOKEN, "user": "lu"}).status_code == 403  # no csrf field: login CSRF
    bad = c.post("/login", data={"token": "nope", "user": "lu", "csrf_token": csrf})
    assert bad.status_code == 401 and "Wrong token" in bad.text and SESSION_COOKIE not in c.cookies
    ok = c.post("/login?next=//evil.example/x", data={"token": TOKEN, "user": "lu", "csrf_token": csrf})
    assert ok.status_code == 303 and ok.headers["location"] == "/"  # never redirected off the site
    assert c.get("/api/echo").json()["user"] == "lu"


@pytest.mark.parametrize("name", ["<script>", "a" * 65, "x\nInjected: 1", "robert'); drop"])
def test_a_hostile_login_name_is_refused(name: str) -> None:
    c = client(make(host="0.0.0.0", token=TOKEN), base=REMOTE)
    r = c.get("/login", params={"token": TOKEN, "user": name})
    assert r.status_code == 400 and SESSION_COOKIE not in c.cookies


def test_forged_tampered_and_expired_sessions_are_refused() -> None:
    real = Signer()
    c = client(make(host="0.0.0.0", token=TOKEN, signer=real), base=REMOTE)
    now = int(time.time())
    forged = {
        "another key": Signer().sign({"u": "eve", "t": now}),
        "tampered": real.sign({"u": "eve", "t": now}).replace(".", "x.", 1),
        "unsigned": real.sign({"u": "eve", "t": now}).split(".")[0],
        "expired": real.sign({"u": "eve", "t": now - 13 * 3600}),
        "bad name": real.sign({"u": "<eve>", "t": now}),
        "not a dict": real.sign([1]),  # type: ignore[arg-type]
    }
    for what, value in forged.items():
        c.cookies.clear()
        c.cookies.set(SESSION_COOKIE, value)
        assert c.get("/api/echo").status_code == 401, what
    c.cookies.clear()
    c.cookies.set(SESSION_COOKIE, real.sign({"u": "eve", "t": now}))  # the control: a genuine one passes
    assert c.get("/api/echo").json()["user"] == "eve"


def test_a_session_does_not_survive_a_restart() -> None:
    first = client(make(host="0.0.0.0", token=TOKEN), base=REMOTE)
    signed_in(first)
    restarted = client(make(host="0.0.0.0", token=TOKEN), base=REMOTE)  # a new key
    restarted.cookies.set(SESSION_COOKIE, first.cookies.get(SESSION_COOKIE))
    assert restarted.get("/api/echo").status_code == 401


def test_static_files_are_public_but_only_to_read() -> None:
    app = make(host="0.0.0.0", token=TOKEN)
    app.router.routes.append(Route("/static/app.css", lambda _r: PlainTextResponse("nav {}"), methods=["GET", "POST"]))
    c = client(app, base=REMOTE)
    assert c.get("/static/app.css").status_code == 200  # the sign-in page's CSS, package code
    assert c.post("/static/app.css").status_code == 401
    assert c.get("/static/../api/echo").status_code in (401, 404)


def test_a_remote_bind_answers_to_any_host_name_with_the_token() -> None:
    c = client(make(host="0.0.0.0", token=TOKEN), base=REMOTE)
    assert c.get("/api/echo", headers={"Host": "dash.example:8400", "Authorization": f"Bearer {TOKEN}"}).status_code == 200


# -- read-only ----------------------------------------------------------------------------------
def test_read_only_refuses_every_post_whoever_sends_it_and_still_shows() -> None:
    c = client(make(read_only=True))
    token = primed(c)
    r = c.post("/api/echo", headers={"X-CSRF-Token": token})
    assert r.status_code == 403 and r.json()["error"] == "read-only dashboard"
    p = c.post("/page", headers={"X-CSRF-Token": token})
    assert p.status_code == 403 and "read-only dashboard" in p.text and p.headers["content-type"].startswith("text/html")
    assert c.get("/page").status_code == 200
    remote = client(make(host="0.0.0.0", token=TOKEN, read_only=True), base=REMOTE)
    assert remote.post("/api/echo", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 403
    signed_in(remote)  # signing in changes nothing of the platform: allowed on a read-only screen
    assert remote.get("/api/echo").json()["user"] == "maria"


def test_a_malformed_cookie_header_is_no_cookie_not_a_crash() -> None:
    c = client(make())
    r = c.get("/api/echo", headers={"Cookie": 'funnelops_csrf="unterminated; ;;=='})
    assert r.status_code == 200 and len(r.json()["csrf"]) >= 32
