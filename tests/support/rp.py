"""A relying party and its user's browser, over real HTTP: the flow driver of the tests.

It does what an application and a browser do: build the authorization request (with PKCE),
follow twostep's pages, fill the forms (with their CSRF token), catch the redirect back to the
application and redeem the code at the token endpoint.
"""
from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class Page:
    """An HTML page of twostep's, with its first form's action and fields."""

    url: str
    status: int
    html: str

    @property
    def form_action(self) -> str:
        match = re.search(r'<form[^>]*action="([^"]*)"', self.html)
        assert match, f"no form on {self.url}: {self.html[:500]}"
        return urljoin(self.url, unescape(match.group(1)))

    def hidden(self) -> dict[str, str]:
        fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', self.html)
        return {name: unescape(value) for name, value in fields}

    def field_value(self, name: str) -> str | None:
        match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', self.html)
        return unescape(match.group(1)) if match else None

    @property
    def error(self) -> str | None:
        match = re.search(r'class="error"[^>]*>([^<]*)<', self.html)
        return unescape(match.group(1)) if match else None


@dataclass
class Callback:
    """Where twostep sent the browser back to the application."""

    url: str
    params: dict[str, str]


@dataclass
class RelyingParty:
    base: str
    client_id: str
    client_secret: str | None
    redirect_uri: str
    browser: requests.Session = field(default_factory=requests.Session)
    verifier: str = ""
    nonce: str = ""
    state: str = ""

    def authorize_params(self, **overrides: Any) -> dict[str, str]:
        self.verifier = secrets.token_urlsafe(48)
        self.nonce = secrets.token_urlsafe(12)
        self.state = secrets.token_urlsafe(12)
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                  "scope": "openid profile email offline_access", "state": self.state, "nonce": self.nonce,
                  "code_challenge": s256(self.verifier), "code_challenge_method": "S256"}
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    def authorize(self, **overrides: Any) -> Page | Callback:
        response = self.browser.get(f"{self.base}/authorize", params=self.authorize_params(**overrides),
                                    allow_redirects=False)
        return self.follow(response)

    def follow(self, response: requests.Response) -> Page | Callback:
        """Follow redirects inside twostep; stop at the application's redirect URI."""
        while response.status_code in (302, 303):
            location = urljoin(response.url, response.headers["Location"])
            if not location.startswith(self.base + "/"):
                return Callback(location, {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()})
            response = self.browser.get(location, allow_redirects=False)
        return Page(response.url, response.status_code, response.text)

    def submit(self, page: Page, **fields: str) -> Page | Callback:
        data = {**page.hidden(), **fields}
        response = self.browser.post(page.form_action, data=data, allow_redirects=False)
        assert response.status_code in (303, 400, 403, 410), response.status_code
        return self.follow(response)

    def sign_in(self, username: str, password: str, **overrides: Any) -> Callback:
        page = self.authorize(**overrides)
        assert isinstance(page, Page), page
        result = self.submit(page, username=username, password=password)
        assert isinstance(result, Callback), getattr(result, "error", result)
        return result

    def token_request(self, data: dict[str, str]) -> requests.Response:
        auth = (self.client_id, self.client_secret) if self.client_secret else None
        if auth is None:
            data = {**data, "client_id": self.client_id}
        return requests.post(f"{self.base}/token", data=data, auth=auth, timeout=10)

    def redeem(self, code: str, verifier: str | None = None) -> requests.Response:
        return self.token_request({"grant_type": "authorization_code", "code": code,
                                   "redirect_uri": self.redirect_uri,
                                   "code_verifier": verifier if verifier is not None else self.verifier})

    def refresh(self, refresh_token: str) -> requests.Response:
        return self.token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def userinfo(self, access_token: str) -> requests.Response:
        return requests.get(f"{self.base}/userinfo", headers={"Authorization": f"Bearer {access_token}"}, timeout=10)

    def login_tokens(self, username: str, password: str, **overrides: Any) -> dict[str, Any]:
        callback = self.sign_in(username, password, **overrides)
        response = self.redeem(callback.params["code"])
        assert response.status_code == 200, response.text
        return response.json()
