"""Settings: one YAML file plus flow files, parsed once into frozen, validated models.

Nothing downstream reads raw dicts. Every problem is reported with the file, the YAML path
and what was expected, and all problems come at once (`SettingsError.problems`).
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)

from provider.channels import CHANNEL_TYPES, Channel
from provider.login.flows import Flow, FlowProblem, parse_flow
from provider.storage import sql, state

DEFAULT_FLOWS = "../flows"

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class SettingsError(Exception):
    """The settings cannot be used; `problems` lists every one of them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _url_with_scheme(url: str, schemes: tuple[str, ...]) -> str:
    if urlsplit(url).scheme.lower() not in schemes:
        raise ValueError("a URL starting with " + " or ".join(f"{scheme}://" for scheme in schemes))
    return url


class StateSettings(Model):
    url: str = "memory://"
    prefix: str = Field("twostep:", max_length=64, description="key prefix: several deployments on one Redis")
    flow_ttl: int = Field(600, ge=60, le=3600, description="seconds a login may take")
    timeout: float = Field(state.DEFAULT_TIMEOUT, gt=0, le=30,
                           description="seconds for one Redis call: waiting for a connection, connecting, answering")
    pool_size: int = Field(state.DEFAULT_POOL_SIZE, ge=1, le=1024,
                           description="Redis connections per process; at least the threads of a worker")

    @field_validator("url")
    @classmethod
    def _known_store(cls, url: str) -> str:
        return _url_with_scheme(url, state.ACCEPTED_SCHEMES)


class StorageSettings(Model):
    url: str = "sqlite:///var/twostep.db"

    @field_validator("url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        return _url_with_scheme(url, tuple(scheme.removesuffix("://") for scheme in sql.ACCEPTED_SCHEMES))


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


class KeycloakDirectorySettings(Model):
    """Users and passwords in an existing Keycloak realm, reached as a confidential client with
    Direct Access Grants and a service account (see README, "Keycloak as the directory")."""

    type: Literal["keycloak"]
    url: str = Field(description="Keycloak's base URL, e.g. https://sso.example.com")
    realm: str = Field(min_length=1, max_length=255)
    client_id: str = Field(min_length=1, max_length=255)
    client_secret: SecretStr
    ca_file: str | None = Field(None, description="PEM file of the CAs to trust for Keycloak's certificate,"
                                                  " relative to this file (default: the system's)")
    timeout: float = Field(5.0, gt=0, le=60, description="seconds to wait for one answer from Keycloak")

    @field_validator("url")
    @classmethod
    def _base_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("Keycloak's base URL: http(s), without query or fragment, e.g. https://sso.example.com")
        return url.rstrip("/")

    @field_validator("client_secret")
    @classmethod
    def _secret_given(cls, secret: SecretStr) -> SecretStr:
        if not secret.get_secret_value():
            raise ValueError("the client's secret (Keycloak: Clients > the client > Credentials)")
        return secret


DirectorySettings = Annotated[BuiltinDirectorySettings | KeycloakDirectorySettings, Field(discriminator="type")]


class SqlEnrollmentSettings(Model):
    type: Literal["sql"]


class KeycloakEnrollmentSettings(Model):
    """Registrations as attributes `twostep.<channel>` of the Keycloak users (directory.type keycloak)."""

    type: Literal["keycloak"]


EnrollmentSettings = Annotated[SqlEnrollmentSettings | KeycloakEnrollmentSettings, Field(discriminator="type")]


class TokenSettings(Model):
    code_ttl: int = Field(60, ge=10, le=600)
    access_token_ttl: int = Field(300, ge=30, le=86400)
    id_token_ttl: int = Field(300, ge=30, le=86400)
    refresh_token_ttl: int = Field(28800, ge=300, le=30 * 86400)
    session_ttl: int = Field(28800, ge=300, le=30 * 86400, description="SSO session lifetime")


def _absolute_without_fragment(uri: str) -> str:
    # RFC 6749 3.1.2: absolute URI, no fragment.
    parts = urlsplit(uri)
    if not parts.scheme or not parts.netloc or parts.fragment:
        raise ValueError(f"an absolute URI without a fragment, e.g. https://app.example.com/callback, found {uri!r}")
    return uri


RedirectURI = Annotated[str, AfterValidator(_absolute_without_fragment)]


class ClientSettings(Model):
    client_id: str = Field(min_length=1, max_length=255)
    client_secret: SecretStr | None = None
    name: str | None = None
    redirect_uris: list[RedirectURI] = Field(min_length=1)
    post_logout_redirect_uris: list[RedirectURI] = []
    flow: str = "default"
    require_pkce: bool = True
    scopes: list[str] = ["openid", "profile", "email", "phone", "offline_access"]

    @field_validator("client_secret")
    @classmethod
    def _long_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < 16:
            raise ValueError("at least 16 characters (or no client_secret at all, for a public client)")
        return secret

    @property
    def is_public(self) -> bool:
        return self.client_secret is None


class LockoutSettings(Model):
    """Brute-force throttling (NIST SP 800-63B 5.2.2): consecutive failures per user, then a
    delay that doubles up to a cap; and failures per client address, against spraying."""

    threshold: int = Field(10, ge=0, description="consecutive failures before the delay; 0 disables")
    base_delay: int = Field(30, ge=1, description="seconds")
    max_delay: int = Field(900, ge=1, description="seconds")
    ip_threshold: int = Field(100, ge=0, description="failures from one address per ip_window; 0 disables")
    ip_window: int = Field(3600, ge=60, description="seconds")


class BrandingSettings(Model):
    """What users see above every screen."""

    name: str = Field("twostep", min_length=1, max_length=64)
    logo_url: str | None = Field(None, description="a path on this server or an https URL")

    @field_validator("logo_url")
    @classmethod
    def _local_or_https(cls, url: str | None) -> str | None:
        if url is not None and not (url.startswith("/") and not url.startswith("//")) \
                and urlsplit(url).scheme != "https":
            raise ValueError("a path starting with / or an https:// URL")
        return url

    @property
    def logo_origin(self) -> str | None:
        """The logo's origin when it is elsewhere: the Content-Security-Policy must allow it."""
        if self.logo_url and self.logo_url.startswith("https://"):
            parts = urlsplit(self.logo_url)
            return f"{parts.scheme}://{parts.netloc}"
        return None


class DemoUser(Model):
    username: str
    password: SecretStr
    name: str | None = None
    email: str | None = None


class DemoSettings(Model):
    """Only for the demo: a relying party served by the same process, and seeded users."""

    relying_party: str | None = Field(None, description="client_id the demo page signs in with")
    users: list[DemoUser] = []


class MetricsSettings(Model):
    listen: str | None = Field(None, description="host:port to serve /metrics on, instead of the main port")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, listen: str | None) -> str | None:
        host, _, port = (listen or "").rpartition(":")
        if listen is not None and not (host and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"host:port, e.g. 127.0.0.1:9100 or 0.0.0.0:9100, found {listen!r}")
        return listen


