"""Junk input never produces a 5xx: a table of malformed requests against every endpoint of
the live provider, plus a property test that throws arbitrary text into the authorization
request and the login form.

Every answer must be a 4xx (or a normal answer), never a 500 and never a stack trace; OAuth
endpoints answer RFC 6749 5.2 JSON errors, pages answer the error page. The table runs on the
memory store; the cases that reach the store with odd keys run on Redis too.
"""
from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures import app as app_fixtures
from tests.fixtures.app import PASSWORD, SECRET, Served, base_settings
from tests.support.rp import Page, RelyingParty, s256

JSON_ENDPOINTS = ("/token", "/userinfo", "/introspect", "/revoke")
TRACEBACK_MARKERS = ("Traceback", 'File "')
BIG = "x" * 100_000  # over MAX_CONTENT_LENGTH (64 kB) in a body, over the request-line limit in a URL
LONG = "x" * 60_000  # under MAX_CONTENT_LENGTH: reaches the application


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _jwt(header: Any, payload: Any, signature: bytes = b"sig") -> str:
    def part(value: Any) -> str:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}.{part(signature)}"


BASIC = {"Authorization": "Basic " + _b64(f"agent-desk:{SECRET}".encode())}
JUNK_TOKENS = {
    "dots": "a.b.c",
    "header-list": _jwt([], {}),
    "alg-none": _jwt({"alg": "none"}, {"sub": "agent"}, b""),
    "payload-list": _jwt({"alg": "RS256", "kid": 1}, [1, 2]),
    "payload-not-json": _jwt({"alg": "RS256", "typ": ["at+jwt"]}, b"\xff\xfe"),
    "kid-unknown": _jwt({"alg": "RS256", "kid": "nope", "typ": "at+jwt"}, {"sub": "agent"}),
    "long": "a" * 10_000,
}


@dataclass(frozen=True)
class Junk:
    """One malformed request. `query` is sent verbatim (already percent-encoded). A path with
    `{flow}` uses a live flow of the sending browser, and form values `{csrf_token}` and
    `{version}` are filled from its login page; `{code}` and `{refresh_token}` in a body are
    real ones, fresh for the case. `sso`: the browser signs in first. `expect`: the status,
    where the answer is not left to Authlib's discretion."""

    method: str
    path: str
    query: str = ""
    data: Any = None  # a list of (name, value) pairs, or a raw body
    json: Any = None
    files: Any = None
    headers: dict[str, Any] = field(default_factory=dict)
    sso: bool = False
    expect: int | None = None


VALID = {"response_type": "code", "client_id": "agent-desk", "redirect_uri": "https://desk.example.com/callback",
         "scope": "openid profile", "state": "s1", "nonce": "n1", "code_challenge": s256("v" * 50),
         "code_challenge_method": "S256"}
CALLBACK = quote(VALID["redirect_uri"], safe="")
BYE = "https://desk.example.com/bye"


def authz(extra: str = "", **raw: str | None) -> str:
    """A valid authorization request query with some values replaced (verbatim) or removed (None)."""
    params = {k: quote(v, safe="") for k, v in VALID.items()}
    params.update(raw)
    return "&".join(f"{k}={v}" for k, v in params.items() if v is not None) + extra


def case(id_: str, method: str, path: str, **kwargs: Any) -> Any:
    return pytest.param(Junk(method, path, **kwargs), id=id_)


def form(**kwargs: Any) -> dict[str, Any]:
    return {"headers": {"Content-Type": "application/x-www-form-urlencoded", **kwargs.pop("headers", {})},
            **kwargs}


