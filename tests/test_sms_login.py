"""Login flows with codes by SMS, end to end over real HTTP: twostep served on loopback, its
gateway calls received by the stand-in server of tests/fixtures/sms.py."""
from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest
from joserfc import jwt

from provider.channels.sms_codes import CodeBook
from provider.storage.encryption import Encryptor
from tests.fixtures.app import PASSWORD, base_settings
from tests.fixtures.sms import TWILIO_FROM, TWILIO_SID, TWILIO_TOKEN
from tests.support.rp import Callback, Page

GB = "+447400123456"
GB_OTHER = "+447400654321"
SMS_FLOW = {"default": ["password", {"enroll": {"channels": ["sms"]}}, {"challenge": {"channels": ["sms"]}}]}
SEND_FAILED = "We could not send the SMS. Try again in a moment."
KEY = "test-encryption-key-0123456789-0123456789-0123456789"


def twilio_gateway(sms_gateway) -> dict:
    return {"type": "twilio", "account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": TWILIO_FROM,
            "base_url": sms_gateway.url}


def webhook_gateway(url: str, **extra) -> dict:
    return {"type": "http", "url": url, "json": {"to": "{phone}", "text": "{message}"}, "timeout": 0.5, **extra}


def sms_settings(tmp_path, state_url: str, gateway: dict, flows: dict | None = None, **channel) -> dict:
    settings = base_settings(tmp_path, state_url)
    settings["encryption_key"] = KEY
    settings["channels"] = {"sms": {"type": "sms", "issuer": "Example CX", "default_region": "GB",
                                    "gateway": gateway, **channel}}
    settings["flows"] = flows or SMS_FLOW
    return settings


@pytest.fixture
def served(serve, tmp_path, state_url, sms_gateway):
    return serve(sms_settings(tmp_path, state_url, twilio_gateway(sms_gateway)))


@pytest.fixture
def serve_sms(serve, tmp_path, sms_gateway):
    """Served on the memory store, with channel settings of the test's choosing."""
    def start(gateway: dict | None = None, **channel):
        return serve(sms_settings(tmp_path, "memory://", gateway or twilio_gateway(sms_gateway), **channel))
    return start