class Settings(Model):
    issuer: str
    secret_key: SecretStr
    state: StateSettings = StateSettings()
    storage: StorageSettings = StorageSettings()
    encryption_key: SecretStr | None = None
    encryption_keys: list[SecretStr] = Field([], description="older keys, still read, for rotation")
    lockout: LockoutSettings = LockoutSettings()
    branding: BrandingSettings = BrandingSettings()
    trusted_proxies: list[IPvAnyNetwork] = Field([], description="whose X-Forwarded-For is believed")
    keys: KeySettings = KeySettings()
    directory: DirectorySettings = BuiltinDirectorySettings(type="builtin")
    enrollments: EnrollmentSettings = SqlEnrollmentSettings(type="sql")
    tokens: TokenSettings = TokenSettings()
    channels: dict[str, Any] = {}  # validated by each channel type's own model (load_settings)
    flows: str | dict[str, Any] = DEFAULT_FLOWS
    clients: list[ClientSettings] = Field(min_length=1)
    demo: DemoSettings | None = None
    metrics: MetricsSettings = MetricsSettings()

    # Filled by load_settings, not by the file.
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _flows: dict[str, Flow] = PrivateAttr(default_factory=dict)
    _channels: dict[str, Channel] = PrivateAttr(default_factory=dict)
    _warnings: list[str] = PrivateAttr(default_factory=list)

    @property
    def base_dir(self) -> Path:
        """The settings file's folder: relative paths in the settings start here."""
        return self._base_dir

    @property
    def parsed_flows(self) -> dict[str, Flow]:
        return self._flows

    @property
    def parsed_channels(self) -> dict[str, Channel]:
        return self._channels

    @property
    def warnings(self) -> list[str]:
        """Settings that work but deserve an operator's look (printed by check-config)."""
        return self._warnings

    def flow_for_acr(self, acr_values: str) -> str | None:
        """The first flow whose `acr` is among the requested values, in their order (step-up)."""
        for acr in acr_values.split():
            for name, flow in self._flows.items():
                if flow.acr == acr:
                    return name
        return None

    @field_validator("secret_key")
    @classmethod
    def _long_secret_key(cls, secret: SecretStr) -> SecretStr:
        if len(secret.get_secret_value()) < 32:
            raise ValueError("at least 32 characters, e.g. the output of"
                             " python3 -c 'import secrets; print(secrets.token_urlsafe())'")
        return secret

    @field_validator("flows", mode="before")
    @classmethod
    def _folder_or_mapping(cls, flows: Any) -> Any:
        if not isinstance(flows, str | dict):
            raise ValueError("a folder of flow files (relative to this file) or a mapping of flow names to steps")
        return flows

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
    problems = _Problems()
    raw = _interpolate(_read_yaml(path), environ, (), problems.missing_variable(path))
    if not isinstance(raw, dict):
        raise SettingsError([f"{path}: (top level): expected a mapping of settings (issuer, secret_key, clients, ...)"
                             f", found {_kind(raw)}"])
    settings = None
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as error:
        for e in error.errors():
            problems.add(path, _yaml_path(raw, e["loc"]), _expected(e))
    base_dir = path.parent.resolve()
    channels = _load_channels(raw.get("channels"), path, problems)
    if channels and not raw.get("encryption_key"):
        problems.add(path, "encryption_key", "required when channels are configured: factor secrets are"
                                             " encrypted with it (at least 32 characters)")
    flows, defined = _load_flows(raw.get("flows", DEFAULT_FLOWS), base_dir, path, environ, problems, channels)
    _cross_check(raw, defined, path, problems)
    _check_keycloak(raw, base_dir, path, problems)
    _check_acr(flows, path, problems)
    if problems.lines or settings is None:
        raise SettingsError(problems.lines)
    settings._base_dir = base_dir
    settings._flows = flows
    settings._channels = channels
    settings._warnings = _warnings(settings)
    return settings