AUTHORIZE = [
    case("authorize-nothing", "GET", "/authorize", expect=400),
    case("authorize-no-client", "GET", "/authorize", query=authz(client_id=None), expect=400),
    case("authorize-no-response-type", "GET", "/authorize", query=authz(response_type=None), expect=302),
    case("authorize-no-redirect-uri", "GET", "/authorize", query=authz(redirect_uri=None)),
    case("authorize-no-scope", "GET", "/authorize", query=authz(scope=None)),
    case("authorize-client-twice", "GET", "/authorize", query=authz("&client_id=softphone")),
    case("authorize-redirect-twice", "GET", "/authorize", query=authz("&redirect_uri=https%3A%2F%2Fevil.example")),
    case("authorize-state-twice", "GET", "/authorize", query=authz("&state=s2")),
    case("authorize-client-array", "GET", "/authorize", query=authz("&client_id[]=agent-desk", client_id=None)),
    case("authorize-unknown-client", "GET", "/authorize", query=authz(client_id="nobody"), expect=400),
    case("authorize-client-100k", "GET", "/authorize", query=authz(client_id=BIG)),
    case("authorize-nonce-60k-post", "POST", "/authorize", **form(data=authz(nonce=LONG)), expect=400),
    case("authorize-body-100k", "POST", "/authorize", **form(data=authz(nonce=BIG)), expect=413),
    case("authorize-client-nul", "GET", "/authorize", query=authz(client_id="agent-desk%00"), expect=400),
    case("authorize-redirect-nul", "GET", "/authorize",
         query=authz(redirect_uri="https%3A%2F%2Fdesk.example.com%2Fcallback%00"), expect=400),
    case("authorize-state-crlf", "GET", "/authorize", query=authz(state="a%0d%0aSet-Cookie:%20x=1%00%1b")),
    case("authorize-scope-controls", "GET", "/authorize", query=authz(scope="openid%00%01%7f%c2%85")),
    case("authorize-hint-controls", "GET", "/authorize", query=authz(login_hint="%00%08%0a%1b%e2%80%ae")),
    case("authorize-client-utf8-garbage", "GET", "/authorize", query=authz(client_id="%ff%fe"), expect=400),
    case("authorize-state-utf8-garbage", "GET", "/authorize", query=authz(state="%ff%fe%c0%af")),
    case("authorize-name-utf8-garbage", "GET", "/authorize", query=authz("&%ff%fe=%ff")),
    case("authorize-bad-escapes", "GET", "/authorize", query=authz("&x=%zz%%", state="%g0%")),
    case("authorize-response-type-token", "GET", "/authorize", query=authz(response_type="token"), expect=302),
    case("authorize-response-type-junk", "GET", "/authorize", query=authz(response_type="code%00id_token"),
         expect=302),
    case("authorize-prompt-junk", "GET", "/authorize", query=authz(prompt="none%20login%20%00")),
    case("authorize-max-age-negative", "GET", "/authorize", query=authz(max_age="-1"), expect=302),
    case("authorize-max-age-huge", "GET", "/authorize", query=authz(max_age="9" * 40), expect=302),
    case("authorize-max-age-superscript", "GET", "/authorize", query=authz(max_age="%c2%b2")),
    case("authorize-max-age-superscript-sso", "GET", "/authorize", query=authz(max_age="%c2%b2"), sso=True),
    case("authorize-max-age-arabic-sso", "GET", "/authorize", query=authz(max_age="%d9%a3"), sso=True),
    case("authorize-pkce-method-junk", "GET", "/authorize", query=authz(code_challenge_method="S256%00"),
         expect=302),
    case("authorize-pkce-challenge-junk", "GET", "/authorize", query=authz(code_challenge="%ff" * 50),
         expect=302),
    case("authorize-url-for-endpoint", "GET", "/authorize", query=authz("&endpoint=x")),
    case("authorize-url-for-scheme", "GET", "/authorize", query=authz("&_scheme=javascript")),
    case("authorize-url-for-external", "GET", "/authorize", query=authz("&_external=1&_anchor=x&_method=PUT")),
    case("authorize-post-json", "POST", "/authorize", json=VALID, expect=400),
    case("authorize-post-multipart", "POST", "/authorize", files={k: (None, v) for k, v in VALID.items()}),
    case("authorize-post-repeated", "POST", "/authorize", **form(data=authz("&client_id=nobody"))),
    case("authorize-head", "HEAD", "/authorize", query=authz(state="%00"), expect=302),
    case("authorize-put", "PUT", "/authorize", query=authz(), expect=405),
    case("authorize-host-junk", "GET", "/authorize", query=authz(), headers={"Host": "evil.example"}),
    case("authorize-host-bracket", "GET", "/authorize", query=authz(), headers={"Host": "[::1"}),
    case("authorize-session-cookie-junk", "GET", "/authorize", query=authz(),
         headers={"Cookie": "twostep=!!!.%ff.\x01junk"}),
    case("authorize-sso-cookie-junk", "GET", "/authorize", query=authz(), headers={"Cookie": "twostep_sso=%00%ff;"}),
    case("authorize-sso-cookie-long", "GET", "/authorize", query=authz(),
         headers={"Cookie": "twostep_sso=" + "a" * 4000}),
    case("authorize-sso-cookie-controls-sso", "GET", "/authorize", query=authz(prompt="none"),
         headers={"Cookie": "twostep_sso=\x01\x7f\"x\""}, expect=302),
]

