"""The load generator's browser and relying party: plain ``http.client`` over one keep-alive
connection (as a proxy in front of twostep keeps them), so the client spends little CPU of its
own. Loopback only: the server URL is checked to be on 127.0.0.0/8 or ::1."""
from __future__ import annotations

import base64
import hashlib
import http.client
import ipaddress
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

from provider.channels import totp_codes

HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
TOTP = totp_codes.TotpParameters()
STEPS = ("authorize", "login_page", "password", "challenge_page", "otp", "token", "userinfo")


class BenchError(Exception):
    """The server answered something a login does not expect."""


def loopback_only(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"refusing to send load to {host}: the benchmark targets loopback only")
    return host, parts.port or 80


@dataclass(frozen=True)
class Client:
    """The relying party: a confidential client with PKCE, as registered in the bench settings."""

    client_id: str
    secret: str
    redirect_uri: str

    @property
    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()


@dataclass
class User:
    """A seeded user and their authenticator app: the earliest time step the server still accepts
    and that this user has not used yet (a step is accepted once per user, RFC 6238 5.2)."""

    username: str
    password: str
    secret: bytes
    last_step: int = -1

    def code(self, now: float) -> str | None:
        current = totp_codes.step_at(TOTP, now)
        # Never the step before now: the server's clock may cross into the next step before it
        # checks, and then that code is out of its window.
        step = max(current, self.last_step + 1)
        if step > current + TOTP.valid_window:
            return None  # used up for now
        self.last_step = step
        return totp_codes.code_at(self.secret, TOTP, step)


@dataclass
class UserPool:
    users: list[User]
    _next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> tuple[User, str]:
        with self._lock:
            for _ in range(len(self.users)):
                user = self.users[self._next % len(self.users)]
                self._next += 1
                code = user.code(time.time())
                if code is not None:
                    return user, code
        raise BenchError("every user has used up the codes the server accepts now: seed more users")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def location(self) -> str:
        return self.headers.get("location", "")

    def json(self) -> dict:
        return json.loads(self.body)


class Browser:
    """Cookies and one keep-alive connection; ``reset()`` makes it a new browser (no SSO)."""

    def __init__(self, base: str) -> None:
        self.host, self.port = loopback_only(base)
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        self.cookies: dict[str, str] = {}

    def reset(self) -> None:
        self.cookies.clear()

    def close(self) -> None:
        self.connection.close()

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> Response:
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.connection.request(method, path, body=body, headers=headers)
            raw = self.connection.getresponse()
        except (http.client.HTTPException, OSError):
            self.connection.close()  # a connection the server closed: open a new one, once
            self.connection.request(method, path, body=body, headers=headers)
            raw = self.connection.getresponse()
        data = raw.read()
        for cookie in raw.msg.get_all("Set-Cookie") or ():
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if value and "max-age=0" not in cookie.lower():
                self.cookies[name.strip()] = value
            else:
                self.cookies.pop(name.strip(), None)
        return Response(raw.status, {k.lower(): v for k, v in raw.getheaders()}, data)


def _expect(response: Response, status: int, step: str) -> Response:
    if response.status != status:
        raise BenchError(f"{step}: expected {status}, got {response.status}: {response.body[:200]!r}")
    return response


def _form(response: Response) -> dict[str, str]:
    return dict(HIDDEN.findall(response.body.decode("utf-8", "replace")))


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_path(client: Client, challenge: str, **extra: str) -> str:
    params = {"response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uri,
              "scope": "openid profile email offline_access", "state": secrets.token_urlsafe(12),
              "nonce": secrets.token_urlsafe(12), "code_challenge": challenge, "code_challenge_method": "S256",
              **extra}
    return "/authorize?" + urlencode(params)


def code_from(location: str, client: Client) -> str:
    if not location.startswith(client.redirect_uri):
        raise BenchError(f"expected a redirect to the client, got {location[:200]}")
    return parse_qs(urlsplit(location).query)["code"][0]


def full_login(browser: Browser, client: Client, pool: UserPool, timings: dict[str, float]) -> dict:
    """authorize -> password -> TOTP challenge -> token -> userinfo, as a new browser. Adds the
    time of each step to ``timings``; returns the token response."""
    browser.reset()
    user, otp = pool.take()
    verifier, challenge = pkce()

    def step(name: str, *args, **kwargs) -> Response:
        started = time.perf_counter()
        response = browser.request(*args, **kwargs)
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
        return response

    location = _expect(step("authorize", "GET", authorize_path(client, challenge)), 302, "authorize").location
    path = urlsplit(location).path
    page = _expect(step("login_page", "GET", path), 200, "login page")
    done = step("password", "POST", path, {**_form(page), "username": user.username, "password": user.password})
    _expect(done, 303, "password")
    page = _expect(step("challenge_page", "GET", path), 200, "challenge page")
    if b'name="otp"' not in page.body:
        raise BenchError(f"expected the TOTP challenge, got {page.body[:300]!r}")
    done = _expect(step("otp", "POST", path, {**_form(page), "otp": otp}), 303, "otp")
    code = code_from(done.location, client)
    tokens = _expect(step("token", "POST", "/token", {"grant_type": "authorization_code", "code": code,
                                                      "redirect_uri": client.redirect_uri, "code_verifier": verifier},
                          {"Authorization": client.basic}), 200, "token").json()
    _expect(step("userinfo", "GET", "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}),
            200, "userinfo")
    return tokens


def refresh(browser: Browser, client: Client, refresh_token: str) -> str:
    response = browser.request("POST", "/token", {"grant_type": "refresh_token", "refresh_token": refresh_token},
                               {"Authorization": client.basic})
    return _expect(response, 200, "refresh").json()["refresh_token"]


def silent_code(browser: Browser, client: Client) -> tuple[str, str]:
    """A code from the SSO session in ``browser`` (prompt=none): no password, no factor."""
    verifier, challenge = pkce()
    response = _expect(browser.request("GET", authorize_path(client, challenge, prompt="none")), 302, "authorize")
    return code_from(response.location, client), verifier


def redeem(browser: Browser, client: Client, code: str, verifier: str) -> None:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
            "code_verifier": verifier}
    _expect(browser.request("POST", "/token", form, {"Authorization": client.basic}), 200, "redeem")
