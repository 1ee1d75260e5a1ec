"""The settings loader: one YAML file plus flows, parsed into frozen models. Every problem
names the file, the YAML path and what was expected, and all problems come at once."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from provider.app import open_directory
from provider.login.flows import FlowProblem, parse_flow
from provider.login.steps import STEP_TYPES, Step
from provider.settings import ClientSettings, Settings, SettingsError, load_settings
from tests.fixtures.app import SECRET, base_settings

REPO = Path(__file__).resolve().parent.parent
DELETE = object()


@pytest.fixture
def valid(tmp_path: Path) -> dict[str, Any]:
    """A valid settings mapping: two clients, an inline `default` flow."""
    return {**base_settings(tmp_path, "memory://"), "issuer": "https://login.example.com"}


def write(folder: Path, data: Any, name: str = "settings.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def changed(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A deep copy of `data` with the value at a dotted path replaced (or deleted)."""
    data = copy.deepcopy(data)
    *parents, last = [int(part) if part.isdigit() else part for part in dotted.split(".")]
    node = data
    for part in parents:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return data


def problems_of(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings(path, environ={} if environ is None else environ)
    assert caught.value.problems, "a SettingsError without problems"
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


@pytest.fixture
def notice_step() -> Iterator[type[Step]]:
    """A second step type (only `password` ships yet), registered for one test."""

    class Options(BaseModel):
        model_config = {"extra": "forbid", "frozen": True}
        text: str = "hello"

    class NoticeStep(Step):
        type_name = "test-notice"

    NoticeStep.Options = Options
    yield NoticeStep
    del STEP_TYPES["test-notice"]


# -- what loads --------------------------------------------------------------------------


def test_the_demo_settings_load_without_any_environment() -> None:
    settings = load_settings(REPO / "config" / "demo.yaml", environ={})
    assert settings.issuer == "http://127.0.0.1:8080"
    assert [c.client_id for c in settings.clients] == ["demo-rp"]
    assert settings.clients[0].redirect_uris == ["http://127.0.0.1:8080/demo/callback"]
    assert settings.base_dir == REPO / "config"
    assert "default" in settings.parsed_flows
    assert settings.parsed_flows["default"].steps[0].type_name == "password"
    assert settings.demo and settings.demo.relying_party == "demo-rp"


def test_valid_settings_become_frozen_typed_models(tmp_path: Path, valid: dict[str, Any]) -> None:
    settings = load_settings(write(tmp_path, changed(valid, "issuer", "https://login.example.com/")), environ={})
    assert settings.issuer == "https://login.example.com"  # trailing slash stripped
    assert settings.is_https
    desk = settings.client("agent-desk")
    assert isinstance(desk, ClientSettings) and not desk.is_public
    assert desk.client_secret is not None and desk.client_secret.get_secret_value() == SECRET
    assert SECRET not in repr(settings)
    assert settings.client("softphone").is_public
    assert settings.client("nobody") is None
    assert settings.directory.password_hash.memory_cost == 8192
    assert [step.type_name for step in settings.parsed_flows["default"].steps] == ["password"]
    with pytest.raises(ValidationError):
        settings.issuer = "https://elsewhere.example.com"  # type: ignore[misc]


# -- bad input, one mistake at a time ----------------------------------------------------

# (dotted path to change, new value, the YAML path the problem names, what it must say)
BAD_SETTINGS = [
    ("colour", "red", "colour", "unknown key; expected one of: branding, channels, clients, demo, directory"),
    ("clients.0.colour", "red", "clients.0.colour", "unknown key; expected one of: client_id, client_secret"),
    ("directory.password_hash.colour", 1, "directory.password_hash.colour", "expected one of: memory_cost"),
    ("tokens.colour", 1, "tokens.colour", "expected one of: access_token_ttl"),
    ("issuer", DELETE, "issuer", "required"),
    ("clients.0.client_id", DELETE, "clients.0.client_id", "required"),
    ("clients.0.redirect_uris", DELETE, "clients.0.redirect_uris", "required"),
    ("clients", [], "clients", "at least 1 item"),
    ("clients", {"client_id": "x"}, "clients", "list"),
    ("secret_key", "s" * 31, "secret_key", "at least 32 characters"),
    ("clients.0.client_secret", "s" * 15, "clients.0.client_secret", "at least 16 characters"),
    ("clients.0.redirect_uris", ["/callback"], "clients.0.redirect_uris.0", "absolute URI without a fragment"),
    ("clients.0.redirect_uris", ["https://desk.example.com/cb", "desk.example.com/cb"], "clients.0.redirect_uris.1",
     "absolute URI"),
    ("clients.0.redirect_uris", ["https://desk.example.com/cb#top"], "clients.0.redirect_uris.0", "without a fragment"),
    ("clients.0.redirect_uris", [], "clients.0.redirect_uris", "at least 1 item"),
    ("clients.0.post_logout_redirect_uris", ["/bye"], "clients.0.post_logout_redirect_uris.0", "absolute URI"),
    ("issuer", "ftp://login.example.com", "issuer", "http(s) URL without query or fragment"),
    ("issuer", "login.example.com", "issuer", "http(s) URL"),
    ("issuer", "https://login.example.com/?tenant=1", "issuer", "without query"),
    ("issuer", "https://login.example.com/#top", "issuer", "without query or fragment"),
    ("issuer", "https://", "issuer", "http(s) URL"),
    ("directory.password_hash.memory_cost", 1024, "directory.password_hash.memory_cost", "greater than or equal"),
    ("directory.type", "ldap", "directory", "'builtin'"),
    ("tokens.code_ttl", 5, "tokens.code_ttl", "greater than or equal to 10"),
    ("tokens.code_ttl", "soon", "tokens.code_ttl", "valid integer"),
    ("state.url", "mysql://db/x", "state.url", "memory:// or redis:// or rediss://"),
    ("storage.url", "mysql://db/x", "storage.url", "sqlite:// or postgresql://"),
    ("flows", 5, "flows", "a folder of flow files (relative to this file) or a mapping"),
    ("flows", ["password"], "flows", "a folder of flow files"),
    ("flows", {}, "flows", "no flows"),
    ("flows.default", [], "flows.default", "expected a non-empty list of steps"),
    ("flows.default", "password", "flows.default", "expected a non-empty list of steps"),
    ("flows.default", ["password", "sorcery"], "flows.default.1", "unknown step type 'sorcery'; expected one of: "),
    ("flows.default", [{"password": {"x": 1}}], "flows.default.0.password.x", "'password' takes no options"),
    ("flows.default", [{"password": None, "other": None}], "flows.default.0", "a step name, or a mapping of one"),
    ("flows.default", ["password", 7], "flows.default.1", "a step name"),
    ("clients.0.flow", "strict", "clients.0.flow", "unknown flow 'strict'; expected one of: default"),
    ("clients.1.client_id", "agent-desk", "clients.1.client_id", "duplicate client_id 'agent-desk'"),
    ("demo", {"relying_party": "nobody"}, "demo.relying_party", "client_id of a client, found 'nobody'"),
    ("demo", {"users": [{"username": "demo"}]}, "demo.users.0.password", "required"),
]


@pytest.mark.parametrize(("where", "value", "named", "expected"), BAD_SETTINGS,
                         ids=[f"{case[0]}={case[1]!r}"[:60] for case in BAD_SETTINGS])
def test_each_mistake_is_one_problem_naming_file_path_and_expectation(
    tmp_path: Path, valid: dict[str, Any], where: str, value: Any, named: str, expected: str
) -> None:
    path = write(tmp_path, changed(valid, where, value))
    problems = problems_of(path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}: {named}: "), problems
    assert expected in problems[0]


def test_a_flow_must_begin_with_password(tmp_path: Path, valid: dict[str, Any], notice_step: type[Step]) -> None:
    path = write(tmp_path, changed(valid, "flows.default", ["test-notice", "password"]))
    assert problems_of(path) == [
        f"{path}: flows.default.0: the first step must be 'password' (who is signing in?), found 'test-notice'"
    ]


def test_an_unknown_step_type_lists_the_valid_ones(
    tmp_path: Path, valid: dict[str, Any], notice_step: type[Step]
) -> None:
    path = write(tmp_path, changed(valid, "flows.default", ["password", "sms"]))
    assert problems_of(path) == [
        f"{path}: flows.default.1: unknown step type 'sms'; expected one of: " + ", ".join(sorted(STEP_TYPES))
    ]
    assert "test-notice" in problems_of(path)[0]


def test_unknown_step_options_list_the_known_ones(
    tmp_path: Path, valid: dict[str, Any], notice_step: type[Step]
) -> None:
    flow = ["password", {"test-notice": {"txet": "hi"}}, {"test-notice": {"text": 3}}]
    path = write(tmp_path, changed(valid, "flows.default", flow))
    assert problems_of(path) == [
        f"{path}: flows.default.1.test-notice.txet: unknown option; the options of 'test-notice' are: text",
        f"{path}: flows.default.2.test-notice.text: Input should be a valid string",
    ]


def test_step_options_are_parsed(notice_step: type[Step]) -> None:
    flow = parse_flow("greet", ["password", "test-notice", {"test-notice": {"text": "hi"}}, {"test-notice": None}])
    assert [step.type_name for step in flow.steps] == ["password", "test-notice", "test-notice", "test-notice"]
    assert [step.options.text for step in flow.steps[1:]] == ["hello", "hi", "hello"]


def test_parse_flow_reports_every_step_problem() -> None:
    with pytest.raises(FlowProblem) as caught:
        parse_flow("broken", ["sorcery", {"password": {"x": 1}}, ["password"]])
    assert [where for where, _ in caught.value.issues] == ["0", "1.password.x", "2"]
    assert caught.value.problems[0].startswith("0: unknown step type 'sorcery'")


def test_every_problem_comes_at_once(tmp_path: Path, valid: dict[str, Any]) -> None:
    data = changed(valid, "clients.0.colour", "red")
    data = changed(data, "secret_key", "short")
    data = changed(data, "clients.1.redirect_uris", ["http://127.0.0.1:9999/cb", "https://softphone/cb#frag"])
    data = changed(data, "flows.default", ["password", "sorcery"])
    data = changed(data, "clients.1.client_id", "agent-desk")
    data = changed(data, "clients.0.flow", "strict")
    path = write(tmp_path, data)
    problems = problems_of(path)
    assert [problem.split(": ")[1] for problem in problems] == [
        "secret_key",
        "clients.0.colour",
        "clients.1.redirect_uris.1",
        "flows.default.1",
        "clients.0.flow",
        "clients.1.client_id",
    ]
    assert all(problem.startswith(f"{path}: ") for problem in problems)


def test_problems_do_not_repeat_secrets(tmp_path: Path, valid: dict[str, Any]) -> None:
    data = changed(changed(valid, "clients.0.client_secret", "hunter2-secret"), "secret_key", "tiny-secret-key")
    problems = "\n".join(problems_of(write(tmp_path, data)))
    assert "hunter2-secret" not in problems
    assert "tiny-secret-key" not in problems


# -- the file itself ---------------------------------------------------------------------

BAD_FILES = [
    ("issuer: [unclosed\n", "line 2, column 1: not valid YAML: expected ',' or ']'"),
    ("issuer: x\n  indented: wrongly\n", "line 2, column 11: not valid YAML: mapping values are not allowed here"),
    ("- issuer: https://login.example.com\n", "(top level): expected a mapping of settings (issuer, secret_key"),
    ("just a string\n", "(top level): expected a mapping of settings (issuer, secret_key, clients, ...), found a str"),
    ("", "(top level): expected a mapping of settings (issuer, secret_key, clients, ...), found nothing"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_a_file_that_is_not_a_settings_mapping_is_one_clean_problem(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: ")
    assert expected in problems[0]
    assert "\n" not in problems[0]


def test_a_file_that_is_not_utf8_is_a_clean_problem(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_bytes(b"issuer: caf\xe9\n")
    assert problems_of(path) == [f"{path}: not UTF-8 text (byte 11)"]


def test_a_missing_file_is_a_clean_problem(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    assert problems_of(path) == [f"{path}: cannot read: No such file or directory"]


def test_a_folder_instead_of_a_file_is_a_clean_problem(tmp_path: Path) -> None:
    assert problems_of(tmp_path) == [f"{tmp_path}: cannot read: Is a directory"]


# -- ${VAR} and ${VAR:-default} ------------------------------------------------------------


def test_variables_come_from_the_environment(tmp_path: Path, valid: dict[str, Any]) -> None:
    data = changed(valid, "issuer", "https://${HOST}:${PORT:-8443}/")
    data = changed(data, "clients.0.client_secret", "${DESK_SECRET}")
    data = changed(data, "clients.0.name", "${DESK_NAME:-Agent desk}")
    path = write(tmp_path, data)
    environ = {"HOST": "login.example.com", "DESK_SECRET": "from-the-environment-0123"}
    settings = load_settings(path, environ=environ)
    assert settings.issuer == "https://login.example.com:8443"
    assert settings.clients[0].client_secret.get_secret_value() == "from-the-environment-0123"
    assert settings.clients[0].name == "Agent desk"
    settings = load_settings(path, environ={**environ, "PORT": "9443", "DESK_NAME": "Desk"})
    assert settings.issuer == "https://login.example.com:9443"
    assert settings.clients[0].name == "Desk"


def test_an_empty_variable_takes_the_default(tmp_path: Path, valid: dict[str, Any]) -> None:
    path = write(tmp_path, changed(valid, "clients.0.name", "${DESK_NAME:-Agent desk}"))
    assert load_settings(path, environ={"DESK_NAME": ""}).clients[0].name == "Agent desk"


def test_the_process_environment_is_the_default(
    tmp_path: Path, valid: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWOSTEP_TEST_DESK_NAME", "From os.environ")
    path = write(tmp_path, changed(valid, "clients.0.name", "${TWOSTEP_TEST_DESK_NAME}"))
    assert load_settings(path).clients[0].name == "From os.environ"


@pytest.mark.parametrize("where", ["secret_key", "clients.0.client_secret", "clients.1.redirect_uris.0"])
def test_a_missing_variable_without_default_is_one_problem_naming_its_path(
    tmp_path: Path, valid: dict[str, Any], where: str
) -> None:
    path = write(tmp_path, changed(valid, where, "${TWOSTEP_NOT_SET}"))
    problems = problems_of(path, environ={"OTHER": "x"})
    assert len(problems) == 1, problems  # not a second complaint about the empty value
    assert problems[0].startswith(f"{path}: {where}: environment variable TWOSTEP_NOT_SET is not set")
    assert "${TWOSTEP_NOT_SET:-default}" in problems[0]


def test_missing_variables_are_reported_with_the_other_problems(tmp_path: Path, valid: dict[str, Any]) -> None:
    data = changed(changed(valid, "secret_key", "${KEY}"), "clients.0.client_secret", "${SECRET}")
    path = write(tmp_path, changed(data, "colour", "red"))
    assert [problem.split(": ")[1] for problem in problems_of(path)] == [
        "clients.0.client_secret", "secret_key", "colour"  # variables first, in file order
    ]


@pytest.mark.parametrize("value", ["[a, b]", "yes", "{x: 1}", "123", "null", "a # not a comment", "${OTHER}"])
def test_interpolated_values_are_never_parsed_as_yaml(tmp_path: Path, valid: dict[str, Any], value: str) -> None:
    path = write(tmp_path, changed(valid, "clients.0.name", "${DESK_NAME}"))
    settings = load_settings(path, environ={"DESK_NAME": value, "OTHER": "expanded twice"})
    assert settings.clients[0].name == value


def test_keys_are_not_interpolated(tmp_path: Path, valid: dict[str, Any]) -> None:
    path = write(tmp_path, {**valid, "${KEY}": "x"})
    problems = problems_of(path, environ={"KEY": "issuer"})
    assert len(problems) == 1 and problems[0].startswith(f"{path}: ${{KEY}}: unknown key")


def test_numbers_and_booleans_from_variables_are_converted_by_the_model(
    tmp_path: Path, valid: dict[str, Any]
) -> None:
    data = changed(valid, "tokens", {"code_ttl": "${CODE_TTL:-30}"})
    path = write(tmp_path, changed(data, "clients.0.require_pkce", "${PKCE:-false}"))
    settings = load_settings(path, environ={})
    assert settings.tokens.code_ttl == 30
    assert settings.clients[0].require_pkce is False


# -- paths are relative to the settings file ---------------------------------------------


def test_paths_are_relative_to_the_settings_file(
    tmp_path: Path, valid: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    write(site / "flows", ["password"], "default.yaml")
    data = {**valid, "storage": {"url": "sqlite:///data/twostep.db"}, "keys": {"path": "secrets/jwks.json"},
            "flows": "flows"}
    path = write(site / "config", data)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    data["flows"] = "../flows"
    path.write_text(yaml.safe_dump(data))

    settings = load_settings(Path("..") / "site" / "config" / "settings.yaml", environ={})
    assert settings.base_dir == site / "config"
    assert settings.resolve(settings.keys.path) == site / "config" / "secrets" / "jwks.json"
    assert list(settings.parsed_flows) == ["default"]
    open_directory(settings).list_users()
    assert (site / "config" / "data" / "twostep.db").is_file()
    assert not (tmp_path / "elsewhere" / "data").exists()


# -- flows ---------------------------------------------------------------------------------


def test_a_folder_of_flow_files(tmp_path: Path, valid: dict[str, Any]) -> None:
    write(tmp_path / "flows", ["password"], "default.yaml")
    write(tmp_path / "flows", "# the strict one\n- ${FIRST_STEP:-password}\n", "strict.yaml")
    write(tmp_path / "flows", "not a flow, not .yaml", "README.md")
    data = changed({**valid, "flows": "../flows"}, "clients.1.flow", "strict")
    settings = load_settings(write(tmp_path / "config", data), environ={})
    assert sorted(settings.parsed_flows) == ["default", "strict"]
    assert settings.parsed_flows["strict"].name == "strict"
    assert settings.client("softphone").flow == "strict"


def test_problems_in_flow_files_name_the_flow_file(tmp_path: Path, valid: dict[str, Any]) -> None:
    flows = tmp_path / "flows"
    good = write(flows, ["password"], "default.yaml")
    unknown = write(flows, ["password", {"sorcery": {"power": 9}}], "unknown.yaml")
    empty = write(flows, "", "empty.yaml")
    broken = write(flows, "- password\n- [unclosed\n", "broken.yaml")
    missing = write(flows, "- ${MISSING}\n", "missing.yaml")
    data = changed({**valid, "flows": "../flows", "colour": "red"}, "clients.1.flow", "broken")
    path = write(tmp_path / "config", data)
    problems = problems_of(path)
    assert problems[0] == f"{path}: colour: unknown key; expected one of: " + ", ".join(sorted(Settings.model_fields))
    assert problems[1].startswith(f"{broken}: line 3, column 1: not valid YAML")
    assert problems[2].startswith(f"{missing}: 0: environment variable MISSING is not set")
    assert problems[3] == f"{empty}: (top level): expected a non-empty list of steps, the first being 'password'"
    # (not also "unknown step type ''" for the empty value the missing variable left)
    assert problems[4].startswith(f"{unknown}: 1: unknown step type 'sorcery'")
    assert len(problems) == 5  # the client naming the broken flow is not also "unknown flow"
    assert not any(str(good) in problem for problem in problems)


def test_a_flows_folder_without_flow_files(tmp_path: Path, valid: dict[str, Any]) -> None:
    (tmp_path / "flows").mkdir()
    path = write(tmp_path / "config", {**valid, "flows": "../flows"})
    assert problems_of(path) == [
        f"{path}: flows: expected a folder with flow files (*.yaml), found none in {tmp_path / 'flows'}"
    ]
    path = write(tmp_path / "config", {**valid, "flows": "../nowhere"})
    assert problems_of(path) == [
        f"{path}: flows: expected a folder with flow files (*.yaml), found none in {tmp_path / 'nowhere'}"
    ]


def test_the_default_flows_folder_is_beside_the_settings_folder(tmp_path: Path, valid: dict[str, Any]) -> None:
    write(tmp_path / "flows", ["password"], "default.yaml")
    del valid["flows"]
    settings = load_settings(write(tmp_path / "config", valid), environ={})
    assert list(settings.parsed_flows) == ["default"]


def test_a_client_without_a_flow_uses_default(tmp_path: Path, valid: dict[str, Any]) -> None:
    path = write(tmp_path, {**valid, "flows": {"strict": ["password"]}})
    assert problems_of(path) == [
        f"{path}: clients.0.flow (default): unknown flow 'default'; expected one of: strict",
        f"{path}: clients.1.flow (default): unknown flow 'default'; expected one of: strict",
    ]
