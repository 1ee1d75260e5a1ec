"""Login flows with the authenticator app, end to end over real HTTP (memory and Redis)."""
from __future__ import annotations

import base64
import re
from html import unescape

import pytest
from joserfc import jwt

from provider import cli
from provider.channels import totp_codes
from tests.fixtures.app import PASSWORD, base_settings
from tests.support.rp import Callback, Page

PARAMS = totp_codes.TotpParameters()


def totp_settings(tmp_path, state_url, flows=None):
    settings = base_settings(tmp_path, state_url)
    settings["encryption_key"] = "test-encryption-key-0123456789-0123456789"
    settings["channels"] = {"totp": {"type": "totp", "issuer": "Example CX"}}
    settings["flows"] = flows or {"default": ["password", {"enroll": {"channels": ["totp"]}},
                                              {"challenge": {"channels": ["totp"]}}]}
    return settings


@pytest.fixture
def served(serve, tmp_path, state_url):
    return serve(totp_settings(tmp_path, state_url))


def secret_on(page: Page) -> bytes:
    grouped = unescape(re.search(r'id="secret-key"><code>([^<]+)</code>', page.html).group(1))
    b32 = grouped.replace(" ", "")
    return base64.b32decode(b32 + "=" * (-len(b32) % 8))


def code(served, secret: bytes, offset_steps: int = 0) -> str:
    return totp_codes.code_at(secret, PARAMS, totp_codes.step_at(PARAMS, served.clock.now()) + offset_steps)


def claims_of(served, rp, callback: Callback) -> dict:
    tokens = rp.redeem(callback.params["code"]).json()
    return jwt.decode(tokens["id_token"], served.services.keys.current, algorithms=["RS256"]).claims


def enrol(served, rp) -> tuple[bytes, Callback]:
    page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    assert isinstance(page, Page) and "Register" in page.html, page
    secret = secret_on(page)
    result = rp.submit(page, otp=code(served, secret))
    assert isinstance(result, Callback), getattr(result, "error", result)
    return secret, result


def test_first_login_enrols_the_app_and_proves_the_factor(served):
    rp = served.rp()
    page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    assert '<img class="qr" src="data:image/png;base64,' in page.html
    assert 'alt="QR code for adding Example CX' in page.html
    assert re.search(r'id="secret-key"><code>([A-Z2-7]{4} ){7}[A-Z2-7]{4}</code>', page.html)
    assert 'name="otp"' in page.html and 'autocomplete="one-time-code"' in page.html
    assert 'inputmode="numeric"' in page.html and ">Register</button>" in page.html
    secret = secret_on(page)
    again = rp.follow(rp.browser.get(page.url, allow_redirects=False))
    assert secret_on(again) == secret  # one secret per enrolment attempt, not per page view
    typed = code(served, secret)
    result = rp.submit(again, otp=f" {typed[:3]} {typed[3:]} ")
    assert isinstance(result, Callback)
    claims = claims_of(served, rp, result)
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["acr"] == "2"
    user = served.services.directory.find("agent")
    registered = served.services.enrollments.list(user.id)
    assert [(e.channel, e.kind, e.secret) for e in registered] == [("totp", "totp", secret)]


def test_second_login_is_a_challenge_without_qr(served):
    secret, _ = enrol(served, served.rp())
    served.clock.advance(30)
    rp = served.rp()  # another browser: no SSO session
    page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    assert isinstance(page, Page) and "qr" not in page.html and ">Send</button>" in page.html
    result = rp.submit(page, otp=code(served, secret))
    assert isinstance(result, Callback)
    assert claims_of(served, rp, result)["amr"] == ["pwd", "otp", "mfa"]


def test_a_replayed_code_is_refused(served):
    secret, _ = enrol(served, served.rp())
    rp = served.rp()
    page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    replay = rp.submit(page, otp=code(served, secret))  # the code enrolment just used
    assert isinstance(replay, Page)
    assert replay.error == "That code was already used. Wait for the next code and enter it."