@pytest.fixture
def audit_events():
    """The audit lines (the CLI may have stopped the audit logger propagating to caplog)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("twostep.audit")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(record.getMessage()) for record in records]
    logger.removeHandler(handler)
    logger.setLevel(level)


# -- driving the screens ------------------------------------------------------------------------


def phone_page(rp, username: str = "agent") -> Page:
    page = rp.submit(rp.authorize(), username=username, password=PASSWORD)
    assert isinstance(page, Page) and 'name="phone"' in page.html, getattr(page, "html", page)
    return page


def confirmed(rp, page: Page, typed: str) -> Page:
    """Register a number, then Confirm it: the code page."""
    confirm = rp.submit(page, phone=typed, action="register")
    assert 'id="confirm-phone"' in confirm.html, confirm.error
    return rp.submit(confirm, action="confirm")


def enrol(served, sms_gateway, rp, typed: str = "07400 123456", username: str = "agent") -> Callback:
    page = confirmed(rp, phone_page(rp, username), typed)
    assert page.error is None, page.error
    number = "+44" + "".join(typed.split())[1:] if typed.startswith("0") else typed.replace(" ", "")
    result = rp.submit(page, otp=sms_gateway.code_for(number))
    assert isinstance(result, Callback), getattr(result, "error", result)
    return result


def claims_of(served, rp, callback: Callback) -> dict:
    tokens = rp.redeem(callback.params["code"]).json()
    return jwt.decode(tokens["id_token"], served.services.keys.current, algorithms=["RS256"]).claims


def notice(page: Page) -> str | None:
    match = re.search(r'class="notice"[^>]*>([^<]*)<', page.html)
    return unescape(match.group(1)) if match else None


def flow_id(page: Page) -> str:
    return page.url.rstrip("/").rsplit("/", 1)[1]


def other_than(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


# -- the happy paths, on memory and Redis --------------------------------------------------------


def test_first_login_registers_the_number(served, sms_gateway, audit_events):
    rp = served.rp()
    page = phone_page(rp)
    assert 'type="tel"' in page.html and 'autocomplete="tel"' in page.html and ">Register</button>" in page.html
    confirm = rp.submit(page, phone="07400 123456", action="register")
    assert '<dialog id="confirm-phone" class="confirm" open' in confirm.html  # a plain page without JS
    assert '<p class="number" id="confirmed-number">+44 7400 123456</p>' in confirm.html
    assert 'value="edit"' in confirm.html and ">Edit</button>" in confirm.html and ">Confirm</button>" in confirm.html
    assert 'src="/static/sms.js" defer' in confirm.html and sms_gateway.outbox == []
    code_page = rp.submit(confirm, action="confirm")
    assert 'code sent to <span class="number">+44 7400 123456</span>' in code_page.html and notice(code_page) is None
    assert 'name="otp"' in code_page.html and 'autocomplete="one-time-code"' in code_page.html
    assert ">Send</button>" in code_page.html and ">Resend OTP</button>" in code_page.html
    assert re.search(r'data-wait="(30|29)"', code_page.html)
    [sms] = sms_gateway.outbox
    assert sms.to == GB and re.fullmatch(r"Your Example CX verification code is \d{6}\. It expires in 5 minutes\.",
                                         sms.body)
    result = rp.submit(code_page, otp=sms_gateway.code_for(GB))
    assert isinstance(result, Callback)
    assert claims_of(served, rp, result)["amr"] == ["pwd", "sms", "mfa"]
    user = served.services.directory.find("agent")
    assert [(e.channel, e.kind, e.phone, e.secret) for e in served.services.enrollments.list(user.id)] == \
        [("sms", "sms", GB, None)]
    events = {e["event"]: e for e in audit_events()}
    assert events["sms.sent"]["phone"] == "+44 **** **3456" and events["sms.sent"]["purpose"] == "enroll"
    assert events["factor.enrolled"]["phone"] == "+44 **** **3456" and events["factor.enrolled"]["channel"] == "sms"


def test_second_login_sends_a_code_automatically(served, sms_gateway):
    enrol(served, sms_gateway, served.rp())
    served.clock.advance(30)  # the resend cooldown of the enrolment's SMS
    rp = served.rp()  # another browser: no SSO session
    page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    assert isinstance(page, Page) and 'name="phone"' not in page.html
    assert "sent to <span class=\"number\">+44 •••• ••3456</span>" in page.html
    assert ">Resend OTP</button>" in page.html
    assert len(sms_gateway.outbox) == 2
    reloaded = rp.follow(rp.browser.get(page.url, allow_redirects=False))
    assert len(sms_gateway.outbox) == 2 and "+44 •••• ••3456" in reloaded.html  # sent once per login
    result = rp.submit(reloaded, otp=sms_gateway.code_for(GB))
    assert isinstance(result, Callback)
    assert claims_of(served, rp, result)["amr"] == ["pwd", "sms", "mfa"]


def test_resend_waits_for_the_cooldown_and_replaces_the_code(served, sms_gateway):
    rp = served.rp()
    page = confirmed(rp, phone_page(rp), "+44 7400 123456")
    first = sms_gateway.code_for(GB)
    early = rp.submit(page, action="resend")
    assert re.fullmatch(r"Wait (30|29) seconds before asking for a new code\.", early.error)
    assert len(sms_gateway.outbox) == 1
    served.clock.advance(30)
    again = rp.submit(early, action="resend")
    assert again.error is None
    assert notice(again) == "We sent a new code to +44 7400 123456. The previous code no longer works."
    second = sms_gateway.code_for(GB)
    assert len(sms_gateway.outbox) == 2
    if first != second:
        stale = rp.submit(again, otp=first)
        assert stale.error == "That code was replaced by a newer one. Enter the code from the latest SMS."
        again = stale
    assert isinstance(rp.submit(again, otp=second), Callback)


# -- enrolment details ----------------------------------------------------------------------------


def test_edit_goes_back_with_the_number_filled_in(serve_sms, sms_gateway):
    served = serve_sms()
    rp = served.rp()
    confirm = rp.submit(phone_page(rp), phone="07400123456", action="register")
    edit = rp.submit(confirm, action="edit")
    assert 'id="confirm-phone"' not in edit.html and edit.field_value("phone") == "+44 7400 123456"
    code_page = confirmed(rp, edit, "+44 7400 654321")
    assert 'sent to <span class="number">+44 7400 654321</span>' in code_page.html
    assert [sms.to for sms in sms_gateway.outbox] == [GB_OTHER]
    elsewhere = rp.submit(code_page, action="edit")  # "Use another number" from the code page
    assert edit.field_value("phone") and elsewhere.field_value("phone") == "+44 7400 654321"
    served.clock.advance(30)
    code_page = confirmed(rp, elsewhere, "07400 123456")
    stale = rp.submit(code_page, otp=sms_gateway.code_for(GB_OTHER))
    assert stale.error and stale.error.startswith("That code")
    assert isinstance(rp.submit(stale, otp=sms_gateway.code_for(GB)), Callback)
    user = served.services.directory.find("agent")
    assert served.services.enrollments.get(user.id, "sms").phone == GB


@pytest.mark.parametrize(("typed", "error"), [
    ("", "Enter a valid mobile number, including the country code"),
    ("not a number", "Enter a valid mobile number, including the country code"),
    ("020 7946 0958", "Enter a valid mobile number, including the country code"),  # a landline
    ("+44 909 879 0879", "Enter a valid mobile number, including the country code"),  # premium rate
    ("+33 6 12 34 56 78", "We can only send codes to mobile numbers from: United Kingdom (+44), Ireland (+353)."),
])
def test_invalid_numbers_are_refused_on_the_page(serve_sms, sms_gateway, typed, error):
    served = serve_sms(allowed_regions=["GB", "IE"])
    rp = served.rp()
    page = rp.submit(phone_page(rp), phone=typed, action="register")
    assert page.status == 200 and error in page.error and 'aria-invalid="true"' in page.html
    assert 'id="confirm-phone"' not in page.html and sms_gateway.requests == []


def test_choose_sms_among_several_methods(serve, tmp_path, sms_gateway):
    settings = sms_settings(tmp_path, "memory://", twilio_gateway(sms_gateway), flows={"default": [
        "password", {"enroll": {"channels": ["totp", "sms"]}}, {"challenge": {"channels": ["totp", "sms"]}}]})
    settings["channels"]["totp"] = {"type": "totp"}
    served = serve(settings)
    rp = served.rp()
    choose = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    assert "Text message (SMS)" in choose.html
    assert 'name="phone"' in rp.submit(choose, use="sms").html


# -- limits ---------------------------------------------------------------------------------------


def test_wrong_codes_invalidate_the_code(served, sms_gateway, audit_events):
    rp = served.rp()
    page = confirmed(rp, phone_page(rp), "07400 123456")
    code = sms_gateway.code_for(GB)
    for left in (4, 3, 2, 1):
        page = rp.submit(page, otp=other_than(code))
        expected = "That code is not correct. Check the SMS and try again."
        if left <= 2:
            expected += f" You can try {left} more time{'s' if left > 1 else ''}."
        assert page.error == expected
    page = rp.submit(page, otp=other_than(code))
    assert page.error == "Too many wrong codes: that code no longer works. Use Resend OTP to get a new one."
    page = rp.submit(page, otp=code)
    assert page.error.startswith("That code has expired")
    served.clock.advance(30)
    page = rp.submit(page, action="resend")
    assert isinstance(rp.submit(page, otp=sms_gateway.code_for(GB)), Callback)
    reasons = [e["reason"] for e in audit_events() if e["event"] == "factor.challenge_failed"]
    assert reasons == ["wrong"] * 4 + ["exhausted", "expired"]


def test_codes_expire(serve_sms, sms_gateway):
    served = serve_sms(code_ttl=120, message="{code} is your code, valid {minutes} min")
    rp = served.rp()
    page = confirmed(rp, phone_page(rp), "07400 123456")
    assert re.fullmatch(r"\d{6} is your code, valid 2 min", sms_gateway.outbox[0].body)
    assert "expires 2 minutes after" in page.html
    served.clock.advance(121)
    assert rp.submit(page, otp=sms_gateway.code_for(GB)).error.startswith("That code has expired")


def test_quota_per_user_says_when_to_try_again(serve_sms, sms_gateway, audit_events):
    served = serve_sms()
    rp = served.rp()
    page = confirmed(rp, phone_page(rp), "07400 123456")
    for _ in range(4):
        served.clock.advance(30)
        page = rp.submit(page, action="resend")
        assert page.error is None
    served.clock.advance(30)
    page = rp.submit(page, action="resend")
    assert page.error == "Too many codes were requested. Try again in 58 minutes."  # 3600 - 150 s
    assert len(sms_gateway.outbox) == 5
    throttled = [e for e in audit_events() if e["event"] == "sms.throttled"]
    assert [(e["reason"], e["limit"]) for e in throttled] == [("quota", "user")]
    served.clock.advance(3600)  # the login has expired by now: a new one
    rp = served.rp()
    page = confirmed(rp, phone_page(rp), "07400 123456")
    assert page.error is None and len(sms_gateway.outbox) == 6


def test_quotas_per_number_and_per_client_address(serve_sms, sms_gateway):
    served = serve_sms(max_sends_per_hour={"user": 5, "number": 2, "ip": 3})
    for name in ("bob", "carol"):
        served.services.directory.add_user(name, PASSWORD)
    agent = served.rp()
    page = confirmed(agent, phone_page(agent), "07400 123456")
    served.clock.advance(30)
    assert agent.submit(page, action="resend").error is None  # two SMS to this number
    bob = served.rp()
    blocked = confirmed(bob, phone_page(bob, "bob"), "07400 123456")
    assert blocked.error == "Too many codes were requested. Try again in 60 minutes."
    page = rp_confirm_other(bob, blocked, "07400 654321")  # a third SMS from 127.0.0.1
    assert page.error is None
    carol = served.rp()
    blocked = confirmed(carol, phone_page(carol, "carol"), "07400 111222")
    assert blocked.error.startswith("Too many codes were requested.")
    assert [sms.to for sms in sms_gateway.outbox] == [GB, GB, GB_OTHER]


def rp_confirm_other(rp, page: Page, typed: str) -> Page:
    edit = rp.submit(page, action="edit")
    return confirmed(rp, edit, typed)


# -- failures -------------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["500", "slow", "refused"])
def test_a_failed_send_shows_a_sentence_and_leaves_no_usable_code(serve_sms, sms_gateway, refused_url, failure):
    url = refused_url if failure == "refused" else sms_gateway.webhook_url
    served = serve_sms(webhook_gateway(url))
    rp = served.rp()
    confirm = rp.submit(phone_page(rp), phone="07400 123456", action="register")
    if failure != "refused":
        sms_gateway.program("webhook", int(failure) if failure.isdigit() else failure)
    page = rp.submit(confirm, action="confirm")
    assert page.status == 200 and page.error == SEND_FAILED and 'id="confirm-phone"' in page.html
    leaked = [json.loads(r.body)["text"] for r in sms_gateway.requests]
    assert len(leaked) == (0 if failure == "refused" else 1)
    book = CodeBook(served.services.state, Encryptor.from_secrets(KEY), served.clock, length=6, ttl=300,
                    max_attempts=5)
    assert not book.pending(f"{flow_id(page)}:sms")
    if leaked:  # the SMS may well have arrived: its code still proves nothing
        code = re.search(r"\d{6}", leaked[0]).group(0)
        assert book.check(f"{flow_id(page)}:sms", GB, code).result == "expired"


def test_a_failed_send_at_login(serve_sms, sms_gateway):
    served = serve_sms(webhook_gateway(sms_gateway.webhook_url))
    enrol(served, sms_gateway, served.rp())
    served.clock.advance(30)
    sms_gateway.program("webhook", 503)
    rp = served.rp()
    page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    assert page.status == 200 and page.error == SEND_FAILED and ">Resend OTP</button>" in page.html
    leaked = re.search(r"\d{6}", json.loads(sms_gateway.requests[-1].body)["text"]).group(0)
    refused = rp.submit(page, otp=leaked)
    assert refused.error == "We have not sent you a code yet. Use Resend OTP to get one."
    served.clock.advance(30)
    page = rp.submit(refused, action="resend")
    assert page.error is None and isinstance(rp.submit(page, otp=sms_gateway.code_for(GB)), Callback)


def test_failover_to_the_next_gateway(serve_sms, sms_gateway, audit_events):
    sms_gateway.program("webhook", 500)
    served = serve_sms({"type": "failover", "gateways": [webhook_gateway(sms_gateway.webhook_url),
                                                         twilio_gateway(sms_gateway)]})
    enrol(served, sms_gateway, served.rp())
    assert [r.route for r in sms_gateway.requests] == ["webhook", "twilio"]
    assert [e["gateway"] for e in audit_events() if e["event"] == "sms.sent"] == ["twilio"]


def test_recipient_problems(serve_sms, sms_gateway):
    served = serve_sms()
    rp = served.rp()
    confirm = rp.submit(phone_page(rp), phone="07400 123456", action="register")
    sms_gateway.program("twilio", 21614)
    page = rp.submit(confirm, action="confirm")
    assert page.error == "We could not send an SMS to this number. Check it, or enter another mobile number."
    assert 'id="confirm-phone"' not in page.html and page.field_value("phone") == "+44 7400 123456"
    enrol(served, sms_gateway, served.rp())  # at once: a refused send leaves no cooldown
    served.clock.advance(30)
    sms_gateway.program("twilio", 21610)
    login = served.rp()
    page = login.submit(login.authorize(), username="agent", password=PASSWORD)
    assert page.error == "We could not send an SMS to your registered number. Contact your administrator."


def test_resend_can_be_turned_off_at_login(serve_sms, sms_gateway):
    served = serve_sms(resend=False)
    rp = served.rp()
    page = confirmed(rp, phone_page(rp), "07400 123456")
    assert ">Resend OTP</button>" in page.html  # enrolment always offers it
    assert isinstance(rp.submit(page, otp=sms_gateway.code_for(GB)), Callback)
    served.clock.advance(30)
    rp = served.rp()
    page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    assert "Resend OTP" not in page.html and "sms.js" not in page.html
    page = rp.submit(page, action="resend")
    assert page.error == "Start again to sign in and get a new code."
    code = sms_gateway.code_for(GB)
    for _ in range(4):
        page = rp.submit(page, otp=other_than(code))
    last = rp.submit(page, otp=other_than(code))
    assert last.status == 403 and "Too many wrong codes. Start again to sign in and get a new code." in last.html


# -- what the logs may hold -----------------------------------------------------------------------


def test_codes_and_numbers_never_reach_the_logs(serve_sms, sms_gateway, caplog, audit_events):
    caplog.set_level(logging.DEBUG)
    served = serve_sms()
    rp = served.rp()
    confirm = rp.submit(phone_page(rp), phone="07400 654321", action="register")
    sms_gateway.program("twilio", 21211)  # Twilio's message names the number
    rp.submit(confirm, action="confirm")
    enrol(served, sms_gateway, served.rp())
    served.clock.advance(30)
    login = served.rp()
    page = login.submit(login.authorize(), username="agent", password=PASSWORD)
    login.submit(page, otp=other_than(sms_gateway.code_for(GB)))
    login.submit(page, otp=sms_gateway.code_for(GB))
    logged = caplog.text + "\n".join(json.dumps(e) for e in audit_events())
    codes = [re.search(r"\d{6}", sms.body).group(0) for sms in sms_gateway.outbox]
    assert len(codes) == 2 and all(code not in logged for code in codes)
    for number in (GB, GB_OTHER, "7400 123456", "7400 654321", "7400123456"):
        assert number not in logged
    assert "Twilio error 21211" in caplog.text and "+44 **** **4321" in caplog.text
    events = [e["event"] for e in audit_events()]
    assert {"sms.sent", "sms.failed", "factor.enrolled", "factor.challenge_failed"} <= set(events)


def test_the_console_gateway_logs_the_code_and_says_so(serve_sms, caplog):
    caplog.set_level(logging.INFO)
    served = serve_sms({"type": "console"})
    assert "the console SMS gateway writes verification codes to this log" in caplog.text
    rp = served.rp()
    page = confirmed(rp, phone_page(rp), "07400 123456")
    [line] = [r for r in caplog.records if r.name == "twostep.sms.console" and "SMS to" in r.getMessage()]
    assert "+44 **** **3456" in line.getMessage() and GB not in caplog.text
    code = re.search(r"verification code is (\d{6})", line.getMessage()).group(1)
    assert [r.name for r in caplog.records if code in r.getMessage()] == ["twostep.sms.console"]
    assert isinstance(rp.submit(page, otp=code), Callback)


def test_the_script_is_valid_javascript():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = Path(__file__).parent.parent / "templates" / "static" / "sms.js"
    subprocess.run([node, "--check", str(script)], check=True, timeout=30)