def _production_warnings(settings: Settings) -> list[str]:
    """Settings that are fine on a laptop and unsafe in front of real accounts."""
    lines = []
    host = urlsplit(settings.issuer).hostname or ""
    if not settings.is_https and host not in ("localhost", "127.0.0.1", "::1"):
        lines.append("issuer: http on a non-loopback host; use https in production")
    for name, secret in (("secret_key", settings.secret_key), ("encryption_key", settings.encryption_key)):
        if secret is not None and len(secret.get_secret_value()) < 43:
            lines.append(f"{name}: shorter than 43 characters (256 bits as base64); use secrets.token_urlsafe(32)")
    lines += [f"clients.{i}.require_pkce: false lets a stolen code be redeemed without the verifier"
              for i, client in enumerate(settings.clients) if not client.require_pkce and not client.is_public]
    if not settings.lockout.threshold:
        lines.append("lockout.threshold: 0 disables per-user throttling of password and code guessing")
    if not settings.lockout.ip_threshold:
        lines.append("lockout.ip_threshold: 0 disables per-address throttling (password spraying)")
    return lines


def _keycloak_warnings(settings: Settings) -> list[str]:
    directory = settings.directory
    if not isinstance(directory, KeycloakDirectorySettings):
        return []
    host = urlsplit(directory.url).hostname or ""
    if directory.url.startswith("http://") and host not in ("localhost", "127.0.0.1", "::1"):
        return ["directory.url: http on a non-loopback host sends users' passwords and the client secret"
                " unencrypted; use https"]
    return []


def _load_channels(spec: Any, path: Path, problems: _Problems) -> dict[str, Channel]:
    """Each channel validated by the model of its `type` (the registry's key)."""
    if not isinstance(spec, dict):
        return {}  # absent, or malformed: the model reports it
    channels: dict[str, Channel] = {}
    for name, options in spec.items():
        kind = options.get("type") if isinstance(options, dict) else None
        cls = CHANNEL_TYPES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            valid = ", ".join(sorted(CHANNEL_TYPES))
            problems.add(path, f"channels.{name}.type", f"expected one of: {valid}; found {kind!r}")
            continue
        try:
            channels[str(name)] = cls(str(name), cls.Settings.model_validate(options))
        except ValidationError as error:
            for e in error.errors():
                problems.add(path, _join(f"channels.{name}", ".".join(map(str, e["loc"]))),
                             _expected(e, cls.Settings))
    return channels