def test_wrong_codes_then_too_many(served):
    secret, _ = enrol(served, served.rp())
    served.clock.advance(30)
    rp = served.rp()
    page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    right = code(served, secret)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(4):
        page = rp.submit(page, otp=wrong)
        assert isinstance(page, Page) and page.error == "That code is not correct. Try the current code from your app."
    last = rp.submit(page, otp=wrong)
    assert last.status == 403 and "Too many wrong codes" in last.html
    assert 'href="/authorize?' in last.html  # start again


def test_clock_skew_hint(served):
    secret, _ = enrol(served, served.rp())
    served.clock.advance(30)
    rp = served.rp()
    page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    result = rp.submit(page, otp=code(served, secret, offset_steps=-4))
    assert "clock on your phone may be wrong" in result.error


def test_malformed_code(served):
    rp = served.rp()
    page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    result = rp.submit(page, otp="12ab56")
    assert result.error == "Enter the 6-digit code from your authenticator app."


def test_crafted_posts_cannot_skip_a_step(served):
    rp = served.rp()
    page = rp.authorize()
    # An OTP posted to the password step is just a failed password step.
    result = rp.submit(page, otp="123456")
    assert isinstance(result, Page) and 'name="password"' in result.html
    enrolment = rp.submit(result, username="agent", password=PASSWORD)
    # The password page's form again (stale version): nothing moves, no QR is skipped.
    stale = rp.submit(result, username="agent", password=PASSWORD, otp="123456")
    assert isinstance(stale, Page) and "Register" in stale.html
    assert secret_on(stale) == secret_on(enrolment)


def test_expired_flow_during_enrolment(served):
    rp = served.rp()
    page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    secret = secret_on(page)
    served.clock.advance(601)
    result = rp.submit(page, otp=code(served, secret))
    assert result.status == 410 and "Your sign-in session expired." in result.html
    assert served.services.enrollments.list(served.services.directory.find("agent").id) == []


def test_reset_then_enrol_again(served, capsys):
    enrol(served, served.rp())
    assert cli.main(["enrollments", "reset", "agent", "--config", str(served.settings_path)]) == 0
    assert "removed 1 registration(s) of agent" in capsys.readouterr().out
    rp = served.rp()
    page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    assert "Register" in page.html


def test_the_secret_is_not_stored_in_clear(served, tmp_path):
    secret, _ = enrol(served, served.rp())
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("twostep.db*"))
    assert secret not in raw
    assert base64.b32encode(secret).rstrip(b"=") not in raw


def test_group_conditions(serve, tmp_path, state_url):
    flows = {"default": ["password", {"enroll": {"channels": ["totp"], "when": {"groups": ["agents"]}}},
                         {"challenge": {"channels": ["totp"], "when": {"groups": ["agents"]}}}]}
    served = serve(totp_settings(tmp_path, state_url, flows))
    served.services.directory.add_user("boss", PASSWORD, groups=("managers",))
    served.services.directory.add_user("ann", PASSWORD, groups=("agents",))
    boss = served.rp()
    assert claims_of(served, boss, boss.sign_in("boss", PASSWORD))["amr"] == ["pwd"]
    ann = served.rp()
    page = ann.submit(ann.authorize(), username="ann", password=PASSWORD)
    assert isinstance(page, Page) and "Register" in page.html


def test_challenge_without_registration_or_enrolment_is_refused(serve, tmp_path, state_url):
    served = serve(totp_settings(tmp_path, state_url, {"default": ["password", {"challenge": {"channels": ["totp"]}}]}))
    rp = served.rp()
    page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    assert isinstance(page, Page)
    assert "Two-factor authentication is not set up for your account. Contact your administrator." in page.html


def test_closed_enrolment_policy(serve, tmp_path, state_url):
    flows = {"default": ["password", {"enroll": {"channels": ["totp"], "allow": {"until": "2020-01-31"}}},
                         {"challenge": {"channels": ["totp"]}}]}
    served = serve(totp_settings(tmp_path, state_url, flows))
    rp = served.rp()
    page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    assert "Contact your administrator" in page.html and "Register" not in page.html


