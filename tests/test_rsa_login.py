"""Logins with RSA SecurID, end to end over real HTTP: a real FreeRADIUS, or the stand-in of RSA's
REST API, behind the served provider."""
from __future__ import annotations

import json
import logging
import re

import pytest
import requests
from joserfc import jwt

from provider.channels import rsa
from provider.enrollment import Enrollment
from tests.fixtures.app import PASSWORD, base_settings
from tests.fixtures.radius import (
    AGENT_PASSCODE,
    EMAIL_PASSCODE,
    NEWPIN_PASSCODE,
    NEXT_MESSAGE,
    NEXT_TOKENCODE,
    NEXTCODE_PASSCODE,
)
from tests.support.rp import Callback, Page

USERS = (("agent", PASSWORD), ("nextcode", PASSWORD), ("newpin", PASSWORD))
RSA_FLOW = {"default": ["password", {"challenge": {"channels": ["rsa"]}}]}


def rsa_settings(tmp_path, transport, state_url="memory://", flows=None, **channel):
    settings = base_settings(tmp_path, state_url)
    settings["encryption_key"] = "test-encryption-key-0123456789-0123456789"
    settings["channels"] = {"rsa": {"type": "rsa", "transport": transport, **channel}}
    settings["flows"] = flows or RSA_FLOW
    return settings


def passcode_page(served, username="agent") -> tuple:
    rp = served.rp()
    page = rp.submit(rp.authorize(), username=username, password=PASSWORD)
    assert isinstance(page, Page) and 'name="passcode"' in page.html, getattr(page, "html", page)
    return rp, page


def amr(served, rp, callback: Callback) -> list[str]:
    tokens = rp.redeem(callback.params["code"]).json()
    return jwt.decode(tokens["id_token"], served.services.keys.current, algorithms=["RS256"]).claims["amr"]


@pytest.fixture
def audit_lines(caplog):
    caplog.set_level(logging.INFO, logger="twostep.audit")

    def lines(event: str) -> list[dict]:
        found = [json.loads(r.getMessage()) for r in caplog.records if r.name == "twostep.audit"]
        return [line for line in found if line["event"] == event]

    lines.text = lambda: "\n".join(r.getMessage() for r in caplog.records)
    return lines


def test_password_then_passcode_logs_in(serve, tmp_path, radius):
    served = serve(rsa_settings(tmp_path, radius.transport()), users=USERS)
    rp, page = passcode_page(served)
    field = re.search(r"<input id=\"passcode\"[^>]*>", page.html, re.S).group(0)
    for attribute in ('name="passcode"', 'type="password"', 'autocomplete="one-time-code"', 'maxlength="14"'):
        assert attribute in field
    assert "Enter your PIN followed by the 6-digit code shown on your" in page.html
    assert "If you have no token, contact your administrator." in page.html
    assert ">Send</button>" in page.html
    result = rp.submit(page, passcode=AGENT_PASSCODE)
    assert isinstance(result, Callback), getattr(result, "error", result)
    assert amr(served, rp, result) == ["pwd", "otp", "mfa"]


def test_the_eye_button(serve, tmp_path, radius):
    served = serve(rsa_settings(tmp_path, radius.transport()), users=USERS)
    _, page = passcode_page(served)
    eye = re.search(r"<button type=\"button\" class=\"eye\"[^>]*>", page.html, re.S).group(0)
    for attribute in ('aria-controls="passcode"', 'aria-label="Show passcode"', 'aria-pressed="false"',
                      'data-reveal="passcode"', " hidden>"):
        assert attribute in eye  # hidden until the script shows it: without JavaScript the field just works
    assert '<script src="/static/rsa.js" defer></script>' in page.html
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.html)  # the CSP forbids inline scripts
    script = requests.get(f"{served.url}/static/rsa.js", timeout=5)
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    assert "aria-pressed" in script.text and "button.hidden = false" in script.text


