"""What check-config catches in flows and channels (issue: login flows from YAML)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from provider import cli
from provider.settings import SettingsError, load_settings

KEY = "test-encryption-key-0123456789-0123456789"


def settings(flows, channels=None, clients=None) -> dict:
    return {
        "issuer": "http://127.0.0.1:8080",
        "secret_key": "test-secret-key-0123456789-0123456789",
        "encryption_key": KEY,
        "channels": channels if channels is not None else {"totp": {"type": "totp"}},
        "flows": flows,
        "clients": clients or [{"client_id": "desk", "redirect_uris": ["https://desk.example.com/cb"]}],
    }


def problems(tmp_path: Path, data: dict) -> list[str]:
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SettingsError) as caught:
        load_settings(path, environ={})
    return caught.value.problems


ENROL = {"enroll": {"channels": ["totp"]}}


@pytest.mark.parametrize(("flows", "where", "expected"), [
    ({"default": ["password", {"challenge": {"channels": ["phone"]}}]},
     "flows.default.1.challenge.channels", "unknown channel 'phone' (channels: totp)"),
    ({"default": ["password", {"enroll": {"channels": ["totp"], "allow": {"until": "2027-02-30"}}}]},
     "flows.default.1.enroll.allow", "date"),
    ({"default": ["password", {"enroll": {"channels": ["totp", "totp"]}}]},
     "flows.default.1.enroll.channels", "listed twice"),
    ({"default": ["password", {"enroll": {"channels": []}}]},
     "flows.default.1.enroll.channels", "at least 1"),
    ({"default": ["password", {"challenge": {"channels": ["totp"], "when": {"groups": []}}}]},
     "flows.default.1.challenge.when.groups", "at least 1"),
    ({"default": ["password", {"challenge": {"channels": ["totp"], "if": {"groups": ["a"]}}}]},
     "flows.default.1.challenge.if", "unknown option"),
    ({"default": {"acr": "", "steps": ["password"]}}, "flows.default.acr", "non-empty"),
])
def test_flow_mistakes_are_named(tmp_path, flows, where, expected):
    found = problems(tmp_path, settings(flows))
    assert len(found) == 1, found
    assert f": {where}" in found[0] and expected in found[0], found


def test_duplicate_acr_values(tmp_path):
    flows = {"default": {"acr": "gold", "steps": ["password"]}, "other": {"acr": "gold", "steps": ["password"]}}
    assert any("have the same acr 'gold'" in p for p in problems(tmp_path, settings(flows)))


def test_channels_need_an_encryption_key(tmp_path):
    data = settings({"default": ["password", ENROL]})
    del data["encryption_key"]
    assert any(": encryption_key: required when channels are configured" in p for p in problems(tmp_path, data))


def test_unknown_channel_type_lists_the_valid_ones(tmp_path):
    found = problems(tmp_path, settings({"default": ["password"]}, channels={"app": {"type": "carrier-pigeon"}}))
    assert any(": channels.app.type: expected one of: " in p and "totp" in p for p in found), found


@pytest.mark.parametrize(("option", "value"), [("digits", 7), ("secret_bytes", 10), ("algorithm", "MD5"),
                                               ("colour", "red")])
def test_totp_settings_are_checked(tmp_path, option, value):
    found = problems(tmp_path, settings({"default": ["password"]}, channels={"app": {"type": "totp", option: value}}))
    assert len(found) == 1 and f": channels.app.{option}: " in found[0], found


def test_check_config_warns(tmp_path, capsys):
    data = settings({"default": ["password", ENROL], "spare": ["password"]},
                    channels={"totp": {"type": "totp", "algorithm": "SHA256"}})
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(data))
    assert cli.main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "warning: channels.totp: Microsoft Authenticator supports only SHA1, 6 digits, 30 seconds" in out
    assert "warning: flow 'spare' is used by no client" in out
    assert "flow default: password -> enroll" in out


def test_demo_settings_offer_the_app_and_sms():
    loaded = load_settings("config/demo.yaml", environ={})
    steps = loaded.parsed_flows["default"].steps
    assert [step.type_name for step in steps] == ["password", "enroll", "challenge"]
    assert steps[1].options.channels == ["totp", "sms"]
    assert [w.split(":")[0] for w in loaded.warnings] == ["channels.sms.gateway"]  # the console gateway


def test_check_config_warns_about_unsafe_production_settings(tmp_path, capsys):
    data = settings({"default": ["password"]}, channels={},
                    clients=[{"client_id": "desk", "client_secret": "s" * 20, "require_pkce": False,
                              "redirect_uris": ["https://desk.example.com/cb"]}])
    data.update(issuer="http://login.example.com", lockout={"threshold": 0, "ip_threshold": 0})
    del data["encryption_key"]
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(data))
    assert cli.main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    for expected in ("issuer: http on a non-loopback host", "secret_key: shorter than 43 characters",
                     "clients.0.require_pkce: false", "lockout.threshold: 0", "lockout.ip_threshold: 0"):
        assert f"warning: {expected}" in out, expected


def test_an_unknown_channel_key_lists_the_channels_own_keys(tmp_path):
    found = problems(tmp_path, settings({"default": ["password"]}, channels={"app": {"type": "totp", "colour": 1}}))
    assert len(found) == 1 and ": channels.app.colour: unknown key; expected one of: algorithm, digits," in found[0]
