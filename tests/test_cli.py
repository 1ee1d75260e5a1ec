"""The `twostep` command, run in-process through `provider.cli.main` against a settings file
with its own SQLite database and key file; once through the installed console script."""

from __future__ import annotations

import io
import json
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from provider.app import open_directory
from provider.cli import main
from provider.directory.builtin import BuiltinDirectory
from provider.errors import AccountDisabled, InvalidCredentials
from provider.oidc.keys import SigningKeys
from provider.settings import load_settings

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "tr0ub4dor&3-but-longer"


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


@pytest.fixture
def settings_path(tmp_path: Path) -> Path:
    """Relative paths throughout: the database and keys land beside the settings file."""
    path = tmp_path / "site" / "twostep.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({
        "issuer": "https://login.example.com",
        "secret_key": "cli-test-secret-key-0123456789-0123456789-abcdef",
        "storage": {"url": "sqlite:///var/twostep.db"},
        "keys": {"path": "var/jwks.json"},
        "directory": {"type": "builtin", "password_hash": {"memory_cost": 8192, "time_cost": 1}},
        "flows": {"default": ["password"]},
        "clients": [
            {"client_id": "agent-desk", "client_secret": "agent-desk-secret-0123456789",
             "redirect_uris": ["https://desk.example.com/callback", "https://desk.example.com/cb2"]},
            {"client_id": "softphone", "redirect_uris": ["http://127.0.0.1:9999/cb"]},
        ],
    }))
    return path


