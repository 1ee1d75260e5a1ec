"""The RSA SecurID screen in a real browser, against the FreeRADIUS fixture: the eye button,
and each of the three errors visible on the page. Screenshots go to tests/artifacts/browser/."""
from __future__ import annotations

import pytest

from provider.channels import rsa
from tests.fixtures.app import PASSWORD
from tests.fixtures.browser import demo_settings
from tests.fixtures.radius import AGENT_PASSCODE

FLOW = ["password", {"challenge": {"channels": ["rsa"]}}]
HEADING = "Enter your RSA SecurID passcode"


def rsa_channel(transport) -> dict:
    return {"rsa": {"type": "rsa", "transport": transport}}


@pytest.mark.parametrize("visitor", ["mouse"], indirect=True)
def test_the_eye_button_shows_and_hides_the_passcode(visitor, serve, tmp_path, radius):
    served = serve(demo_settings(tmp_path, rsa_channel(radius.transport()), FLOW))
    visitor.sign_in_at_demo(served.url, "agent", PASSWORD)
    visitor.expect(HEADING, "rsa-passcode")
    page, field, eye = visitor.page, visitor.page.locator("#passcode"), visitor.page.locator("button.eye")
    field.fill(AGENT_PASSCODE)
    assert field.get_attribute("type") == "password" and eye.get_attribute("aria-pressed") == "false"
    eye.click()
    assert field.get_attribute("type") == "text" and eye.get_attribute("aria-pressed") == "true"
    visitor.screenshots.save(page, "rsa-passcode-shown")
    eye.click()
    assert field.get_attribute("type") == "password" and eye.get_attribute("aria-pressed") == "false"
    visitor.submit("Send", passcode=AGENT_PASSCODE)
    visitor.expect("Demo application", "demo-signed-in")
    assert visitor.claims()["amr"] == ["pwd", "otp", "mfa"]


@pytest.mark.parametrize("visitor", ["mouse", "no-js"], indirect=True)
def test_the_three_errors_are_on_the_page(visitor, serve, tmp_path, radius_factory):
    server = radius_factory(require_message_authenticator=False)
    cases = [
        (server.transport(), "12345678000000", rsa.INVALID, "rsa-invalid"),
        (server.transport(secret="not-the-secret-0123456789", timeout=0.3), AGENT_PASSCODE, rsa.CONFIGURATION,
         "rsa-configuration"),
        ({"type": "radius", "host": "127.0.0.1", "port": 9, "secret": "radius-test-secret-0123456789",
          "timeout": 0.3, "retries": 0}, AGENT_PASSCODE, rsa.SERVER, "rsa-server"),
    ]
    for transport, passcode, message, screen in cases:
        served = serve(demo_settings(tmp_path / screen, rsa_channel(transport), FLOW))
        visitor.sign_in_at_demo(served.url, "agent", PASSWORD)
        visitor.expect(HEADING, screen + "-before")
        visitor.submit("Send", passcode=passcode)
        visitor.expect(HEADING, screen)
        assert visitor.error_for("passcode") == message


@pytest.mark.parametrize("visitor", ["keyboard", "no-js", "phone"], indirect=True)
def test_the_passcode_flow_completes_in_every_mode(visitor, serve, tmp_path, radius):
    served = serve(demo_settings(tmp_path, rsa_channel(radius.transport()), FLOW))
    visitor.sign_in_at_demo(served.url, "agent", PASSWORD)
    visitor.expect(HEADING, "rsa-passcode")
    if not visitor.mode.javascript:
        assert visitor.page.locator("button.eye").is_hidden()  # no eye without its script; the field works
    visitor.submit("Send", passcode=AGENT_PASSCODE)
    visitor.expect("Demo application", "demo-signed-in")
    assert visitor.claims()["amr"] == ["pwd", "otp", "mfa"]
