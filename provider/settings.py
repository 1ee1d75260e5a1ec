"""Settings: one YAML file plus flow files, parsed once into frozen, validated models.

Nothing downstream reads raw dicts. Every problem is reported with the file, the YAML path
and what was expected, and all problems come at once (`SettingsError.problems`).
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator

from provider.login.flows import Flow, FlowProblem, parse_flow

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class SettingsError(Exception):
    """The settings cannot be used; `problems` lists every one of them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StateSettings(Model):
    url: str = "memory://"
    flow_ttl: int = Field(600, ge=60, le=3600, description="seconds a login may take")


class StorageSettings(Model):
    url: str = "sqlite:///var/twostep.db"


class KeySettings(Model):
    path: str = "var/jwks.json"


class PasswordHashSettings(Model):
    """argon2id parameters; the defaults are OWASP's (19 MiB, t=2, p=1)."""

    memory_cost: int = Field(19456, ge=8192, description="KiB")
    time_cost: int = Field(2, ge=1)
    parallelism: int = Field(1, ge=1)


class BuiltinDirectorySettings(Model):
    type: Literal["builtin"]
    password_hash: PasswordHashSettings = PasswordHashSettings()


DirectorySettings = Annotated[BuiltinDirectorySettings, Field(discriminator="type")]


class TokenSettings(Model):
    code_ttl: int = Field(60, ge=10, le=600)
    access_token_ttl: int = Field(300, ge=30, le=86400)
    id_token_ttl: int = Field(300, ge=30, le=86400)
    refresh_token_ttl: int = Field(28800, ge=300, le=30 * 86400)
    session_ttl: int = Field(28800, ge=300, le=30 * 86400, description="SSO session lifetime")


class ClientSettings(Model):
    client_id: str = Field(min_length=1, max_length=255)
    client_secret: SecretStr | None = None
    name: str | None = None
    redirect_uris: list[str] = Field(min_length=1)
    post_logout_redirect_uris: list[str] = []
    flow: str = "default"
    require_pkce: bool = True
    scopes: list[str] = ["openid", "profile", "email", "phone", "offline_access"]

    @field_validator("redirect_uris", "post_logout_redirect_uris")
    @classmethod
    def _absolute_without_fragment(cls, uris: list[str]) -> list[str]:
        # RFC 6749 3.1.2: absolute URI, no fragment.
        for uri in uris:
            parts = urlsplit(uri)
            if not parts.scheme or not parts.netloc or parts.fragment:
                raise ValueError(f"{uri!r} is not an absolute URI without a fragment")
        return uris

    @field_validator("client_secret")
    @classmethod
    def _long_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < 16:
            raise ValueError("a client secret must be at least 16 characters")
        return secret

    @property
    def is_public(self) -> bool:
        return self.client_secret is None


class DemoUser(Model):
    username: str
    password: SecretStr
    name: str | None = None
    email: str | None = None


class DemoSettings(Model):
    """Only for the demo: a relying party served by the same process, and seeded users."""

    relying_party: str | None = Field(None, description="client_id the demo page signs in with")
    users: list[DemoUser] = []


class Settings(Model):
    issuer: str
    secret_key: SecretStr = Field(min_length=32)
    state: StateSettings = StateSettings()
    storage: StorageSettings = StorageSettings()
    encryption_key: SecretStr | None = None
    keys: KeySettings = KeySettings()
    directory: DirectorySettings = BuiltinDirectorySettings(type="builtin")
    tokens: TokenSettings = TokenSettings()
    flows: str | dict[str, Any] = "../flows"
    clients: list[ClientSettings] = Field(min_length=1)
    demo: DemoSettings | None = None

    # Filled by load_settings, not by the file.
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _flows: dict[str, Flow] = PrivateAttr(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        """The settings file's folder: relative paths in the settings start here."""
        return self._base_dir

    @property
    def parsed_flows(self) -> dict[str, Flow]:
        return self._flows

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, issuer: str) -> str:
        # OIDC Discovery 1.0 section 2: https (or http on loopback), no query or fragment.
        parts = urlsplit(issuer)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("an http(s) URL without query or fragment, e.g. https://login.example.com")
        return issuer.rstrip("/")

    @property
    def is_https(self) -> bool:
        return self.issuer.startswith("https://")

    def client(self, client_id: str) -> ClientSettings | None:
        return next((c for c in self.clients if c.client_id == client_id), None)

    def resolve(self, path: str) -> Path:
        """A path from the settings, relative to the settings file's folder."""
        return (self.base_dir / path).resolve()


