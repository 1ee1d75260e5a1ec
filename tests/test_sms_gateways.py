"""SMS gateways against a real HTTP server on loopback (tests/fixtures/sms.py): the requests they
make, field by field, and how every kind of failure is classified."""
from __future__ import annotations

import base64
import json
import logging

import pytest
from pydantic import TypeAdapter

from provider.channels.sms_gateways import GatewaySpec, SendFailed, Sms, SmsGateway, build_gateway
from tests.fixtures.sms import TWILIO_FROM, TWILIO_SERVICE, TWILIO_SID, TWILIO_TOKEN

TO = "+447400123456"
SMS = Sms(TO, "Your twostep verification code is 123456. It expires in 5 minutes.", 300)


def gateway(spec: dict) -> SmsGateway:
    return build_gateway(TypeAdapter(GatewaySpec).validate_python(spec), "channels.sms.gateway")


def twilio(url: str, **extra) -> SmsGateway:
    return gateway({"type": "twilio", "account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": TWILIO_FROM,
                    "base_url": url, **extra})


def webhook(url: str, **extra) -> SmsGateway:
    body = extra.pop("form", None)
    spec = {"type": "http", "url": url, **({"form": body} if body else
                                            {"json": {"to": "{phone}", "text": "{message}"}}), **extra}
    return gateway(spec)


def failure(gateway_: SmsGateway, sms: Sms = SMS) -> SendFailed:
    with pytest.raises(SendFailed) as caught:
        gateway_.send(sms)
    assert SMS.body not in caught.value.detail and "123456" not in caught.value.detail
    assert TO not in caught.value.detail and "7400123456" not in caught.value.detail
    return caught.value


# -- twilio -------------------------------------------------------------------------------------


def test_twilio_request_follows_the_messages_api(sms_gateway):
    assert twilio(sms_gateway.url).send(SMS) == "twilio"
    [request] = sms_gateway.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    expected = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert request.form == {"To": TO, "From": TWILIO_FROM, "Body": SMS.body, "ValidityPeriod": "300"}
    assert [(sms.to, sms.body) for sms in sms_gateway.outbox] == [(TO, SMS.body)]


def test_twilio_through_a_messaging_service(sms_gateway):
    gw = gateway({"type": "twilio", "account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN,
                  "messaging_service_sid": TWILIO_SERVICE, "base_url": sms_gateway.url + "/"})
    gw.send(Sms(TO, "hello", 40000))
    [request] = sms_gateway.requests
    assert request.form == {"To": TO, "MessagingServiceSid": TWILIO_SERVICE, "Body": "hello",
                            "ValidityPeriod": "36000"}  # Twilio's maximum


@pytest.mark.parametrize(("code", "kind"), [
    (20003, "configuration"), (21606, "configuration"), (21608, "configuration"),
    (21211, "recipient"), (21612, "recipient"), (21614, "recipient"), (21610, "recipient"),
    (20429, "unavailable"), (500, "unavailable"), (503, "unavailable"), (21602, "configuration"),
])
def test_twilio_errors_are_sorted_by_who_must_act(sms_gateway, code, kind):
    sms_gateway.program("twilio", code)
    problem = failure(twilio(sms_gateway.url))
    assert problem.kind == kind and problem.gateway == "twilio"
    if code > 999:
        assert f"Twilio error {code}" in problem.detail


def test_twilio_wrong_credentials(sms_gateway):
    problem = failure(twilio(sms_gateway.url, auth_token="not-the-token"))
    assert problem.kind == "configuration" and "20003" in problem.detail


def test_twilio_timeout_and_refused_connection(sms_gateway, refused_url):
    sms_gateway.program("twilio", "slow")
    assert failure(twilio(sms_gateway.url, timeout=0.3)).kind == "unavailable"
    problem = failure(twilio(refused_url.removesuffix("/webhook")))
    assert problem.kind == "unavailable" and "cannot connect" in problem.detail


# -- http ---------------------------------------------------------------------------------------


def test_http_json_is_filled_as_data(sms_gateway):
    tricky = Sms(TO, 'He said "hi" \\ {phone} }{ </script>', 300)
    gw = gateway({"type": "http", "url": sms_gateway.webhook_url, "method": "PUT",
                  "headers": {"Authorization": "Bearer s3cret", "X-Tenant": "cx"},
                  "json": {"recipient": {"to": "{phone}"}, "parts": [{"text": "{message}"}], "priority": 1,
                           "label": "code for {phone}", "flash": False}})
    assert gw.send(tricky).startswith("http http://127.0.0.1:")
    [request] = sms_gateway.requests
    assert request.method == "PUT" and request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == "Bearer s3cret" and request.headers["X-Tenant"] == "cx"
    assert json.loads(request.body) == {"recipient": {"to": TO}, "parts": [{"text": tricky.body}], "priority": 1,
                                        "label": f"code for {TO}", "flash": False}


