"""Keycloak in the settings, the wiring and the command line: `directory: {type: keycloak}` and
`enrollments: {type: keycloak}` with clean error paths; build() picking the implementations
(and no database for a sidecar that keeps everything in Keycloak); the `users` commands
refusing a Keycloak directory while `enrollments` work on it."""
from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from provider.app import build, create_app, open_user_admin
from provider.cli import main
from provider.directory.keycloak import KeycloakDirectory
from provider.enrollment import Enrollment
from provider.enrollment.keycloak import KeycloakEnrollmentStore
from provider.enrollment.sql import SqlEnrollmentStore
from provider.errors import ConfigurationError
from provider.settings import KeycloakDirectorySettings, load_settings
from tests.fixtures.app import base_settings
from tests.fixtures.keycloak import CLIENT_SECRET, StandInKeycloak
from tests.test_settings import DELETE, changed, problems_of, write

ENCRYPTION_KEY = "test-encryption-key-0123456789-0123456789"
TOTP_CHANNEL = {"type": "totp", "issuer": "Example CX"}


@pytest.fixture
def valid(tmp_path: Path) -> dict[str, Any]:
    """Valid settings with a Keycloak directory and Keycloak-kept enrolments."""
    return {**base_settings(tmp_path, "memory://"), "issuer": "https://login.example.com",
            "directory": {"type": "keycloak", "url": "https://sso.example.com/", "realm": "acme",
                          "client_id": "twostep", "client_secret": CLIENT_SECRET},
            "enrollments": {"type": "keycloak"}}


def test_keycloak_settings_load(tmp_path: Path, valid: dict[str, Any]) -> None:
    settings = load_settings(write(tmp_path, valid), environ={})
    directory = settings.directory
    assert isinstance(directory, KeycloakDirectorySettings)
    assert (directory.url, directory.realm, directory.client_id) == ("https://sso.example.com", "acme", "twostep")
    assert directory.client_secret.get_secret_value() == CLIENT_SECRET and CLIENT_SECRET not in repr(settings)
    assert (directory.timeout, directory.ca_file) == (5.0, None)
    assert settings.enrollments.type == "keycloak"
    assert load_settings(write(tmp_path, changed(valid, "enrollments", DELETE)), environ={}).enrollments.type == "sql"


BAD = [
    ("directory.url", DELETE, "directory.url", "required, but missing"),
    ("directory.client_secret", DELETE, "directory.client_secret", "required, but missing"),
    ("directory.realm", "", "directory.realm", "at least 1 character"),
    ("directory.url", "sso.example.com", "directory.url", "Keycloak's base URL: http(s)"),
    ("directory.url", "https://sso.example.com/?realm=acme", "directory.url", "without query or fragment"),
    ("directory.client_secret", "", "directory.client_secret", "Clients > the client > Credentials"),
    ("directory.timeout", 0, "directory.timeout", "greater than 0"),
    ("directory.timeout", 120, "directory.timeout", "less than or equal to 60"),
    ("directory.colour", "red", "directory.colour", "unknown key; expected one of: ca_file, client_id, client_secret,"
                                                    " groups_claim, realm, timeout, type, url"),
    ("directory.groups_claim", "has space", "directory.groups_claim", "should match pattern"),
    ("directory.ca_file", "certs/missing.pem", "directory.ca_file", "no such file: "),
    ("directory.type", "ldap", "directory", "'builtin', 'keycloak'"),
    ("enrollments.type", "redis", "enrollments", "'sql', 'keycloak'"),
    ("enrollments.colour", "red", "enrollments.colour", "unknown key; expected one of: type"),
    ("directory", {"type": "builtin"}, "enrollments.type", "need directory.type keycloak, found 'builtin'"),
    ("demo", {"users": [{"username": "demo", "password": "demo"}]}, "demo.users", "create them in Keycloak"),
    ("channels", {"my totp": TOTP_CHANNEL}, "channels.my totp", "becomes the Keycloak attribute twostep.<name>"),
]