def test_acr_values_step_up(serve, tmp_path, state_url):
    flows = {"default": ["password"],
             "strong": {"acr": "urn:example:mfa", "steps": ["password", {"enroll": {"channels": ["totp"]}},
                                                             {"challenge": {"channels": ["totp"]}}]}}
    served = serve(totp_settings(tmp_path, state_url, flows))
    rp = served.rp()
    assert claims_of(served, rp, rp.sign_in("agent", PASSWORD))["acr"] == "1"
    assert isinstance(rp.authorize(prompt="none"), Callback)  # the session serves the default flow
    page = rp.authorize(acr_values="urn:example:mfa")
    assert isinstance(page, Page) and 'name="password"' in page.html  # step-up: a new login
    enrolment = rp.submit(page, username="agent", password=PASSWORD)
    result = rp.submit(enrolment, otp=code(served, secret_on(enrolment)))
    assert claims_of(served, rp, result)["acr"] == "urn:example:mfa"
    silent = rp.authorize(prompt="none", acr_values="urn:example:mfa")
    assert isinstance(silent, Callback) and "code" in silent.params


def test_choose_a_method_when_several_can_enrol(serve, tmp_path, state_url):
    settings = totp_settings(tmp_path, state_url, {"default": [
        "password", {"enroll": {"channels": ["totp", "backup_app"]}},
        {"challenge": {"channels": ["totp", "backup_app"]}}]})
    settings["channels"]["backup_app"] = {"type": "totp", "issuer": "Example CX backup", "digits": 8,
                                          "label": "Backup authenticator"}
    served = serve(settings)
    rp = served.rp()
    choose = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    assert isinstance(choose, Page) and "Choose how you want to prove" in choose.html
    assert ">Authenticator app</button>" in choose.html and ">Backup authenticator</button>" in choose.html
    page = rp.submit(choose, use="backup_app")
    assert "Enter the 8-digit code" in page.html or "8-digit" in page.html


def test_the_qr_code_on_the_page_holds_the_secret_shown(served, tmp_path):
    """Decoded by an independent tool (Debian's zbarimg), as a phone's camera would."""
    import shutil
    import subprocess
    from urllib.parse import parse_qs, urlsplit

    from tests.fixtures.services import service_missing

    if shutil.which("zbarimg") is None:
        service_missing("zbarimg", "install Debian's zbar-tools (make services does)")
    rp = served.rp()
    page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', page.html).group(1))
    (tmp_path / "qr.png").write_bytes(png)
    uri = subprocess.run(["zbarimg", "--raw", "-q", str(tmp_path / "qr.png")], capture_output=True, text=True,
                         check=True).stdout.strip()
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc, parts.path) == ("otpauth", "totp", "/Example%20CX:agent")
    query = parse_qs(parts.query)
    assert query["issuer"] == ["Example CX"]
    assert base64.b32decode(query["secret"][0] + "=" * (-len(query["secret"][0]) % 8)) == secret_on(page)


def test_encryption_key_rotation(serve, tmp_path, capsys):
    """A new encryption_key with the old one under encryption_keys: registrations still read,
    and `twostep keys reencrypt` moves them all to the new key."""
    import yaml

    served = serve(totp_settings(tmp_path, "memory://"))
    secret, _ = enrol(served, served.rp())
    data = yaml.safe_load(served.settings_path.read_text())
    data["encryption_keys"] = [data["encryption_key"]]
    data["encryption_key"] = "the-next-encryption-key-0123456789-0123456789"
    served.settings_path.write_text(yaml.safe_dump(data))
    assert cli.main(["keys", "reencrypt", "--config", str(served.settings_path)]) == 0
    assert "re-encrypted 1 registration(s)" in capsys.readouterr().out
    del data["encryption_keys"]
    served.settings_path.write_text(yaml.safe_dump(data))
    from provider.app import open_enrollments
    from provider.settings import load_settings

    store = open_enrollments(load_settings(served.settings_path))
    user = served.services.directory.find("agent")
    assert store.get(user.id, "totp").secret == secret
