"""Headers every page carries (OWASP ASVS 14.4), and cookies."""
from __future__ import annotations

from tests.fixtures.app import base_settings

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def test_login_pages_carry_the_security_headers(twostep):
    rp = twostep.rp()
    page = rp.browser.get(f"{twostep.url}/authorize", params=rp.authorize_params())
    assert page.status_code == 200 and 'name="password"' in page.text
    for name, value in PAGE_HEADERS.items():
        assert page.headers.get(name) == value, name
    assert "Strict-Transport-Security" not in page.headers  # http issuer
    assert "Access-Control-Allow-Origin" not in page.headers
    error = rp.browser.get(f"{twostep.url}/login/not-a-flow-id-at-all-0000")
    for name, value in PAGE_HEADERS.items():
        assert error.headers.get(name) == value, name


def test_no_cors_on_authorize_and_login(twostep):
    rp = twostep.rp()
    response = rp.browser.options(f"{twostep.url}/authorize", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cookies_are_httponly_and_lax(twostep):
    rp = twostep.rp()
    response = rp.browser.get(f"{twostep.url}/authorize", params=rp.authorize_params(), allow_redirects=False)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_https_issuer_gets_host_prefixed_secure_cookies_and_hsts(serve, tmp_path):
    settings = base_settings(tmp_path, "memory://")
    settings["issuer"] = "https://login.example.com"  # behind a TLS-terminating proxy
    served = serve(settings)
    rp = served.rp()
    response = rp.browser.get(f"{served.url}/authorize", params=rp.authorize_params(), allow_redirects=False)
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-twostep=") and "Secure" in cookie and "Path=/" in cookie
    assert "Domain=" not in cookie


def test_token_responses_are_not_cached(twostep):
    rp = twostep.rp()
    response = rp.token_request({"grant_type": "authorization_code", "code": "nope"})
    assert response.headers["Cache-Control"] == "no-store"


def test_a_logo_elsewhere_is_allowed_by_the_csp(serve, tmp_path):
    settings = base_settings(tmp_path, "memory://")
    settings["branding"] = {"name": "Example CX", "logo_url": "https://cdn.example.com/logo.svg"}
    served = serve(settings)
    rp = served.rp()
    page = rp.browser.get(f"{served.url}/authorize", params=rp.authorize_params())
    assert page.headers["Content-Security-Policy"] == (
        "default-src 'self'; img-src 'self' data: https://cdn.example.com; frame-ancestors 'none'")
    assert 'src="https://cdn.example.com/logo.svg"' in page.text and "Example CX" in page.text