TOKEN = [
    case("token-empty", "POST", "/token", **form(data=""), expect=400),
    case("token-no-auth", "POST", "/token", **form(data="grant_type=authorization_code&code=x"), expect=401),
    case("token-grant-unknown", "POST", "/token", **form(data="grant_type=password&username=a", headers=BASIC),
         expect=400),
    case("token-grant-nul", "POST", "/token", **form(data="grant_type=authorization_code%00", headers=BASIC),
         expect=400),
    case("token-grant-twice", "POST", "/token",
         **form(data="grant_type=authorization_code&grant_type=refresh_token&code=x", headers=BASIC), expect=400),
    case("token-grant-array", "POST", "/token", **form(data="grant_type[]=refresh_token", headers=BASIC),
         expect=400),
    case("token-code-missing", "POST", "/token", **form(data="grant_type=authorization_code", headers=BASIC),
         expect=400),
    case("token-code-junk", "POST", "/token",
         **form(data="grant_type=authorization_code&code=%00%ff%fe&code_verifier=%01", headers=BASIC), expect=400),
    case("token-code-twice", "POST", "/token",
         **form(data="grant_type=authorization_code&code=a&code=b", headers=BASIC), expect=400),
    case("token-code-60k", "POST", "/token",
         **form(data="grant_type=authorization_code&code=" + LONG, headers=BASIC), expect=400),
    case("token-body-100k", "POST", "/token",
         **form(data="grant_type=authorization_code&code=" + BIG, headers=BASIC), expect=413),
    case("token-refresh-junk", "POST", "/token",
         **form(data="grant_type=refresh_token&refresh_token=%ff%fe%00&scope=%00", headers=BASIC), expect=400),
    case("token-refresh-missing", "POST", "/token", **form(data="grant_type=refresh_token", headers=BASIC),
         expect=400),
    case("token-raw-invalid-utf8", "POST", "/token",
         **form(data=b"grant_type=refresh_token&refresh_token=\xff\xfe\x00", headers=BASIC), expect=400),
    case("token-json-body", "POST", "/token", json={"grant_type": "refresh_token", "refresh_token": "x"},
         headers=BASIC, expect=400),
    case("token-multipart", "POST", "/token", files={"grant_type": (None, "refresh_token"),
                                                     "refresh_token": ("rt.txt", b"\xff")}, headers=BASIC),
    case("token-client-array", "POST", "/token",
         **form(data=f"grant_type=refresh_token&refresh_token=x&client_id[]=agent-desk&client_secret={SECRET}"),
         expect=401),
    case("token-client-twice", "POST", "/token",
         **form(data=f"grant_type=refresh_token&refresh_token=x&client_id=agent-desk&client_id=softphone"
                     f"&client_secret={SECRET}")),
    case("token-unknown-client", "POST", "/token",
         **form(data="grant_type=refresh_token&refresh_token=x",
                headers={"Authorization": "Basic " + _b64(b"nobody:pw")}), expect=401),
    case("token-public-client-nul", "POST", "/token",
         **form(data="grant_type=refresh_token&refresh_token=x&client_id=softphone%00"), expect=400),
    case("token-basic-bangs", "POST", "/token",
         **form(data="grant_type=refresh_token&refresh_token=x", headers={"Authorization": "Basic !!!"}), expect=401),
    case("token-basic-no-colon", "POST", "/token",
         **form(data="grant_type=refresh_token&refresh_token=x",
                headers={"Authorization": "Basic " + _b64(b"agent-desk")}), expect=401),
    case("token-basic-invalid-utf8", "POST", "/token",
         **form(data="grant_type=refresh_token&refresh_token=x",
                headers={"Authorization": "Basic " + _b64(b"\xff\xfe:\xc0")}), expect=401),
    case("token-basic-non-ascii", "POST", "/token",
         **form(data="grant_type=refresh_token&refresh_token=x",
                headers={"Authorization": "Basic ÿé€".encode()}), expect=401),
    case("token-basic-escapes", "POST", "/token",
         **form(data="grant_type=refresh_token&refresh_token=x",
                headers={"Authorization": "Basic " + _b64(b"agent-desk%ff%00:%zz")}), expect=401),
    case("token-basic-empty", "POST", "/token",
         **form(data="grant_type=refresh_token&refresh_token=x", headers={"Authorization": "Basic   "}),
         expect=401),
    case("token-basic-and-post-secret", "POST", "/token",
         **form(data=f"grant_type=refresh_token&refresh_token=x&client_id=agent-desk&client_secret={SECRET}",
                headers=BASIC), expect=400),
    case("token-bearer-10k", "POST", "/token",
         **form(data="grant_type=refresh_token&refresh_token=x", headers={"Authorization": "Bearer " + "a" * 10_000}),
         expect=401),
    case("token-host-junk", "POST", "/token",
         **form(data="grant_type=refresh_token&refresh_token=x", headers={**BASIC, "Host": "evil.example"}),
         expect=400),
    case("token-real-code-verifier-junk", "POST", "/token", **form(
        data=f"grant_type=authorization_code&code={{code}}&redirect_uri={CALLBACK}&code_verifier=%00%ff%fe",
        headers=BASIC), expect=400),
    case("token-real-code-redirect-junk", "POST", "/token", **form(
        data="grant_type=authorization_code&code={code}&redirect_uri=%00%ff", headers=BASIC), expect=400),
    case("token-real-code-twice", "POST", "/token", **form(
        data=f"grant_type=authorization_code&code={{code}}&code=%00&redirect_uri={CALLBACK}", headers=BASIC)),
    case("token-real-refresh-scope-junk", "POST", "/token", **form(
        data="grant_type=refresh_token&refresh_token={refresh_token}&scope=openid%00%ff%20admin", headers=BASIC),
        expect=400),
    case("token-charset-utf16", "POST", "/token", **form(
        data="grant_type=refresh_token&refresh_token=x".encode("utf-16"),
        headers={**BASIC, "Content-Type": "application/x-www-form-urlencoded; charset=utf-16"}), expect=400),
    case("token-options", "OPTIONS", "/token", expect=200),
    case("token-get", "GET", "/token", query="grant_type=refresh_token", expect=405),
    case("token-delete", "DELETE", "/token", expect=405),
]

