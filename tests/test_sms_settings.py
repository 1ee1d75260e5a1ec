"""What check-config says about SMS channels and their gateways: every mistake at its YAML path."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from provider import cli
from provider.channels.sms_settings import DEFAULT_MESSAGE
from provider.settings import SettingsError, load_settings
from tests.fixtures.sms import TWILIO_FROM, TWILIO_SID

TWILIO = {"type": "twilio", "account_sid": TWILIO_SID, "auth_token": "token", "from": TWILIO_FROM}
HTTP = {"type": "http", "url": "https://sms.example.com/send", "json": {"to": "{phone}", "text": "{message}"}}


def settings(sms: dict, flows: list | None = None) -> dict:
    return {
        "issuer": "http://127.0.0.1:8080",
        "secret_key": "test-secret-key-0123456789-0123456789-0123456789",
        "encryption_key": "test-encryption-key-0123456789-0123456789-0123456789",
        "channels": {"sms": {"type": "sms", **sms}},
        "flows": {"default": flows or ["password", {"enroll": {"channels": ["sms"]}},
                                       {"challenge": {"channels": ["sms"]}}]},
        "clients": [{"client_id": "desk", "redirect_uris": ["https://desk.example.com/cb"]}],
    }


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def problems(tmp_path: Path, sms: dict) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings(write(tmp_path, settings(sms, flows=["password"])), environ={})
    return caught.value.problems


@pytest.mark.parametrize(("sms", "where", "expected"), [
    ({}, "channels.sms.gateway", "required"),
    ({"gateway": {"type": "pigeon"}}, "channels.sms.gateway.type", "expected one of: console, failover, http, twilio"),
    ({"gateway": "console"}, "channels.sms.gateway", "expected a mapping with a type"),
    ({"gateway": {**HTTP, "url": "http://sms.example.com/send"}}, "channels.sms.gateway.url", "https:// is required"),
    ({"gateway": {**HTTP, "json": {"to": "{phone}"}}}, "channels.sms.gateway", "must contain {message}"),
    ({"gateway": {**HTTP, "json": {"to": "{phone}", "m": "{message} {code}"}}}, "channels.sms.gateway",
     "unknown placeholder {code}"),
    ({"gateway": {**HTTP, "form": {"a": "b"}}}, "channels.sms.gateway", "either `json` or `form`"),
    ({"gateway": {**HTTP, "headers": {"X-To": "{phone}"}}}, "channels.sms.gateway.headers", "json` or `form` only"),
    ({"gateway": {**HTTP, "success_status": "2xx"}}, "channels.sms.gateway.success_status", "200-299"),
    ({"gateway": {**HTTP, "ca_file": "/nonexistent/ca.pem"}}, "channels.sms.gateway.ca_file", "no file"),
    ({"gateway": {**HTTP, "timeout": 0}}, "channels.sms.gateway.timeout", "greater than 0"),
    ({"gateway": {**HTTP, "verify": False}}, "channels.sms.gateway.verify", "unknown key"),
    ({"gateway": {**TWILIO, "account_sid": "AC123"}}, "channels.sms.gateway.account_sid", "pattern"),
    ({"gateway": {**TWILIO, "from": "+1 (415) 555"}}, "channels.sms.gateway.from", "E.164"),
    ({"gateway": {**TWILIO, "messaging_service_sid": "MG" + "0" * 32}}, "channels.sms.gateway", "not both"),
    ({"gateway": {**TWILIO, "base_url": "http://api.example.com"}}, "channels.sms.gateway.base_url", "https://"),
    ({"gateway": {"type": "failover", "gateways": [HTTP]}}, "channels.sms.gateway.gateways", "at least 2"),
    ({"gateway": {"type": "failover", "gateways": [HTTP, {**TWILIO, "auth_token": ""}]}},
     "channels.sms.gateway.gateways.1.auth_token", "at least 1"),
    ({"gateway": {"type": "failover", "gateways": [HTTP, {"type": "failover", "gateways": [HTTP, {"type": "x"}]}]}},
     "channels.sms.gateway.gateways.1.gateways.1.type", "expected one of"),
    ({"gateway": HTTP, "code_length": 5}, "channels.sms.code_length", "greater than or equal to 6"),
    ({"gateway": HTTP, "code_ttl": 30}, "channels.sms.code_ttl", "greater than or equal to 60"),
    ({"gateway": HTTP, "message": "Code: {cod}"}, "channels.sms.message", "unknown placeholder {cod}"),
    ({"gateway": HTTP, "message": "Sign in with {issuer}"}, "channels.sms.message", "must contain {code}"),
    ({"gateway": HTTP, "message": "{code!r}"}, "channels.sms.message", "unknown placeholder"),
    ({"gateway": HTTP, "message": "{code"}, "channels.sms.message", "not a valid template"),
    ({"gateway": HTTP, "default_region": "UK"}, "channels.sms.default_region", "two-letter region code"),
    ({"gateway": HTTP, "allowed_regions": ["GB", "XX"]}, "channels.sms.allowed_regions", "found 'XX'"),
    ({"gateway": HTTP, "max_sends_per_hour": {"user": -1}}, "channels.sms.max_sends_per_hour.user", "greater"),
    ({"gateway": HTTP, "max_sends_per_hour": {"phone": 3}}, "channels.sms.max_sends_per_hour.phone", "unknown key"),
    ({"gateway": HTTP, "resend": "sometimes"}, "channels.sms.resend", "boolean"),
])
def test_mistakes_are_named_at_their_yaml_path(tmp_path, sms, where, expected):
    found = problems(tmp_path, sms)
    assert len(found) == 1, found
    assert f"settings.yaml: {where}: " in found[0] and expected in found[0], found


def test_all_mistakes_come_at_once(tmp_path):
    found = problems(tmp_path, {"gateway": {"type": "failover", "gateways": [{**HTTP, "timeout": -1},
                                                                             {**TWILIO, "account_sid": "x"}]},
                                "code_length": 4})
    assert [line.split(": ")[1] for line in found] == ["channels.sms.gateway.gateways.0.timeout",
                                                       "channels.sms.gateway.gateways.1.account_sid",
                                                       "channels.sms.code_length"]


def test_defaults(tmp_path):
    loaded = load_settings(write(tmp_path, settings({"gateway": TWILIO})), environ={})
    s = loaded.parsed_channels["sms"].settings
    assert (s.code_length, s.code_ttl, s.max_attempts, s.resend, s.resend_cooldown) == (6, 300, 5, True, 30)
    assert (s.max_sends_per_hour.user, s.max_sends_per_hour.number, s.max_sends_per_hour.ip) == (5, 5, 20)
    assert s.message == DEFAULT_MESSAGE and s.default_region is None and s.allowed_regions == []
    assert s.render("012345") == "Your twostep verification code is 012345. It expires in 5 minutes."
    assert s.gateway.timeout == 10 and s.gateway.base_url == "https://api.twilio.com"
    assert s.gateway.auth_token.get_secret_value() == "token"
    assert loaded.warnings == []


def test_check_config_warns_about_the_console_gateway_and_risky_settings(tmp_path, capsys):
    path = write(tmp_path, settings({"gateway": {"type": "console"}, "default_region": "fr", "allowed_regions": ["GB"],
                                     "resend_cooldown": 0, "message": "{code} " + "x" * 200}))
    assert cli.main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "warning: channels.sms.gateway: the console gateway writes verification codes" in out
    assert "warning: channels.sms.message: 207 characters, more than one SMS (160)" in out
    assert "warning: channels.sms.default_region: FR is not among the allowed_regions" in out
    assert "warning: channels.sms: a send limit is 0 (off)" in out
    assert "  channel sms: sms" in out