def _check_acr(flows: dict[str, Flow], path: Path, problems: _Problems) -> None:
    owners: dict[str, str] = {}
    for name, flow in sorted(flows.items()):
        if flow.acr is None:
            continue
        if flow.acr in owners:
            problems.add(path, "flows", f"flows {owners[flow.acr]!r} and {name!r} have the same acr {flow.acr!r}")
        owners.setdefault(flow.acr, name)


def _warnings(settings: Settings) -> list[str]:
    lines = _production_warnings(settings) + _keycloak_warnings(settings)
    lines += [w for channel in settings.parsed_channels.values() for w in channel.warnings()]
    used = {client.flow for client in settings.clients}
    lines += [f"flow {name!r} is used by no client" + (" (reachable by its acr)" if flow.acr else "")
              for name, flow in sorted(settings.parsed_flows.items()) if name not in used]
    return lines


class _Problems:
    """"file: YAML path: what was expected" lines, in the order found. Where a variable was
    missing, the empty value it left is not complained about a second time."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._unset: set[tuple[str, str]] = set()

    def add(self, file: Path | str, where: tuple | list | str, what: str) -> None:
        dotted = _dotted(where)
        if not any(f == str(file) and (dotted + ".").startswith(u + ".") for f, u in self._unset):
            self.lines.append(f"{file}: {dotted}: {what}")

    def missing_variable(self, file: Path) -> Callable[[tuple, str], None]:
        def report(where: tuple, what: str) -> None:
            self.add(file, where, what)
            self._unset.add((str(file), _dotted(where)))

        return report


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except OSError as error:
        raise SettingsError([f"{path}: cannot read: {error.strerror or error}"]) from None
    except UnicodeDecodeError as error:
        raise SettingsError([f"{path}: not UTF-8 text (byte {error.start})"]) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SettingsError([f"{path}: {where}not valid YAML: {error.problem or error.context}"]) from None
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
        if environ.get(name):
            return environ[name]
        if default is not None:
            return default
        report(where, f"environment variable {name} is not set (or empty) and ${{{name}}} has no default;"
                      f" set it, or write ${{{name}:-default}}")
        return ""

    return _VARIABLE.sub(substitute, value)


def _load_flows(
    spec: Any, base_dir: Path, path: Path, environ: Mapping[str, str], problems: _Problems,
    channels: Mapping[str, Channel],
) -> tuple[dict[str, Flow], set[str] | None]:
    """The parsed flows, and the names of all flows defined (broken ones too; None when
    `flows` itself is malformed, which the model reports)."""
    sources: dict[str, tuple[Path, str, Any]] = {}  # name -> (file, YAML path prefix, steps)
    unreadable: set[str] = set()
    if isinstance(spec, dict):
        if not spec:
            problems.add(path, "flows", "no flows; expected a mapping of flow names to lists of steps")
        sources = {str(name): (path, f"flows.{name}", steps) for name, steps in spec.items()}
    elif isinstance(spec, str):
        folder = (base_dir / spec).resolve()
        files = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
        if not files:
            problems.add(path, "flows", f"expected a folder with flow files (*.yaml), found none in {folder}")
        for file in files:
            try:
                sources[file.stem] = (file, "", _interpolate(_read_yaml(file), environ, (),
                                                             problems.missing_variable(file)))
            except SettingsError as error:
                problems.lines += error.problems
                unreadable.add(file.stem)
    else:
        return {}, None
    flows: dict[str, Flow] = {}
    for name, (file, prefix, steps) in sources.items():
        try:
            flows[name] = parse_flow(name, steps, channels)
        except FlowProblem as problem:
            for where, what in problem.issues:
                problems.add(file, _join(prefix, where), what)
    return flows, set(sources) | unreadable


def _cross_check(raw: dict, flows: set[str] | None, path: Path, problems: _Problems) -> None:
    """What no single field can see. Works on the raw mapping, so these problems are
    reported together with the field problems."""
    clients = raw.get("clients")
    seen: set[str] = set()
    for i, client in enumerate(clients if isinstance(clients, list) else []):
        if not isinstance(client, dict):
            continue
        client_id, flow = client.get("client_id"), client.get("flow", "default")
        if isinstance(client_id, str) and client_id in seen:
            problems.add(path, f"clients.{i}.client_id", f"duplicate client_id {client_id!r}")
        if isinstance(client_id, str):
            seen.add(client_id)
        if flows and isinstance(flow, str) and flow not in flows:
            where = f"clients.{i}.flow" + ("" if "flow" in client else " (default)")
            problems.add(path, where, f"unknown flow {flow!r}; expected one of: {', '.join(sorted(flows))}")
    demo = raw.get("demo")
    relying_party = demo.get("relying_party") if isinstance(demo, dict) else None
    if isinstance(relying_party, str) and relying_party not in seen:
        problems.add(path, "demo.relying_party", f"expected the client_id of a client, found {relying_party!r}")


def _check_keycloak(raw: dict, base_dir: Path, path: Path, problems: _Problems) -> None:
    """What the Keycloak directory and enrolment store need beyond their own fields."""
    directory, enrollments = raw.get("directory"), raw.get("enrollments")
    keycloak = isinstance(directory, dict) and directory.get("type") == "keycloak"
    ca_file = directory.get("ca_file") if keycloak else None
    if isinstance(ca_file, str) and ca_file and not (base_dir / ca_file).is_file():
        problems.add(path, "directory.ca_file", f"no such file: {(base_dir / ca_file).resolve()}")
    demo = raw.get("demo")
    if keycloak and isinstance(demo, dict) and demo.get("users"):
        problems.add(path, "demo.users", "demo users are added to the built-in directory; with directory.type"
                                         " keycloak, create them in Keycloak")
    if not (isinstance(enrollments, dict) and enrollments.get("type") == "keycloak"):
        return
    if directory is None or (isinstance(directory, dict) and directory.get("type") == "builtin"):
        problems.add(path, "enrollments.type", "enrolments kept in Keycloak are attributes of Keycloak users:"
                                               " they need directory.type keycloak, found 'builtin'")
    channels = raw.get("channels")
    for name, options in channels.items() if isinstance(channels, dict) else ():
        kind = CHANNEL_TYPES.get(options["type"]) if isinstance(options, dict) and isinstance(
            options.get("type"), str) else None
        if kind is not None and kind.self_enrollment and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", str(name)):
            problems.add(path, f"channels.{name}", "with enrollments.type keycloak the channel name becomes the"
                                                   " Keycloak attribute twostep.<name>: use letters, digits, - and _")


def _yaml_path(raw: Any, loc: tuple) -> list:
    """Pydantic's error location as a YAML path: without the union tags pydantic inserts
    (`directory.builtin.password_hash` is `directory.password_hash` in the file)."""
    path, node = [], raw
    for i, part in enumerate(loc):
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and i == len(loc) - 1:
            path.append(part)  # a required key that is missing
    return path


def _expected(error: Any, root: type[BaseModel] | None = None) -> str:
    """What was expected, in words; `root` is the model the error's location starts from."""
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(error["loc"][:-1], root or Settings)
        return "unknown key" + (f"; expected one of: {', '.join(allowed)}" if allowed else "")
    if error["type"] == "missing":
        return "required, but missing"
    return error["msg"].removeprefix("Value error, ")


