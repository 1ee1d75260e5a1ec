"""The demo relying party: a newcomer's whole round trip, over real HTTP."""
from __future__ import annotations

import re
from html import unescape

from tests.fixtures.app import PASSWORD, base_settings
from tests.support.rp import Page


def demo_settings(tmp_path):
    settings = base_settings(tmp_path, "memory://")
    settings["clients"].append({
        "client_id": "demo-rp", "client_secret": "demo-rp-secret-0123456789",
        "redirect_uris": ["{issuer}/demo/callback"], "post_logout_redirect_uris": ["{issuer}/demo/"]})
    settings["demo"] = {"relying_party": "demo-rp"}
    return settings


def test_demo_signs_in_and_shows_the_claims(serve, tmp_path):
    served = serve(demo_settings(tmp_path))
    rp = served.rp()  # only its browser and page helpers are used here
    home = rp.follow(rp.browser.get(f"{served.url}/demo/", allow_redirects=False))
    assert isinstance(home, Page) and "Sign in" in home.html
    login = rp.submit(home)
    assert isinstance(login, Page) and 'autocomplete="current-password"' in login.html
    result = rp.submit(login, username="agent", password=PASSWORD)
    assert isinstance(result, Page), result
    assert "Signed in as agent" in result.html
    claims = unescape(re.search(r'<pre id="claims">(.*?)</pre>', result.html, re.S).group(1))
    assert '"amr": [\n    "pwd"\n  ]' in claims
    assert '"iss": "' + served.url + '"' in claims
    userinfo = unescape(re.search(r'<pre id="userinfo">(.*?)</pre>', result.html, re.S).group(1))
    assert '"email": "agent@example.com"' in userinfo

    signed_out = rp.submit(result)  # the Sign out form: RP-initiated logout with id_token_hint
    assert isinstance(signed_out, Page) and "Sign in" in signed_out.html
    again = rp.submit(signed_out)
    assert isinstance(again, Page) and 'name="password"' in again.html  # the SSO session ended


def test_demo_pages_exist_only_when_configured(twostep):
    rp = twostep.rp()
    assert rp.browser.get(f"{twostep.url}/demo/").status_code == 404
