"""twostep as the provider of Apache httpd's mod_auth_openidc: a page protected the way
operators protect one, reached by an HTTP client that follows the redirects through twostep's
login like a browser, with the claims the module hands the page."""
from __future__ import annotations

import base64
import re
from html import unescape

import pytest
import requests

from provider.channels import totp_codes
from tests.fixtures.app import PASSWORD
from tests.fixtures.browser import demo_settings
from tests.support.rp import Page

PARAMS = totp_codes.TotpParameters()
TOTP = {"totp": {"type": "totp", "issuer": "Example CX"}}
FLOW = ["password", {"enroll": {"channels": ["totp"]}}, {"challenge": {"channels": ["totp"]}}]
CLIENT_ID, CLIENT_SECRET = "apache-rp", "apache-rp-secret-0123456789"


@pytest.fixture
def protected(serve, tmp_path, apache_port, apache_rp):
    """twostep with a client for Apache, and Apache in front of /protected/."""
    settings = demo_settings(tmp_path, TOTP, FLOW)
    settings["clients"].append({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                "redirect_uris": [f"http://127.0.0.1:{apache_port}/protected/redirect_uri"]})
    served = serve(settings)
    return served, apache_rp(served.url, CLIENT_ID, CLIENT_SECRET, apache_port)


def page_of(response: requests.Response) -> Page:
    assert response.status_code == 200, (response.status_code, response.url, response.text[:500])
    return Page(response.url, response.status_code, response.text)


def submit(browser: requests.Session, page: Page, **fields: str) -> Page:
    """Post a form of twostep's and follow every redirect, across hosts, like a browser."""
    return page_of(browser.post(page.form_action, data={**page.hidden(), **fields}, timeout=20))


def span(page: Page, element_id: str) -> str:
    return unescape(re.search(rf'<span id="{element_id}">([^<]*)</span>', page.html).group(1))


def test_a_page_protected_by_mod_auth_openidc(protected):
    served, apache = protected
    browser = requests.Session()
    login = page_of(browser.get(f"{apache}/protected/", timeout=20))
    assert login.url.startswith(f"{served.url}/login/") and 'name="password"' in login.html
    enrolment = submit(browser, login, username="agent", password=PASSWORD)
    b32 = unescape(re.search(r'id="secret-key"><code>([^<]+)</code>', enrolment.html).group(1)).replace(" ", "")
    secret = base64.b32decode(b32 + "=" * (-len(b32) % 8))
    code = totp_codes.code_at(secret, PARAMS, totp_codes.step_at(PARAMS, served.clock.now()))

    page = submit(browser, enrolment, otp=code)  # back to Apache, which redeems the code itself
    assert page.url == f"{apache}/protected/", page.url
    user = served.services.directory.find("agent")
    assert span(page, "sub") == user.id
    assert span(page, "remote-user") == "agent"
    assert span(page, "amr") == "pwd,otp,mfa" and span(page, "acr") == "2"
    assert span(page, "email") == "agent@example.com"

    again = page_of(browser.get(f"{apache}/protected/", timeout=20))  # mod_auth_openidc's session
    assert again.url == f"{apache}/protected/" and span(again, "sub") == user.id
    stranger = requests.get(f"{apache}/protected/", allow_redirects=False, timeout=20)
    assert stranger.status_code == 302 and stranger.headers["Location"].startswith(f"{served.url}/authorize?")
