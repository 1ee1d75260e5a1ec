"""twostep as the provider of a real relying party from another project: openid-client v6
(npm, certified by the OpenID Foundation as an RP), confidential and public, through the
password and authenticator-app steps. The test plays the user's browser."""
from __future__ import annotations

import base64
import re
from html import unescape

import pytest

from provider.channels import totp_codes
from tests.fixtures.app import PASSWORD, SECRET
from tests.fixtures.browser import demo_settings
from tests.support.rp import Callback, Page

PARAMS = totp_codes.TotpParameters()
TOTP = {"totp": {"type": "totp", "issuer": "Example CX"}}
FLOW = ["password", {"enroll": {"channels": ["totp"]}}, {"challenge": {"channels": ["totp"]}}]


@pytest.fixture
def served(serve, tmp_path):
    return serve(demo_settings(tmp_path, TOTP, FLOW))


def sign_in_with_totp_enrolment(served, rp, authorization_url: str) -> Callback:
    """The user's browser: from the application's authorization URL back to its redirect URI."""
    page = rp.follow(rp.browser.get(authorization_url, allow_redirects=False))
    assert isinstance(page, Page) and 'name="password"' in page.html, page
    enrolment = rp.submit(page, username="agent", password=PASSWORD)
    assert isinstance(enrolment, Page) and ">Register</button>" in enrolment.html, enrolment
    b32 = unescape(re.search(r'id="secret-key"><code>([^<]+)</code>', enrolment.html).group(1)).replace(" ", "")
    secret = base64.b32decode(b32 + "=" * (-len(b32) % 8))
    code = totp_codes.code_at(secret, PARAMS, totp_codes.step_at(PARAMS, served.clock.now()))
    callback = rp.submit(enrolment, otp=code)
    assert isinstance(callback, Callback), getattr(callback, "error", callback)
    return callback


@pytest.mark.parametrize("client", ["confidential", "public"])
def test_openid_client_signs_in_validates_and_refreshes(served, openid_client_rp, client):
    rp = served.rp() if client == "confidential" else served.public_rp()
    app = openid_client_rp(served.url, rp.client_id, SECRET if client == "confidential" else None, rp.redirect_uri)
    assert app.authorization_url.startswith(f"{served.url}/authorize?")
    callback = sign_in_with_totp_enrolment(served, rp, app.authorization_url)
    assert callback.params["iss"] == served.url  # RFC 9207, which openid-client checks too

    result = app.finish(callback.url)
    claims = result["claims"]
    user = served.services.directory.find("agent")
    assert claims["iss"] == served.url and claims["aud"] == rp.client_id and claims["sub"] == user.id
    assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["acr"] == "2"
    assert result["token_type"].lower() == "bearer"
    assert result["userinfo"]["sub"] == user.id
    assert result["userinfo"]["email"] == "agent@example.com"
    refreshed = result["refreshed"]
    assert refreshed["access_token_changed"] and refreshed["refresh_token_rotated"]
    assert refreshed["userinfo"]["preferred_username"] == "agent"
    if refreshed["claims"] is not None:  # an ID token on refresh is optional (OIDC Core 12.2)
        assert refreshed["claims"]["sub"] == user.id and refreshed["claims"]["aud"] == rp.client_id