@pytest.mark.parametrize("transport_kind", ["radius", "rest"])
def test_next_tokencode_on_a_second_screen(serve, tmp_path, request, state_url, transport_kind):
    backend = request.getfixturevalue("radius" if transport_kind == "radius" else "rsa_am")
    served = serve(rsa_settings(tmp_path, backend.transport(), state_url), users=USERS)
    rp, page = passcode_page(served, "nextcode")
    second = rp.submit(page, passcode=NEXTCODE_PASSCODE)
    assert isinstance(second, Page) and second.error is None
    assert "Wait for the tokencode to change, then enter the next tokencode" in second.html
    assert 'name="otp"' in second.html and 'inputmode="numeric"' in second.html
    if transport_kind == "radius":
        assert NEXT_MESSAGE in second.html
    flow_id = second.url.rsplit("/", 1)[1]
    kept = served.services.state.get(f"flow:{flow_id}")
    assert NEXTCODE_PASSCODE not in kept and "rsa_attempt" in kept
    result = rp.submit(second, otp=NEXT_TOKENCODE)
    assert isinstance(result, Callback), getattr(result, "error", result)
    assert amr(served, rp, result) == ["pwd", "otp", "mfa"]


def test_a_wrong_next_tokencode_goes_back_to_the_passcode(serve, tmp_path, radius):
    served = serve(rsa_settings(tmp_path, radius.transport()), users=USERS)
    rp, page = passcode_page(served, "nextcode")
    second = rp.submit(page, passcode=NEXTCODE_PASSCODE)
    again = rp.submit(second, otp="999999")
    assert 'name="passcode"' in again.html and again.error == rsa.INVALID


def test_invalid_passcode_message_and_audit(serve, tmp_path, radius, audit_lines):
    served = serve(rsa_settings(tmp_path, radius.transport()), users=USERS)
    rp, page = passcode_page(served)
    result = rp.submit(page, passcode="12345678000000")
    assert result.status == 200 and result.error == rsa.INVALID
    [line] = audit_lines("rsa.error")
    assert line["outcome"] == "invalid_passcode" and line["username"] == "agent"
    assert audit_lines("factor.challenge_failed")[0]["reason"] == "invalid_passcode"
    assert "12345678000000" not in audit_lines.text()


def test_configuration_error_message(serve, tmp_path, radius_factory, audit_lines):
    server = radius_factory(require_message_authenticator=False)
    transport = server.transport(secret="not-the-secret-0123456789", timeout=0.3)
    served = serve(rsa_settings(tmp_path, transport), users=USERS)
    rp, page = passcode_page(served)
    result = rp.submit(page, passcode=AGENT_PASSCODE)
    assert result.status == 200 and result.error == rsa.CONFIGURATION
    [line] = audit_lines("rsa.error")
    assert line["outcome"] == "configuration" and "shared secret" in line["reason"]
    assert line["transport"] == f"radius 127.0.0.1:{server.port}"
    assert "not-the-secret" not in audit_lines.text() and AGENT_PASSCODE not in audit_lines.text()


def test_server_issue_message(serve, tmp_path, radius_factory, audit_lines):
    server = radius_factory()
    served = serve(rsa_settings(tmp_path, server.transport()), users=USERS)
    server.stop()
    rp, page = passcode_page(served)
    result = rp.submit(page, passcode=AGENT_PASSCODE)
    assert result.status == 200 and result.error == rsa.SERVER
    assert audit_lines("rsa.error")[0]["outcome"] == "server_issue"
    assert audit_lines("factor.challenge_failed") == []  # not the user's fault: no failure counted


def test_rest_configuration_error_message(serve, tmp_path, rsa_am):
    served = serve(rsa_settings(tmp_path, rsa_am.transport(client_key="revoked-key")), users=USERS)
    rp, page = passcode_page(served)
    assert rp.submit(page, passcode=AGENT_PASSCODE).error == rsa.CONFIGURATION


def test_new_pin_is_sent_to_self_service(serve, tmp_path, rsa_am):
    served = serve(rsa_settings(tmp_path, rsa_am.transport(), new_pin_message="Set a new PIN at https://ss.example"),
                   users=USERS)
    rp, page = passcode_page(served, "newpin")
    result = rp.submit(page, passcode=NEWPIN_PASSCODE)
    assert 'name="passcode"' in result.html and result.error == "Set a new PIN at https://ss.example"
    assert len(rsa_am.cancelled) == 1  # the attempt RSA keeps waiting on is given up