@pytest.mark.parametrize(("where", "value", "named", "expected"), BAD, ids=[f"{c[0]}={c[1]!r}"[:50] for c in BAD])
def test_each_mistake_is_one_problem_at_its_yaml_path(tmp_path, valid, where, value, named, expected) -> None:
    data = changed(valid, where, value)
    if where == "channels":
        data["encryption_key"] = ENCRYPTION_KEY
    path = write(tmp_path, data)
    problems = problems_of(path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: {named}: "), problems
    assert expected in problems[0]


def test_problems_come_all_at_once(tmp_path, valid) -> None:
    data = changed(changed(changed(valid, "directory", {"type": "keycloak"}), "enrollments.colour", 1),
                   "channels", {"a.b": TOTP_CHANNEL})
    data["encryption_key"] = ENCRYPTION_KEY
    path = write(tmp_path, data)
    assert sorted(p.split(": ")[1] for p in problems_of(path)) == [
        "channels.a.b", "directory.client_id", "directory.client_secret", "directory.realm", "directory.url",
        "enrollments.colour"]


def test_ca_file_relative_to_the_settings_file(tmp_path, valid) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "keycloak-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    settings = load_settings(write(tmp_path, changed(valid, "directory.ca_file", "certs/keycloak-ca.pem")), environ={})
    assert settings.resolve(settings.directory.ca_file) == tmp_path / "certs" / "keycloak-ca.pem"


@pytest.mark.parametrize(("url", "warned"), [("http://keycloak.internal:8080", True), ("http://127.0.0.1:8080", False),
                                             ("https://sso.example.com", False)])
def test_plain_http_to_a_remote_keycloak_is_a_warning(tmp_path, valid, url, warned) -> None:
    settings = load_settings(write(tmp_path, changed(valid, "directory.url", url)), environ={})
    assert any(w.startswith("directory.url: http on a non-loopback host") for w in settings.warnings) is warned


# -- wiring --------------------------------------------------------------------------------------


def served_settings(tmp_path: Path, keycloak: StandInKeycloak, enrollments: str = "keycloak") -> Path:
    data = {**base_settings(tmp_path, "memory://"), "issuer": "https://login.example.com",
            "directory": keycloak.directory_settings(), "enrollments": {"type": enrollments},
            "encryption_key": ENCRYPTION_KEY, "channels": {"totp": TOTP_CHANNEL},
            "storage": {"url": f"sqlite:///{tmp_path}/sidecar.db"}}
    return write(tmp_path, data)


def test_a_sidecar_keeping_everything_in_keycloak_has_no_database(tmp_path, keycloak) -> None:
    twostep = build(load_settings(served_settings(tmp_path, keycloak), environ={}))
    assert isinstance(twostep.directory, KeycloakDirectory)
    assert isinstance(twostep.enrollments, KeycloakEnrollmentStore)
    assert not (tmp_path / "sidecar.db").exists()
    assert keycloak.count("profile") == 1  # the start-up check
    twostep.directory.find("nobody")
    assert keycloak.count("token", "client_credentials") == 1  # one connection, one token for both


def test_sql_enrolments_with_a_keycloak_directory(tmp_path, keycloak) -> None:
    keycloak.set_unmanaged_policy("DISABLED")  # not needed: nothing is kept in Keycloak
    twostep = build(load_settings(served_settings(tmp_path, keycloak, "sql"), environ={}))
    assert isinstance(twostep.directory, KeycloakDirectory)
    assert isinstance(twostep.enrollments, SqlEnrollmentStore)
    assert keycloak.count("profile") == 0


def test_administrator_managed_channels_need_no_attribute(tmp_path, keycloak) -> None:
    """RSA tokens are managed in RSA, not registered in twostep: no `twostep.<rsa channel>`."""
    keycloak.set_unmanaged_policy("DISABLED")
    keycloak.declare("twostep.totp")
    path = served_settings(tmp_path, keycloak)
    data = yaml.safe_load(path.read_text())
    data["channels"]["rsa token"] = {"type": "rsa", "transport": {"type": "radius", "host": "rsa.example.com",
                                                                  "secret": "shared-secret-0123456789"}}
    twostep = build(load_settings(write(tmp_path, data), environ={}))
    assert isinstance(twostep.enrollments, KeycloakEnrollmentStore)


def test_twostep_refuses_to_start_when_keycloak_would_drop_the_enrolments(tmp_path, keycloak) -> None:
    keycloak.set_unmanaged_policy("DISABLED")
    with pytest.raises(ConfigurationError, match=r"twostep\.totp: not declared in the user profile"):
        create_app(str(served_settings(tmp_path, keycloak)))


# -- the command line ----------------------------------------------------------------------------


def run(monkeypatch, capsys, *args: str, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", [["list"], ["add", "bob"], ["passwd", "alice"], ["disable", "alice"]])
def test_users_commands_refuse_a_keycloak_directory(tmp_path, keycloak, monkeypatch, capsys, command) -> None:
    code, out, err = run(monkeypatch, capsys, "users", *command, "--config", str(served_settings(tmp_path, keycloak)),
                         stdin="a new password\n")
    assert code == 1 and out == ""
    assert err == ("twostep: `twostep users` manages the built-in directory, but these settings use directory.type"
                   " keycloak: manage users, passwords and groups in Keycloak's admin console\n")
    with pytest.raises(ConfigurationError):
        open_user_admin(load_settings(served_settings(tmp_path, keycloak), environ={}))


def test_enrollments_commands_work_on_keycloak(tmp_path, keycloak, monkeypatch, capsys) -> None:
    path = served_settings(tmp_path, keycloak)
    alice = keycloak.add_user("alice", "pw")
    twostep = build(load_settings(path, environ={}))
    twostep.enrollments.save(Enrollment(alice.id, "totp", "totp", secret=b"k" * 20, phone=None, created_at=1.7e9))
    code, out, _ = run(monkeypatch, capsys, "enrollments", "list", "ALICE", "--config", str(path))
    assert code == 0 and out.startswith("totp\ttotp\tregistered 2023-11-14 22:13 UTC\tlast used never")
    code, out, _ = run(monkeypatch, capsys, "enrollments", "reset", "alice", "--config", str(path))
    assert code == 0 and out.startswith("removed 1 registration(s) of alice")
    assert "twostep.totp" not in alice.attributes


def test_the_example_settings_load() -> None:
    secrets = {name: f"{name.lower()}-0123456789-0123456789-0123456789" for name in (
        "TWOSTEP_SECRET_KEY", "TWOSTEP_ENCRYPTION_KEY", "KEYCLOAK_CLIENT_SECRET", "AGENT_DESK_SECRET",
        "KEYCLOAK_BROKER_SECRET")}
    path = Path(__file__).resolve().parent.parent / "config" / "keycloak.example.yaml"
    environ = {**secrets, "KEYCLOAK_URL": "https://sso.acme.test", "KEYCLOAK_REALM": "acme"}
    settings = load_settings(path, environ=environ)
    assert isinstance(settings.directory, KeycloakDirectorySettings) and settings.enrollments.type == "keycloak"
    assert settings.client("keycloak-broker").redirect_uris == ["https://sso.acme.test/realms/acme/broker/twostep/endpoint"]
    assert [step.type_name for step in settings.parsed_flows["default"].steps] == ["password", "enroll", "challenge"]
    problems = problems_of(path, environ={})
    assert any("KEYCLOAK_CLIENT_SECRET is not set" in p for p in problems)
