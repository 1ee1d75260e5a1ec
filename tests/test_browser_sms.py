"""The SMS screens in a real browser, through the demo relying party: the confirmation as a modal
<dialog> with JavaScript and as a plain page without, and the Resend OTP countdown.
Screenshots go to tests/artifacts/browser/."""
from __future__ import annotations

import re

import pytest

from tests.fixtures.app import PASSWORD
from tests.fixtures.browser import demo_settings

GB = "+447400123456"
FLOW = ["password", {"enroll": {"channels": ["sms"]}}, {"challenge": {"channels": ["sms"]}}]
PHONE_HEADING, CODE_HEADING = "Get codes by text message", "Enter the code we texted you"


def sms_channels(sms_gateway, **extra) -> dict:
    gateway = {"type": "http", "url": sms_gateway.webhook_url, "json": {"to": "{phone}", "text": "{message}"}}
    return {"sms": {"type": "sms", "issuer": "Example CX", "default_region": "GB", "gateway": gateway, **extra}}


@pytest.mark.parametrize("visitor", ["mouse", "keyboard"], indirect=True)
def test_the_confirmation_dialog_and_the_resend_countdown(visitor, serve, tmp_path, sms_gateway):
    served = serve(demo_settings(tmp_path, sms_channels(sms_gateway, resend_cooldown=2), FLOW))
    visitor.sign_in_at_demo(served.url, "agent", PASSWORD)
    visitor.expect(PHONE_HEADING, "sms-phone")
    visitor.submit("Register", phone="07400 123456")

    page = visitor.page
    page.wait_for_function("() => document.getElementById('confirm-phone').matches(':modal')")
    assert visitor.text("#confirmed-number") == "+44 7400 123456"
    assert page.locator("#phone").is_visible()  # the number as typed, behind the backdrop
    assert page.evaluate("() => document.activeElement.textContent.trim()") == "Confirm"
    visitor.screenshots.save(page, "sms-confirm-dialog")
    visitor.press("Edit")
    visitor.expect(PHONE_HEADING, "sms-phone-edit")
    assert page.locator("#phone").input_value() == "+44 7400 123456"
    visitor.submit("Register", phone="+44 7400 123456")
    page.wait_for_function("() => document.getElementById('confirm-phone').matches(':modal')")
    visitor.press("Confirm")

    visitor.expect(CODE_HEADING, "sms-code")
    resend = page.locator("#resend")
    assert resend.is_disabled() and re.fullmatch(r"Resend OTP \([12] s\)", resend.text_content().strip())
    page.wait_for_function("() => !document.getElementById('resend').disabled", timeout=5000)
    assert resend.text_content().strip() == "Resend OTP"
    assert visitor.text("#resend-wait") == "You can ask for a new code now."
    visitor.press("Resend OTP")
    visitor.expect(CODE_HEADING, "sms-code-resent")
    assert visitor.text(".notice") == "We sent a new code to +44 7400 123456. The previous code no longer works."
    visitor.submit("Send", otp=sms_gateway.code_for(GB))
    visitor.expect("Demo application", "demo-signed-in")
    assert visitor.claims()["amr"] == ["pwd", "sms", "mfa"]


@pytest.mark.parametrize("visitor", ["no-js"], indirect=True)
def test_without_javascript_the_confirmation_is_a_page_and_the_server_keeps_the_cooldown(
        visitor, serve, tmp_path, sms_gateway):
    served = serve(demo_settings(tmp_path, sms_channels(sms_gateway), FLOW))
    visitor.sign_in_at_demo(served.url, "agent", PASSWORD)
    visitor.expect(PHONE_HEADING, "sms-phone")
    visitor.submit("Register", phone="020 7946 0958")
    visitor.expect(PHONE_HEADING, "sms-phone-landline")
    assert visitor.error_for("phone").startswith("Enter a valid mobile number, including the country code")
    visitor.submit("Register", phone="07400 123456")

    visitor.expect(PHONE_HEADING, "sms-confirm-page")
    page = visitor.page
    assert page.locator("#confirm-phone").is_visible() and not page.locator("#phone").is_visible()
    assert not page.locator("#confirm-phone").evaluate("d => d.matches(':modal')")
    visitor.press("Confirm")

    visitor.expect(CODE_HEADING, "sms-code")
    assert page.locator("#resend").is_enabled()  # no script to count down: the server decides
    visitor.press("Resend OTP")
    visitor.expect(CODE_HEADING, "sms-code-too-early")
    assert re.fullmatch(r"Wait \d+ seconds before asking for a new code\.", visitor.error_for("otp"))
    visitor.submit("Send", otp=sms_gateway.code_for(GB))
    visitor.expect("Demo application", "demo-signed-in")

    served.clock.advance(30)
    visitor.press("Sign out")
    visitor.press("Sign in")
    visitor.submit("Login", username="agent", password=PASSWORD)
    visitor.expect(CODE_HEADING, "sms-challenge")
    assert visitor.text("label[for=otp]") == "Enter the 6-digit code sent to +44 •••• ••3456"
    visitor.submit("Send", otp=sms_gateway.code_for(GB))
    visitor.expect("Demo application", "demo-signed-in-again")
    assert visitor.claims()["amr"] == ["pwd", "sms", "mfa"]