def test_malformed_passcodes_are_not_sent(serve, tmp_path, rsa_am):
    served = serve(rsa_settings(tmp_path, rsa_am.transport()), users=USERS)
    rp, page = passcode_page(served)
    page = rp.submit(page, passcode="  ")
    assert page.error == "Enter your passcode: your PIN followed by the code shown on your token."
    for wrong in ("12345678abcdef", "1234567890123456", "12345"):
        page = rp.submit(page, passcode=wrong)
        assert page.error == rsa.INVALID
    assert rsa_am.requests == []
    result = rp.submit(page, passcode=" 1234 5678 123456 ")  # spaces as typed are fine
    assert isinstance(result, Callback)


def test_too_many_wrong_passcodes(serve, tmp_path, radius):
    served = serve(rsa_settings(tmp_path, radius.transport(), max_attempts=2), users=USERS)
    rp, page = passcode_page(served)
    page = rp.submit(page, passcode="12345678000000")
    last = rp.submit(page, passcode="12345678000000")
    assert last.status == 403 and "Too many wrong passcodes" in last.html


def test_username_attribute(serve, tmp_path, radius):
    served = serve(rsa_settings(tmp_path, radius.transport(), username_attribute="email"), users=USERS)
    rp, page = passcode_page(served)
    page = rp.submit(page, passcode=AGENT_PASSCODE)
    assert page.error == rsa.INVALID  # RSA knows this user as agent@example.com
    assert isinstance(rp.submit(page, passcode=EMAIL_PASSCODE), Callback)


def test_beside_an_authenticator_app(serve, tmp_path, radius):
    flows = {"default": ["password", {"challenge": {"channels": ["totp", "rsa"]}}]}
    settings = rsa_settings(tmp_path, radius.transport(), flows=flows)
    settings["channels"]["totp"] = {"type": "totp"}
    served = serve(settings, users=USERS)
    passcode_page(served)  # no app registered: RSA, which every user has
    user = served.services.directory.find("agent")
    served.services.enrollments.save(Enrollment(user_id=user.id, channel="totp", kind="totp", secret=b"k" * 20,
                                                phone=None, created_at=1.0, last_used_at=2.0))
    rp = served.rp()
    app_page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    assert 'name="otp"' in app_page.html and ">RSA SecurID</button>" in app_page.html
    rsa_page = rp.submit(app_page, use="rsa")
    assert 'name="passcode"' in rsa_page.html
    assert isinstance(rp.submit(rsa_page, passcode=AGENT_PASSCODE), Callback)


def test_wrong_passcodes_count_towards_the_lockout(serve, tmp_path, radius):
    settings = rsa_settings(tmp_path, radius.transport())
    settings["lockout"] = {"threshold": 2, "base_delay": 60}
    served = serve(settings, users=USERS)
    rp, page = passcode_page(served)
    page = rp.submit(page, passcode="12345678abcdef")  # malformed: never sent to RSA, not counted
    page = rp.submit(page, passcode="12345678000000")
    assert page.error == rsa.INVALID
    page = rp.submit(page, passcode="12345678000001")
    assert page.error.startswith("Too many failed attempts. Try again in 1 minute")
    page = rp.submit(page, passcode=AGENT_PASSCODE)  # right, but during the wait
    assert isinstance(page, Page) and page.error.startswith("Too many failed attempts")


def test_no_passcode_or_rsa_secret_reaches_the_logs(serve, tmp_path, radius, rsa_am, caplog):
    caplog.set_level(logging.DEBUG)
    transports = (radius.transport(), rsa_am.transport(), radius.transport(secret="x" * 20, timeout=0.2))
    for i, transport in enumerate(transports):
        (tmp_path / str(i)).mkdir()
        served = serve(rsa_settings(tmp_path / str(i), transport), users=USERS)
        rp, page = passcode_page(served, "nextcode")
        page = rp.submit(page, passcode="87878787878787")
        second = rp.submit(page, passcode=NEXTCODE_PASSCODE)
        if 'name="otp"' in second.html:
            rp.submit(second, otp=NEXT_TOKENCODE)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert '"event": "rsa.error"' in logged and '"event": "rsa.next_tokencode"' in logged
    for secret in ("87878787878787", NEXTCODE_PASSCODE, NEXT_TOKENCODE, radius.secret, "x" * 20,
                   rsa_am.transport()["client_key"]):
        assert secret not in logged, f"a secret reached the logs: {secret[:4]}..."