USERINFO = [
    case("userinfo-no-token", "GET", "/userinfo", expect=401),
    case("userinfo-bearer-empty", "GET", "/userinfo", headers={"Authorization": "Bearer "}, expect=401),
    *[case(f"userinfo-bearer-{name}", "GET", "/userinfo", headers={"Authorization": f"Bearer {token}"},
           expect=401) for name, token in JUNK_TOKENS.items()],
    case("userinfo-bearer-non-ascii", "GET", "/userinfo", headers={"Authorization": "Bearer ÿ€.é.x".encode()},
         expect=401),
    case("userinfo-basic-bangs", "GET", "/userinfo", headers={"Authorization": "Basic !!!"}, expect=401),
    case("userinfo-post-form-junk", "POST", "/userinfo", **form(data="access_token=%ff%fe%00&access_token=x"),
         expect=401),
    case("userinfo-post-form-60k", "POST", "/userinfo", **form(data="access_token=" + LONG), expect=401),
    case("userinfo-post-json", "POST", "/userinfo", json={"access_token": "x"}, expect=401),
    case("userinfo-post-multipart", "POST", "/userinfo", files={"access_token": (None, "x")}, expect=401),
    case("userinfo-post-100k", "POST", "/userinfo", **form(data="access_token=" + BIG), expect=413),
    case("userinfo-put", "PUT", "/userinfo", expect=405),
]