def test_http_form(sms_gateway):
    webhook(sms_gateway.webhook_url, form={"to": "{phone}", "text": "{message}", "from": "CX"}).send(SMS)
    [request] = sms_gateway.requests
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.form == {"to": TO, "text": SMS.body, "from": "CX"}
    assert [(sms.to, sms.body) for sms in sms_gateway.outbox] == [(TO, SMS.body)]


@pytest.mark.parametrize(("answer", "kind"), [(500, "unavailable"), (503, "unavailable"), (429, "unavailable"),
                                              (404, "configuration"), (401, "configuration"),
                                              (204, None)])
def test_http_statuses(sms_gateway, answer, kind):
    sms_gateway.program("webhook", answer)
    gw = webhook(sms_gateway.webhook_url)
    if kind is None:
        gw.send(SMS)  # 2xx by default
    else:
        problem = failure(gw)
        assert problem.kind == kind and f"HTTP {answer}" in problem.detail


def test_http_success_status_setting(sms_gateway):
    gw = webhook(sms_gateway.webhook_url, success_status="202")
    assert failure(gw).kind == "configuration"  # the stand-in answers 200


def test_http_timeout_and_refused_connection(sms_gateway, refused_url):
    sms_gateway.program("webhook", "slow")
    problem = failure(webhook(sms_gateway.webhook_url, timeout=0.3))
    assert problem.kind == "unavailable" and "no answer within 0.3 s" in problem.detail
    assert failure(webhook(refused_url)).kind == "unavailable"


def test_http_tls_is_always_verified(sms_tls_gateway):
    url = sms_tls_gateway.url + "/webhook"
    problem = failure(webhook(url))  # a CA the system does not trust
    assert problem.kind == "configuration" and problem.detail.startswith("TLS")
    webhook(url, ca_file=str(sms_tls_gateway.ca_file)).send(SMS)
    assert [sms.to for sms in sms_tls_gateway.server.outbox] == [TO]


# -- failover and console -----------------------------------------------------------------------


def failover(*specs: dict) -> SmsGateway:
    return gateway({"type": "failover", "gateways": list(specs)})


def spec_of_twilio(url: str) -> dict:
    return {"type": "twilio", "account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN, "from": TWILIO_FROM,
            "base_url": url}


def test_failover_tries_the_next_gateway(sms_gateway, refused_url, caplog):
    sms_gateway.program("webhook", 500)
    gw = failover({"type": "http", "url": refused_url, "json": {"to": "{phone}", "text": "{message}"}},
                  {"type": "http", "url": sms_gateway.webhook_url, "json": {"to": "{phone}", "text": "{message}"}},
                  spec_of_twilio(sms_gateway.url))
    assert gw.send(SMS) == "twilio"
    assert [r.route for r in sms_gateway.requests] == ["webhook", "twilio"]
    assert "channels.sms.gateway.gateways.0" in caplog.text and "channels.sms.gateway.gateways.1" in caplog.text


def test_failover_stops_at_a_recipient_problem_and_reports_unavailable_last(sms_gateway, refused_url):
    sms_gateway.program("twilio", 21614)
    gw = failover(spec_of_twilio(sms_gateway.url),
                  {"type": "http", "url": sms_gateway.webhook_url, "json": {"to": "{phone}", "text": "{message}"}})
    assert failure(gw).kind == "recipient"
    assert [r.route for r in sms_gateway.requests] == ["twilio"]
    everything_down = failover({"type": "http", "url": refused_url, "json": {"to": "{phone}", "m": "{message}"}},
                               spec_of_twilio(refused_url.removesuffix("/webhook")))
    assert failure(everything_down).kind == "unavailable"


def test_console_writes_the_message_to_the_log_and_warns_at_start(caplog):
    caplog.set_level(logging.INFO)
    gw = gateway({"type": "console"})
    assert "for development only" in caplog.text
    gw.send(SMS)
    assert SMS.body in caplog.text and "+44 **** **3456" in caplog.text and TO not in caplog.text
    assert gw.warnings() and "for development only" in gw.warnings()[0]
