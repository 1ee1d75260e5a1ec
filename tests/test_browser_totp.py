"""The password step and the authenticator app in a real browser, through the demo relying
party: with the mouse, the keyboard only, JavaScript disabled and on a phone-sized screen.
Every screen is checked and photographed (tests/artifacts/browser/)."""
from __future__ import annotations

import base64

import pytest

from provider.channels import totp_codes
from provider.enrollment import Enrollment
from tests.fixtures.app import PASSWORD
from tests.fixtures.browser import demo_settings

PARAMS = totp_codes.TotpParameters()
TOTP = {"totp": {"type": "totp", "issuer": "Example CX"}}
FLOW = ["password", {"enroll": {"channels": ["totp"]}}, {"challenge": {"channels": ["totp"]}}]


@pytest.fixture
def served(serve, tmp_path):
    return serve(demo_settings(tmp_path, TOTP, FLOW))


def code_now(served, secret: bytes, offset_steps: int = 0) -> str:
    step = totp_codes.step_at(PARAMS, served.clock.now()) + offset_steps
    return totp_codes.code_at(secret, PARAMS, step)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


def secret_on_page(visitor) -> bytes:
    """The key shown for manual entry, as a user would type it into the app."""
    b32 = visitor.text("#secret-key").replace(" ", "")
    return base64.b32decode(b32 + "=" * (-len(b32) % 8))


def test_enrol_the_app_then_sign_in_with_a_code(visitor, served):
    visitor.sign_in_at_demo(served.url, "agent", "not the password")
    visitor.expect("Sign in", "login-wrong-password")
    assert visitor.error_for("password") == "Incorrect username or password."
    visitor.submit("Login", password=PASSWORD)  # the username is kept

    visitor.expect("Set up your authenticator app", "totp-enrol")
    qr = visitor.page.locator("img.qr")
    assert qr.get_attribute("alt").startswith("QR code for adding Example CX to your authenticator app")
    assert qr.get_attribute("src").startswith("data:image/png;base64,")
    secret = secret_on_page(visitor)
    visitor.submit("Register", otp=wrong(code_now(served, secret)))
    visitor.expect("Set up your authenticator app", "totp-enrol-wrong-code")
    assert visitor.error_for("otp") == "That code is not correct. Try the current code from your app."
    assert secret_on_page(visitor) == secret  # the same key until it is registered
    visitor.submit("Register", otp=code_now(served, secret))

    visitor.expect("Demo application", "demo-signed-in")
    assert visitor.text("h2") == "Signed in as agent"
    assert visitor.claims()["amr"] == ["pwd", "otp", "mfa"]
    visitor.press("Sign out")  # RP-initiated logout: twostep's session ends too
    visitor.expect("Demo application", "demo-signed-out")

    served.clock.advance(PARAMS.period)  # a new code: the enrolment's one was used
    visitor.press("Sign in")
    visitor.expect("Sign in", "login-again")
    visitor.submit("Login", username="agent", password=PASSWORD)
    visitor.expect("Enter your code", "totp-challenge")
    assert not visitor.page.locator("img.qr").count()
    visitor.submit("Send", otp=code_now(served, secret))
    visitor.expect("Demo application", "demo-signed-in-again")
    claims = visitor.claims()
    assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["acr"] == "2"


@pytest.mark.parametrize("visitor", ["keyboard"], indirect=True)
def test_a_wrong_code_at_the_challenge_is_shown_under_the_field(visitor, served):
    secret = _registered(served)
    visitor.sign_in_at_demo(served.url, "agent", PASSWORD)
    visitor.expect("Enter your code", "totp-challenge")
    visitor.submit("Send", otp=code_now(served, secret, offset_steps=-4))
    visitor.expect("Enter your code", "totp-challenge-clock-skew")
    assert "The clock on your phone may be wrong" in visitor.error_for("otp")
    otp = visitor.page.locator("#otp")
    otp.fill("12ab")  # the browser itself refuses letters (pattern), before any request
    assert otp.evaluate("field => field.validity.patternMismatch && !field.form.checkValidity()")
    visitor.submit("Send", otp=code_now(served, secret))
    visitor.expect("Demo application", "demo-signed-in")