INTROSPECT_REVOKE = [
    case("introspect-no-auth", "POST", "/introspect", **form(data="token=x"), expect=401),
    case("introspect-no-token", "POST", "/introspect", **form(data="", headers=BASIC), expect=400),
    case("introspect-token-junk", "POST", "/introspect", **form(data="token=%00%ff%fe", headers=BASIC)),
    case("introspect-token-twice", "POST", "/introspect", **form(data="token=a&token=b", headers=BASIC)),
    case("introspect-token-60k", "POST", "/introspect", **form(data="token=" + LONG, headers=BASIC)),
    case("introspect-jwt-junk", "POST", "/introspect",
         **form(data="token=" + JUNK_TOKENS["payload-list"], headers=BASIC)),
    case("introspect-hint-junk", "POST", "/introspect",
         **form(data="token=x&token_type_hint=%00id_token", headers=BASIC)),
    case("introspect-basic-invalid-utf8", "POST", "/introspect",
         **form(data="token=x", headers={"Authorization": "Basic " + _b64(b"\xff:\xff")}), expect=401),
    case("introspect-public-client", "POST", "/introspect", **form(data="token=x&client_id=softphone"),
         expect=401),
    case("introspect-json", "POST", "/introspect", json={"token": "x"}, headers=BASIC, expect=400),
    case("introspect-get", "GET", "/introspect", expect=405),
    case("revoke-no-auth", "POST", "/revoke", **form(data="token=x"), expect=401),
    case("revoke-no-token", "POST", "/revoke", **form(data="", headers=BASIC), expect=400),
    case("revoke-token-junk", "POST", "/revoke", **form(data="token=%00%ff%fe&token_type_hint=refresh_token",
                                                            headers=BASIC), expect=200),
    case("revoke-public-client-junk", "POST", "/revoke", **form(data="token=%01&client_id=softphone&client_id=x")),
    case("revoke-basic-non-ascii", "POST", "/revoke",
         **form(data="token=x", headers={"Authorization": "Basic é".encode()}), expect=401),
    case("revoke-multipart", "POST", "/revoke", files={"token": ("t", b"\x00\xff")}, headers=BASIC),
    case("revoke-get", "GET", "/revoke", expect=405),
]

LOGOUT = [
    case("logout-nothing", "GET", "/logout", expect=200),
    *[case(f"logout-hint-{name}", "GET", "/logout", query=f"id_token_hint={quote(token)}", sso=True, expect=200)
      for name, token in JUNK_TOKENS.items()],
    case("logout-hint-controls", "GET", "/logout", query="id_token_hint=%00%ff.%01.%fe", expect=200),
    case("logout-return-unregistered", "GET", "/logout", query="post_logout_redirect_uri=%ff%00", expect=400),
    case("logout-client-array", "GET", "/logout",
         query="client_id[]=agent-desk&post_logout_redirect_uri=https%3A%2F%2Fdesk.example.com%2Fbye", expect=400),
    case("logout-client-twice", "GET", "/logout",
         query="client_id=nobody&client_id=agent-desk&post_logout_redirect_uri=https%3A%2F%2Fdesk.example.com%2Fbye"),
    case("logout-client-nul", "GET", "/logout", query="client_id=%00&state=%0d%0a", expect=200),
    case("logout-return-state-controls", "GET", "/logout",
         query=f"client_id=agent-desk&post_logout_redirect_uri={quote(BYE, safe='')}&state=%0d%0aX:%00%ff",
         expect=303),
    case("logout-confirm-no-csrf", "POST", "/logout", **form(data="confirm=yes"), sso=True, expect=400),
    case("logout-confirm-junk", "POST", "/logout", **form(data="confirm=%ff&confirm=yes&csrf_token=%00"),
         sso=True, expect=200),
    case("logout-post-100k", "POST", "/logout", **form(data="state=" + BIG), expect=413),
    case("logout-sso-cookie-junk", "GET", "/logout", headers={"Cookie": "twostep_sso=%ff%fe; twostep=%00"},
         expect=200),
    case("logout-put", "PUT", "/logout", expect=405),
]