def load_settings(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Read, interpolate and validate a settings file and its flows. Raises SettingsError."""
    path = Path(path)
    environ = os.environ if environ is None else environ
    raw = _read_yaml(path)
    problems: list[str] = []
    raw = _interpolate(raw, environ, (), lambda where, what: problems.append(f"{path}: {_dotted(where)}: {what}"))
    if not isinstance(raw, dict):
        raise SettingsError([f"{path}: expected a mapping of settings at the top level"])
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as error:
        problems += [f"{path}: {_dotted(e['loc'])}: {e['msg']}" for e in error.errors()]
        raise SettingsError(problems) from None
    settings._base_dir = path.parent.resolve()
    flows, flow_problems = _load_flows(settings, path, environ)
    problems += flow_problems + _cross_check(settings, flows, path)
    if problems:
        raise SettingsError(problems)
    settings._flows = flows
    return settings


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except OSError as error:
        raise SettingsError([f"{path}: cannot read: {error.strerror}"]) from None
    except yaml.YAMLError as error:
        raise SettingsError([f"{path}: not valid YAML: {error}"]) from None


def _interpolate(value: Any, environ: Mapping[str, str], where: tuple, report) -> Any:
    """Replace ${VAR} and ${VAR:-default} in string values (never in keys, never re-parsed)."""
    if isinstance(value, dict):
        return {k: _interpolate(v, environ, (*where, k), report) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, environ, (*where, i), report) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ and environ[name] != "":
            return environ[name]
        if default is not None:
            return default
        report(where, f"environment variable {name} is not set and has no default")
        return ""

    return _VARIABLE.sub(substitute, value)


def _load_flows(settings: Settings, path: Path, environ: Mapping[str, str]) -> tuple[dict[str, Flow], list[str]]:
    sources: dict[str, tuple[str, Any]] = {}
    problems: list[str] = []
    if isinstance(settings.flows, dict):
        for name, steps in settings.flows.items():
            sources[str(name)] = (f"{path}: flows.{name}", steps)
    else:
        folder = settings.resolve(settings.flows)
        files = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
        if not files:
            problems.append(f"{path}: flows: no flow files (*.yaml) in {folder}")
        for file in files:
            def report(where: tuple, what: str, file: Path = file) -> None:
                problems.append(f"{file}: {_dotted(where)}: {what}")

            sources[file.stem] = (str(file), _interpolate(_read_yaml(file), environ, (), report))
    flows: dict[str, Flow] = {}
    for name, (where, steps) in sources.items():
        try:
            flows[name] = parse_flow(name, steps)
        except FlowProblem as problem:
            problems += [f"{where}: {p}" for p in problem.problems]
    return flows, problems


def _cross_check(settings: Settings, flows: dict[str, Flow], path: Path) -> list[str]:
    problems = []
    seen: set[str] = set()
    for i, client in enumerate(settings.clients):
        if client.client_id in seen:
            problems.append(f"{path}: clients.{i}.client_id: duplicate client_id {client.client_id!r}")
        seen.add(client.client_id)
        if flows and client.flow not in flows:
            known = ", ".join(sorted(flows)) or "none"
            problems.append(f"{path}: clients.{i}.flow: unknown flow {client.flow!r} (flows: {known})")
    if settings.demo and settings.demo.relying_party and settings.demo.relying_party not in seen:
        problems.append(f"{path}: demo.relying_party: no client with client_id {settings.demo.relying_party!r}")
    return problems


def _dotted(location: tuple | list) -> str:
    return ".".join(str(part) for part in location) or "(top level)"