@pytest.mark.parametrize("visitor", ["keyboard", "no-js"], indirect=True)
def test_choose_a_method_then_use_another(visitor, serve, tmp_path):
    channels = {**TOTP, "backup_app": {"type": "totp", "issuer": "Example CX backup", "digits": 8}}
    both = ["totp", "backup_app"]
    served = serve(demo_settings(tmp_path, channels, ["password", {"enroll": {"channels": both}},
                                                      {"challenge": {"channels": both}}]))
    visitor.sign_in_at_demo(served.url, "agent", PASSWORD)
    visitor.expect("Set up two-step verification", "enrol-choose")
    assert visitor.page.locator("legend").text_content().startswith("Choose how you want to prove")
    visitor.press(visitor.page.locator('button[name="use"][value="backup_app"]'))
    visitor.expect("Set up your authenticator app", "totp-enrol-8-digits")
    assert visitor.page.locator("label[for=otp]").text_content() == "Enter the 8-digit code the app shows"
    eight = totp_codes.TotpParameters(digits=8)
    backup = secret_on_page(visitor)
    visitor.submit("Register", otp=totp_codes.code_at(backup, eight, totp_codes.step_at(eight, served.clock.now())))
    visitor.expect("Demo application", "demo-signed-in")

    secret = _registered(served, channel="totp")  # a second registration, used less recently
    visitor.press("Sign out")
    visitor.press("Sign in")
    visitor.submit("Login", username="agent", password=PASSWORD)
    visitor.expect("Enter your code", "totp-challenge-8-digits")  # the most recently used first
    assert "8-digit" in visitor.page.locator("label[for=otp]").text_content()
    visitor.press(visitor.page.locator('.others button[name="use"][value="totp"]'))
    visitor.expect("Enter your code", "totp-challenge-other-method")
    assert "6-digit" in visitor.page.locator("label[for=otp]").text_content()
    visitor.submit("Send", otp=code_now(served, secret))
    visitor.expect("Demo application", "demo-signed-in-again")


@pytest.mark.parametrize("visitor", ["mouse"], indirect=True)
def test_too_many_wrong_codes_then_start_again(visitor, served):
    secret = _registered(served)
    visitor.sign_in_at_demo(served.url, "agent", PASSWORD)
    bad = wrong(code_now(served, secret))
    for attempt in range(1, 6):
        visitor.expect("Enter your code", f"totp-challenge-{attempt}")
        visitor.submit("Send", otp=bad)
    visitor.expect("Sign-in problem", "too-many-codes")
    assert visitor.text(".error") == "Too many wrong codes. Start again to sign in."
    visitor.press("Start again")
    visitor.expect("Sign in", "login-restarted")


@pytest.mark.parametrize("visitor", ["phone"], indirect=True)
def test_an_expired_login_offers_to_start_again(visitor, served):
    visitor.sign_in_at_demo(served.url, "agent", PASSWORD)
    served.clock.advance(601)
    visitor.submit("Register", otp="123456")
    visitor.expect("Sign-in problem", "expired")
    assert visitor.text(".error") == "Your sign-in session expired."
    visitor.press("Start again")
    visitor.expect("Sign in", "login-restarted")


@pytest.mark.parametrize("visitor", ["keyboard"], indirect=True)
def test_no_factor_and_no_enrolment_is_explained(visitor, serve, tmp_path):
    served = serve(demo_settings(tmp_path, TOTP, ["password", {"challenge": {"channels": ["totp"]}}]))
    visitor.sign_in_at_demo(served.url, "agent", PASSWORD)
    visitor.expect("Sign-in problem", "not-set-up")
    assert "Contact your administrator" in visitor.text(".error")


@pytest.mark.parametrize("visitor", ["keyboard"], indirect=True)
def test_signing_out_from_twostep_itself_asks_first(visitor, serve, tmp_path):
    served = serve(demo_settings(tmp_path))
    visitor.sign_in_at_demo(served.url, "agent", PASSWORD)
    visitor.expect("Demo application", "demo-signed-in")
    visitor.open(f"{served.url}/logout")  # no id_token_hint: a third party could have sent us here
    visitor.expect("Sign out?", "logout-confirm")
    visitor.press("Sign out")
    visitor.expect("You are signed out", "logged-out")


def test_the_qr_code_is_displayed(open_visitor, served):
    visitor = open_visitor("mouse")
    visitor.sign_in_at_demo(served.url, "agent", PASSWORD)
    visitor.page.wait_for_load_state("load")
    assert visitor.page.locator("img.qr").evaluate("img => img.complete && img.naturalWidth") > 0
    assert not visitor.problems, visitor.problems


def test_branding_names_the_issuer_and_shows_its_logo(open_visitor, serve, tmp_path):
    settings = demo_settings(tmp_path)
    settings["branding"] = {"name": "Example CX", "logo_url": "/static/favicon.svg"}
    served = serve(settings)
    visitor = open_visitor("phone")
    visitor.open(f"{served.url}/demo/")
    visitor.press("Sign in")
    visitor.expect("Sign in", "login-branded")
    assert visitor.page.title() == "Sign in · Example CX"
    assert visitor.text("header .brand-name") == "Example CX"
    assert visitor.page.locator("header img.logo").evaluate("img => img.naturalWidth") > 0


def _registered(served, channel: str = "totp") -> bytes:
    """Register an authenticator app for `agent` directly in the store; returns its secret."""
    secret = totp_codes.new_secret(PARAMS)
    user = served.services.directory.find("agent")
    now = served.clock.now() - 3600
    served.services.enrollments.save(Enrollment(user_id=user.id, channel=channel, kind="totp", secret=secret,
                                                 phone=None, created_at=now, last_used_at=now))
    return secret