LOGIN_BOGUS = ["x", "a" * 24, "a" * 64, "a" * 5000, "%00" * 20, "%ff%fe" * 10, "%e2%80%ae" * 8, "..%2f..%2fetc"]
LIVE = [("csrf_token", "{csrf_token}"), ("version", "{version}")]

LOGIN = [
    *[case(f"login-get-bogus-{i}", "GET", f"/login/{flow_id}", expect=404 if "%2f" in flow_id else 410)
      for i, flow_id in enumerate(LOGIN_BOGUS)],
    case("login-post-bogus", "POST", "/login/" + "a" * 32, data=[("username", "agent")], expect=400),
    case("login-get-live", "GET", "/login/{flow}", expect=200),
    case("login-get-live-cookie-junk", "GET", "/login/{flow}", headers={"Cookie": "twostep=junk\x01"}, expect=410),
    case("login-get-live-junk-query", "GET", "/login/{flow}", query="version=%ff&%00=%00", expect=200),
    case("login-post-nothing", "POST", "/login/{flow}", data=[], expect=400),
    case("login-post-no-version", "POST", "/login/{flow}", data=[LIVE[0], ("username", "agent")], expect=303),
    case("login-post-version-junk", "POST", "/login/{flow}", data=[LIVE[0], ("version", "%ff\x00")], expect=303),
    case("login-post-version-twice", "POST", "/login/{flow}", data=[*LIVE, ("version", "9")], expect=303),
    case("login-post-csrf-twice", "POST", "/login/{flow}", data=[("csrf_token", "x"), *LIVE], expect=400),
    case("login-post-empty-fields", "POST", "/login/{flow}", data=[*LIVE, ("username", ""), ("password", "")],
         expect=303),
    case("login-post-username-60k", "POST", "/login/{flow}", data=[*LIVE, ("username", LONG), ("password", "x")],
         expect=303),
    case("login-post-password-60k", "POST", "/login/{flow}", data=[*LIVE, ("username", "agent"), ("password", LONG)],
         expect=303),
    case("login-post-100k", "POST", "/login/{flow}", data=[*LIVE, ("username", BIG)], expect=413),
    case("login-post-nul", "POST", "/login/{flow}",
         data=[*LIVE, ("username", "agent\x00"), ("password", PASSWORD + "\x00")], expect=303),
    case("login-post-controls", "POST", "/login/{flow}",
         data=[*LIVE, ("username", "\x1b[31m\r\n\u202e\ufeff"), ("password", "\x7f\x08")], expect=303),
    case("login-post-username-twice", "POST", "/login/{flow}",
         data=[*LIVE, ("username", "nobody"), ("username", "agent"), ("password", PASSWORD)], expect=303),
    case("login-post-username-array", "POST", "/login/{flow}",
         data=[*LIVE, ("username[]", "agent"), ("password[]", PASSWORD)], expect=303),
    case("login-post-raw-invalid-utf8", "POST", "/login/{flow}",
         data=b"username=\xff\xfe%ff&password=\xc0\xaf", headers={"Content-Type": "application/x-www-form-urlencoded"},
         expect=400),
    case("login-post-json", "POST", "/login/{flow}", json={"username": "agent", "password": PASSWORD}, expect=400),
    case("login-post-multipart", "POST", "/login/{flow}",
         files={"csrf_token": (None, "{csrf_token}"), "version": (None, "{version}"),
                "username": ("u.txt", b"agent"), "password": (None, "\x00")}, expect=303),
    case("login-put", "PUT", "/login/{flow}", expect=405),
]

PUBLIC = [
    case("jwks-junk-query", "GET", "/jwks", query="%ff%fe=%00&kid[]=x", expect=200),
    case("jwks-post", "POST", "/jwks", **form(data="x=1"), expect=405),
    case("jwks-cookie-junk", "GET", "/jwks", headers={"Cookie": "twostep=%ff; twostep_sso=\x01"}, expect=200),
    case("discovery-junk-query", "GET", "/.well-known/openid-configuration", query="%00=%ff", expect=200),
    case("discovery-host-junk", "GET", "/.well-known/openid-configuration", headers={"Host": "[::1"}, expect=200),
    case("discovery-post", "POST", "/.well-known/openid-configuration", json={}, expect=405),
    case("discovery-trace", "TRACE", "/.well-known/openid-configuration", expect=405),
    case("unknown-path-junk", "GET", "/%ff%fe/%00", expect=404),
]