def _allowed_keys(loc: tuple, root: type[BaseModel]) -> list[str]:
    """The keys the model at this pydantic location accepts (for "unknown key" messages)."""
    node: Any = root
    for part in loc:
        models = _models_in(node)
        if isinstance(part, int):
            node = get_args(node)[0] if get_origin(node) is list else None
        elif fields := [m.model_fields[part] for m in models if part in m.model_fields]:
            node = fields[0].annotation
        elif tagged := [m for m in models if "type" in m.model_fields
                        and part in get_args(m.model_fields["type"].annotation)]:
            node = tagged[0]  # a tagged union: the member whose `type` is `part`
        else:
            return []
    return sorted({key for model in _models_in(node) for key in model.model_fields})


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The model classes of `X`, `X | None` or `X | Y`."""
    members = get_args(annotation) if get_origin(annotation) is not None else (annotation,)
    return [m for m in members if isinstance(m, type) and get_origin(m) is None and issubclass(m, BaseModel)]


def _join(prefix: str, where: str) -> str:
    return ".".join(part for part in (prefix, where) if part)


def _kind(value: Any) -> str:
    return "nothing (an empty file)" if value is None else f"a {type(value).__name__}"


def _dotted(location: tuple | list | str) -> str:
    if isinstance(location, str):
        return location or "(top level)"
    return ".".join(str(part) for part in location) or "(top level)"