@pytest.fixture
def twostep(settings_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Runs `twostep ARGS... --config settings_path`, with `stdin` as standard input."""

    def run(*args: str, stdin: str = "", config: Path | None = settings_path) -> Run:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        code = main([*args, *(["--config", str(config)] if config else [])])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def directory(settings_path: Path) -> BuiltinDirectory:
    return open_directory(load_settings(settings_path, environ={}))


# -- no command ------------------------------------------------------------------------------


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    out = capsys.readouterr().out
    assert out.startswith("usage: twostep")
    for command in ("serve", "check-config", "users", "keys"):
        assert command in out


@pytest.mark.parametrize(("group", "commands"), [("users", ["add", "list", "passwd", "disable"]), ("keys", ["rotate"])])
def test_a_command_group_alone_prints_its_help(
    capsys: pytest.CaptureFixture[str], group: str, commands: list[str]
) -> None:
    assert main([group]) == 2
    out = capsys.readouterr().out
    assert out.startswith(f"usage: twostep {group}")
    assert all(command in out for command in commands)


# -- check-config ---------------------------------------------------------------------------


def test_check_config_prints_ok_and_a_line_per_client_and_flow(twostep, settings_path: Path) -> None:
    result = twostep("check-config")
    assert result.code == 0
    assert result.err == ""
    assert result.out.splitlines() == [
        f"OK: {settings_path} (issuer https://login.example.com)",
        "  client agent-desk: confidential, PKCE, flow default, 2 redirect URI(s)",
        "  client softphone: public, PKCE, flow default, 1 redirect URI(s)",
        "  flow default: password",
    ]


def test_check_config_reads_twostep_config_when_no_option_is_given(
    twostep, settings_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWOSTEP_CONFIG", str(settings_path))
    result = twostep("check-config", config=None)
    assert result.code == 0
    assert result.out.startswith(f"OK: {settings_path} ")


def test_check_config_prints_every_problem_and_exits_1(twostep, settings_path: Path) -> None:
    data = yaml.safe_load(settings_path.read_text())
    data["secret_key"] = "short"
    data["clients"][0]["colour"] = "red"
    data["clients"][1]["redirect_uris"] = ["/relative"]
    data["flows"]["default"].append("sorcery")
    settings_path.write_text(yaml.safe_dump(data))
    result = twostep("check-config")
    assert result.code == 1
    assert result.out == ""
    lines = result.err.splitlines()
    assert lines[0] == "twostep: the settings are not valid:"
    assert sorted(line.split(": ")[1] for line in lines[1:]) == [
        "clients.0.colour", "clients.1.redirect_uris.0", "flows.default.1", "secret_key"
    ]
    assert all(line.startswith(f"  {settings_path}: ") for line in lines[1:])
    assert "Traceback" not in result.err


def test_check_config_of_a_missing_file_is_one_clean_line(twostep, tmp_path: Path) -> None:
    result = twostep("check-config", config=tmp_path / "nowhere.yaml")
    assert result.code == 1
    assert result.err == (
        f"twostep: the settings are not valid:\n  {tmp_path / 'nowhere.yaml'}: cannot read: No such file or directory\n"
    )


def test_the_console_script_exits_with_the_status(settings_path: Path) -> None:
    script = Path(sys.executable).with_name("twostep")
    assert script.is_file(), "install the package (make install) for the twostep script"
    ok = subprocess.run([script, "check-config", "--config", settings_path], capture_output=True, text=True,
                        timeout=30, check=False)
    assert (ok.returncode, ok.stderr) == (0, "")
    assert ok.stdout.startswith("OK: ")
    settings_path.write_text(settings_path.read_text() + "colour: red\n")
    bad = subprocess.run([script, "check-config", "--config", settings_path], capture_output=True, text=True,
                         timeout=30, check=False)
    assert bad.returncode == 1
    assert f"{settings_path}: colour: unknown key" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert bad.stdout == ""


# -- users ------------------------------------------------------------------------------------


def test_users_add_then_list(twostep, settings_path: Path) -> None:
    added = twostep("users", "add", "alice", "--email", "alice@example.com", "--name", "Alice Agent",
                    "--group", "agents", "--group", "leads", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.code == 0, added.err
    assert re.fullmatch(r"added alice \([0-9a-f-]{36}\)\n", added.out)
    assert PASSWORD not in added.output
    user = directory(settings_path).authenticate("alice", PASSWORD)
    assert (user.email, user.name, user.groups) == ("alice@example.com", "Alice Agent", ("agents", "leads"))
    assert (settings_path.parent / "var" / "twostep.db").is_file()

    assert twostep("users", "add", "bob", stdin="bobs-password\n").code == 0
    listing = twostep("users", "list")
    assert listing.code == 0
    assert [line.split("\t") for line in listing.out.splitlines()] == [
        ["alice", user.id, "active", "alice@example.com", "agents,leads"],
        ["bob", directory(settings_path).find("bob").id, "active", "-", "-"],
    ]


def test_the_password_from_stdin_is_not_echoed(twostep, settings_path: Path) -> None:
    # Without --password-stdin too: standard input is not a terminal, so there is no prompt.
    result = twostep("users", "add", "alice", stdin=PASSWORD + "\r\n")
    assert result.code == 0
    assert PASSWORD not in result.output
    assert "password" not in result.output.lower()
    assert directory(settings_path).authenticate("alice", PASSWORD).username == "alice"


def test_a_terminal_prompts_twice_without_echo(twostep, settings_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([PASSWORD, PASSWORD, PASSWORD, "a typo"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    assert main(["users", "add", "alice", "--config", str(settings_path)]) == 0
    assert main(["users", "add", "bob", "--config", str(settings_path)]) == 1
    assert directory(settings_path).find("bob") is None


@pytest.mark.parametrize("stdin", ["", "\n", "\r\n"])
def test_an_empty_password_is_refused(twostep, settings_path: Path, stdin: str) -> None:
    result = twostep("users", "add", "alice", "--password-stdin", stdin=stdin)
    assert result.code == 1
    assert result.err == "twostep: the password is empty\n"
    assert directory(settings_path).find("alice") is None


@pytest.mark.parametrize("spelling", ["alice", "ALICE"])
def test_adding_an_existing_user_exits_1(twostep, spelling: str) -> None:
    assert twostep("users", "add", "alice", stdin=PASSWORD).code == 0
    result = twostep("users", "add", spelling, stdin="another-password")
    assert result.code == 1
    assert result.err == f"twostep: a user named {spelling!r} already exists\n"
    assert "another-password" not in result.output


def test_users_passwd_changes_the_password(twostep, settings_path: Path) -> None:
    assert twostep("users", "add", "alice", stdin=PASSWORD).code == 0
    result = twostep("users", "passwd", "alice", "--password-stdin", stdin=NEW_PASSWORD + "\n")
    assert (result.code, result.out) == (0, "password changed for alice\n")
    assert NEW_PASSWORD not in result.output
    users = directory(settings_path)
    assert users.authenticate("alice", NEW_PASSWORD).username == "alice"
    with pytest.raises(InvalidCredentials):
        users.authenticate("alice", PASSWORD)


def test_users_disable_stops_sign_in(twostep, settings_path: Path) -> None:
    assert twostep("users", "add", "alice", stdin=PASSWORD).code == 0
    result = twostep("users", "disable", "alice")
    assert (result.code, result.out) == (0, "disabled alice\n")
    with pytest.raises(AccountDisabled):
        directory(settings_path).authenticate("alice", PASSWORD)
    assert "\tdisabled\t" in twostep("users", "list").out


@pytest.mark.parametrize("command", [["passwd", "nobody"], ["disable", "nobody"]])
def test_changing_an_unknown_user_exits_1(twostep, command: list[str]) -> None:
    result = twostep("users", *command, stdin=PASSWORD)
    assert result.code == 1
    assert result.err == "twostep: no user named 'nobody'\n"


def test_users_commands_report_invalid_settings_without_a_traceback(twostep, settings_path: Path) -> None:
    settings_path.write_text(settings_path.read_text() + "colour: red\n")
    result = twostep("users", "add", "alice", stdin=PASSWORD)
    assert result.code == 1
    assert f"{settings_path}: colour: unknown key" in result.err
    assert PASSWORD not in result.output


# -- keys --------------------------------------------------------------------------------------


def test_keys_rotate_adds_the_new_signer_and_keeps_the_old_key(twostep, settings_path: Path) -> None:
    path = settings_path.parent / "var" / "jwks.json"
    before = SigningKeys.load_or_create(path)
    old_token = before.sign({"sub": "alice"})

    result = twostep("keys", "rotate")
    assert result.code == 0, result.err
    kid = re.fullmatch(r"new signing key (\S+); restart twostep to sign with it\. Older keys stay published\.\n",
                       result.out).group(1)

    assert len(json.loads(path.read_text())["keys"]) == 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    after = SigningKeys.load(path)
    assert after.current.kid == kid != before.current.kid
    assert after.verify(old_token).claims["sub"] == "alice"
    assert [key["kid"] for key in after.public_jwks()["keys"]] == [before.current.kid, kid]
    assert all("d" not in key for key in after.public_jwks()["keys"])
    new_token = after.sign({"sub": "bob"})
    assert after.verify(new_token).header["kid"] == kid
    assert not list(path.parent.glob("*.tmp"))


def test_keys_rotate_without_a_key_file_creates_one(twostep, settings_path: Path) -> None:
    result = twostep("keys", "rotate")
    assert result.code == 0
    path = settings_path.parent / "var" / "jwks.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SigningKeys.load(path).current.kid in result.out