ON_REDIS = {
    "authorize-client-nul", "authorize-sso-cookie-junk", "authorize-sso-cookie-controls-sso",
    "authorize-max-age-superscript-sso", "token-code-junk", "token-refresh-junk", "token-public-client-nul",
    "userinfo-bearer-kid-unknown", "introspect-token-junk", "revoke-token-junk", "logout-sso-cookie-junk",
    "login-get-bogus-4", "login-get-bogus-5", "login-post-nul", "login-post-controls",
}
TABLE = AUTHORIZE + TOKEN + USERINFO + INTROSPECT_REVOKE + LOGOUT + LOGIN + PUBLIC
REDIS_TABLE = [pytest.param(*p.values, id=p.id, marks=pytest.mark.redis) for p in TABLE if p.id in ON_REDIS]


def _serve_for_module(tmp_path_factory: pytest.TempPathFactory, state_url: str) -> Iterator[Served]:
    """The `serve` fixture's own code, run once for the whole module: a server per test would
    spend half a second in each teardown."""
    tmp_path = tmp_path_factory.mktemp("junk")
    starter = app_fixtures.serve.__wrapped__(tmp_path)
    start = next(starter)
    yield start(base_settings(tmp_path, state_url))
    next(starter, None)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve_for_module(tmp_path_factory, "memory://")


@pytest.fixture(scope="module")
def signed_in_rp(provider: Served) -> RelyingParty:
    """A browser with an SSO session, shared by the examples of a property test."""
    rp = provider.rp()
    rp.sign_in("agent", PASSWORD)
    return rp


@pytest.fixture(scope="module")
def redis_provider(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Served]:
    yield from _serve_for_module(tmp_path_factory, redis_url)


def send(served: Served, junk: Junk) -> requests.Response:
    rp = served.rp()
    if junk.sso:
        rp.sign_in("agent", PASSWORD)
    fill = _live_values(rp, junk)
    if isinstance(junk.data, list):
        data = [(k, fill.get(v, v)) for k, v in junk.data]
    elif isinstance(junk.data, str):
        data = junk.data
        for placeholder, value in fill.items():
            data = data.replace(placeholder, quote(value, safe=""))
    else:
        data = junk.data
    files = {k: (name, fill.get(v, v)) for k, (name, v) in junk.files.items()} if junk.files else None
    url = f"{served.url}{junk.path.replace('{flow}', fill.get('{flow}', ''))}" + (
        f"?{junk.query}" if junk.query else "")
    return rp.browser.request(junk.method, url, data=data, json=junk.json, files=files, headers=junk.headers,
                              allow_redirects=False, timeout=10)


def _live_values(rp: RelyingParty, junk: Junk) -> dict[str, str]:
    """Real values for the placeholders a case uses: a flow of this browser with its form's
    hidden fields, a fresh authorization code, a refresh token."""
    text, fill = repr(junk), {}
    if "{flow}" in junk.path:
        page = rp.authorize()
        assert isinstance(page, Page) and page.status == 200, page
        fill["{flow}"] = page.url.rsplit("/", 1)[1]
        fill.update({f"{{{name}}}": value for name, value in page.hidden().items()})
    if "{code}" in text:
        fill["{code}"] = rp.sign_in("agent", PASSWORD).params["code"]
    if "{refresh_token}" in text:
        fill["{refresh_token}"] = rp.login_tokens("agent", PASSWORD)["refresh_token"]
    return fill


def check(response: requests.Response, junk: Junk) -> None:
    body = response.text
    assert response.status_code < 500, body[:2000]
    for marker in TRACEBACK_MARKERS:
        assert marker not in body, body[:2000]
    if junk.expect is not None:
        assert response.status_code == junk.expect, body[:500]
    if response.status_code in (414, 431) or response.status_code < 400:
        return  # 414/431: refused by the HTTP server before the application saw it
    if junk.path in JSON_ENDPOINTS:
        assert response.headers["Content-Type"].startswith("application/json"), body[:500]
        assert isinstance(response.json().get("error"), str)  # RFC 6749 5.2, RFC 6750 3.1
    else:
        assert response.headers["Content-Type"].startswith("text/html"), body[:500]
        assert "Sign-in problem" in body


