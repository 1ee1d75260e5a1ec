"""RSA settings as check-config sees them, and `twostep rsa-test`."""
from __future__ import annotations

import io

import pytest
import yaml

from provider import cli
from provider.settings import SettingsError, load_settings
from tests.fixtures.radius import AGENT_PASSCODE, NEXT_TOKENCODE, NEXTCODE_PASSCODE

ALONE = {"default": ["password"]}  # a broken channel is also an unknown one in the flows that use it
RADIUS = {"type": "radius", "host": "rsa.example.com", "secret": "shared-secret-0123456789"}


def settings(channel: dict, flows=None) -> dict:
    return {
        "issuer": "http://127.0.0.1:8080",
        "secret_key": "test-secret-key-0123456789-0123456789",
        "encryption_key": "test-encryption-key-0123456789-0123456789",
        "channels": {"rsa": {"type": "rsa", **channel}},
        "flows": flows or {"default": ["password", {"challenge": {"channels": ["rsa"]}}]},
        "clients": [{"client_id": "desk", "redirect_uris": ["https://desk.example.com/cb"]}],
    }


def write(tmp_path, data: dict):
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def problems(tmp_path, data: dict) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings(write(tmp_path, data), environ={})
    return caught.value.problems


def test_defaults(tmp_path):
    channel = load_settings(write(tmp_path, settings({"transport": RADIUS})), environ={}).parsed_channels["rsa"]
    s, t = channel.settings, channel.settings.transport
    assert (s.pin_length, s.tokencode_length, channel.passcode_length, s.max_attempts) == (8, 6, 14, 5)
    assert (t.port, t.timeout, t.retries, t.nas_identifier, t.require_message_authenticator) == (
        1812, 5.0, 2, "twostep", False)
    assert channel.amr == "otp" and not channel.self_enrollment
    assert channel.transport.describe() == "radius rsa.example.com:1812"


@pytest.mark.parametrize(("transport", "where", "expected"), [
    ({**RADIUS, "port": 0}, "transport.port", "greater than or equal to 1"),
    ({"type": "radius", "host": "rsa.example.com"}, "transport.secret", "required, but missing"),
    ({**RADIUS, "secret": ""}, "transport.secret", "the shared secret is empty"),
    ({**RADIUS, "servers": [{"host": "replica"}]}, "transport", "not both"),
    ({"type": "radius", "secret": "s"}, "transport", "host is required"),
    ({**RADIUS, "host": None, "servers": [{"host": "a"}, {"port": 1812}]}, "transport.servers.1.host", "required"),
    ({**RADIUS, "colour": "red"}, "transport.colour",
     "unknown key; expected one of: host, nas_identifier, new_pin_prompt, port, require_message_authenticator,"
     " retries, secret, servers, timeout, type"),
    ({**RADIUS, "servers": None, "host": None} | {"servers": [{"host": "a", "weight": 2}]},
     "transport.servers.0.weight", "unknown key; expected one of: host, port"),
    ({**RADIUS, "new_pin_prompt": "("}, "transport.new_pin_prompt", "not a regular expression"),
    ({"type": "ldap"}, "transport.type", "expected one of: radius, rest; found 'ldap'"),
    ("radius", "transport", "a mapping with a type"),
    ({"type": "rest", "base_url": "http://am.example.com:5555/mfa/v1_1", "client_key": "k", "client_id": "a"},
     "transport.base_url", "an https URL"),
    ({"type": "rest", "base_url": "https://am.example.com:5555/mfa/v1_1", "client_id": "a"},
     "transport.client_key", "required, but missing"),
    ({"type": "rest", "base_url": "https://am.example.com:5555/mfa/v1_1", "client_key": "k", "client_id": "a",
      "ca_file": "/nonexistent/am-ca.pem"}, "transport.ca_file", "cannot read CA certificates (PEM)"),
])
def test_transport_mistakes_are_named_by_their_yaml_path(tmp_path, transport, where, expected):
    found = problems(tmp_path, settings({"transport": transport}, ALONE))
    assert len(found) == 1, found
    assert f": channels.rsa.{where}: " in found[0] and expected in found[0], found


@pytest.mark.parametrize(("option", "value"), [("pin_length", 9), ("tokencode_length", 7),
                                               ("username_attribute", "__class__"), ("max_attempts", 0)])
def test_channel_mistakes(tmp_path, option, value):
    found = problems(tmp_path, settings({"transport": RADIUS, option: value}, ALONE))
    assert len(found) == 1 and f": channels.rsa.{option}: " in found[0], found


def test_rsa_cannot_be_enrolled(tmp_path):
    flows = {"default": ["password", {"enroll": {"channels": ["rsa"]}}, {"challenge": {"channels": ["rsa"]}}]}
    found = problems(tmp_path, settings({"transport": RADIUS}, flows))
    assert any("flows.default.1.enroll.channels" in p and "managed by an administrator" in p for p in found), found


def test_check_config_warns_of_a_short_secret(tmp_path, capsys):
    path = write(tmp_path, settings({"transport": {**RADIUS, "secret": "short"}}))
    assert cli.main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "channel rsa: rsa" in out
    assert "warning: channels.rsa.transport: the RADIUS shared secret is shorter than 16 characters" in out
    assert "short" not in out.replace("shorter", "")


def rsa_test(monkeypatch, capsys, path, stdin: str, *args: str) -> tuple[int, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    status = cli.main(["rsa-test", *args, "--config", str(path)])
    return status, capsys.readouterr().out


@pytest.mark.parametrize(("username", "stdin", "status", "expected"), [
    ("agent", AGENT_PASSCODE + "\n", 0, "success: RSA accepted the passcode"),
    ("agent", "12345678000000\n", 1, "the passcode is invalid (RSA answered, so the connection works)"),
    ("nextcode", f"{NEXTCODE_PASSCODE}\n{NEXT_TOKENCODE}\n", 0, "success"),
])
def test_rsa_test_command(tmp_path, radius, monkeypatch, capsys, username, stdin, status, expected):
    path = write(tmp_path, settings({"transport": radius.transport()}))
    code, out = rsa_test(monkeypatch, capsys, path, stdin, username)
    assert code == status and expected in out, out
    assert f"asking RSA through radius 127.0.0.1:{radius.port}" in out
    assert AGENT_PASSCODE not in out and radius.secret not in out


def test_rsa_test_command_problems(tmp_path, radius, radius_factory, rsa_am, monkeypatch, capsys):
    path = write(tmp_path, settings({"transport": rsa_am.transport(client_key="wrong-key")}))
    code, out = rsa_test(monkeypatch, capsys, path, AGENT_PASSCODE + "\n", "agent")
    assert code == 1 and "the RSA configuration is invalid: " in out and "HTTP 401" in out
    server = radius_factory()
    server.stop()
    path = write(tmp_path, settings({"transport": server.transport()}))
    code, out = rsa_test(monkeypatch, capsys, path, AGENT_PASSCODE + "\n", "agent")
    assert code == 1 and "there is an issue with the RSA server: " in out


def test_rsa_test_needs_an_rsa_channel(tmp_path, monkeypatch, capsys):
    data = settings({"transport": RADIUS})
    data["channels"]["token"] = {"type": "rsa", "transport": RADIUS}
    path = write(tmp_path, data)
    monkeypatch.setattr("sys.stdin", io.StringIO("x\n"))
    assert cli.main(["rsa-test", "agent", "--config", str(path)]) == 1
    assert "name the RSA channel with --channel (RSA channels: rsa, token)" in capsys.readouterr().err
