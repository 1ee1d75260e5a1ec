"""The settings' models: frozen, validated, with `extra="forbid"`. Nothing downstream reads raw
dicts. The loader (provider.settings.loader) fills in the parts that depend on other files."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    PrivateAttr,
    SecretStr,
    field_validator,
)

from provider.channels import Channel
from provider.login.flows import Flow
from provider.storage import sql, state

DEFAULT_FLOWS = "../flows"


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
    groups_claim: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$",
                                     description="release the user's groups in ID tokens and userinfo"
                                                 " under this claim (like Keycloak's group membership mapper)")

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