@pytest.mark.parametrize("junk", TABLE)
def test_junk_is_refused_without_a_server_error(provider: Served, junk: Junk) -> None:
    check(send(provider, junk), junk)


@pytest.mark.parametrize("junk", REDIS_TABLE)
def test_junk_is_refused_without_a_server_error_on_redis(redis_provider: Served, junk: Junk) -> None:
    check(send(redis_provider, junk), junk)


def test_restart_link_is_a_local_path(provider: Served) -> None:
    """Parameters named like url_for's own (`_external`, `_scheme`, `_anchor`) stay parameters."""
    rp = provider.rp()
    page = rp.authorize(_external="1", _scheme="https", _anchor="x", endpoint="y")
    assert isinstance(page, Page) and page.status == 200
    expired = rp.browser.get(f"{provider.url}/login/" + "a" * 32, timeout=10)
    assert expired.status_code == 410
    restart = re.search(r'href="([^"]*)">Start again', expired.text)
    assert restart, expired.text
    assert restart.group(1).startswith("/authorize?") and "#" not in restart.group(1)
    assert "_external=1" in restart.group(1) and "endpoint=y" in restart.group(1)


# -- property tests ------------------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8"), max_size=80)  # control characters included, no surrogates
AUTHORIZE_PARAMS = [*VALID, "prompt", "max_age", "login_hint", "ui_locales", "acr_values", "claims", "display",
                    "request", "request_uri", "id_token_hint", "response_mode"]


@settings(max_examples=50, deadline=None)
@given(overrides=st.dictionaries(st.sampled_from(AUTHORIZE_PARAMS), TEXT, min_size=1, max_size=4),
       signed_in=st.booleans())
def test_arbitrary_authorization_requests_never_fail_the_server(
        provider: Served, signed_in_rp: RelyingParty, overrides: dict[str, str], signed_in: bool) -> None:
    rp = signed_in_rp if signed_in else provider.rp()
    response = rp.browser.get(f"{provider.url}/authorize", params=rp.authorize_params(**overrides),
                              allow_redirects=False, timeout=10)
    assert response.status_code < 500, response.text[:2000]
    assert "Traceback" not in response.text


@settings(max_examples=50, deadline=None)
@given(fields=st.fixed_dictionaries({}, optional={"username": TEXT, "password": TEXT, "version": TEXT,
                                                  "csrf_token": TEXT}))
def test_arbitrary_login_forms_never_fail_the_server(provider: Served, fields: dict[str, str]) -> None:
    rp = provider.rp()
    page = rp.authorize()
    assert isinstance(page, Page)
    response = rp.browser.post(page.form_action, data={**page.hidden(), **fields}, allow_redirects=False,
                               timeout=10)
    assert response.status_code < 500, response.text[:2000]
    assert "Traceback" not in response.text
    assert rp.browser.get(page.url, timeout=10).status_code < 500


TOKEN_FIELDS = ["grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "client_id",
                "client_secret", "scope"]
CONTENT_TYPES = ["application/x-www-form-urlencoded", "application/json", "text/plain", "multipart/form-data",
                 "application/x-www-form-urlencoded; charset=utf-16", ""]


@settings(max_examples=60, deadline=None)
@given(fields=st.dictionaries(st.sampled_from(TOKEN_FIELDS), TEXT, max_size=6),
       content_type=st.sampled_from(CONTENT_TYPES), basic=st.booleans())
def test_arbitrary_token_requests_never_fail_the_server(
        provider: Served, fields: dict[str, str], content_type: str, basic: bool) -> None:
    from urllib.parse import urlencode

    headers = {"Content-Type": content_type} if content_type else {}
    auth = (b"agent-desk", fields.get("client_secret", "x").encode()) if basic else None
    response = requests.post(f"{provider.url}/token", data=urlencode(fields).encode(), headers=headers,
                             auth=auth, timeout=10)
    assert response.status_code < 500, response.text[:2000]
    assert response.headers["Content-Type"].startswith("application/json")
    assert "error" in response.json()
