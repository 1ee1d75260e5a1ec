"""How a passcode reaches RSA Authentication Manager: transports registered by their YAML `type`.

A transport module defines one `RsaTransport` subclass with `type_name` and its `Settings`
model; importing it registers it. A transport answers every check with a `Verdict`, one of six
small frozen values, and never raises for what RSA (or the network) did: the channel turns a
verdict into a screen, so none of them can become a 5xx.

A challenge ("enter the next tokencode") carries `attempt`: what the transport needs to finish
the same authentication attempt (the RADIUS State, the REST authnAttemptId). It is JSON-safe
text, kept in the flow state between the two screens; it never holds the passcode.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from provider.registry import register

TRANSPORT_TYPES: dict[str, type[RsaTransport]] = {}


# -- verdicts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """RSA accepted the passcode (or the next tokencode)."""


@dataclass(frozen=True)
class Rejected:
    """RSA refused it: a wrong passcode, an unknown user, a disabled token."""

    reason: str


@dataclass(frozen=True)
class NextTokencode:
    """RSA wants the next tokencode to finish this attempt (the token may have drifted)."""

    attempt: Mapping[str, str]
    message: str | None = None  # what RSA said, e.g. RADIUS Reply-Message


@dataclass(frozen=True)
class NewPinRequired:
    """RSA wants a new PIN first: not offered in the browser (RSA Self-Service does it)."""

    attempt: Mapping[str, str] = field(default_factory=dict)
    message: str | None = None


@dataclass(frozen=True)
class ConfigurationProblem:
    """The settings are wrong (secret, key, agent name, CA): an administrator must fix them."""

    reason: str


@dataclass(frozen=True)
class ServerProblem:
    """RSA cannot be reached or answered nonsense: trying again later may work."""

    reason: str


Verdict = Accepted | Rejected | NextTokencode | NewPinRequired | ConfigurationProblem | ServerProblem


# -- settings and registry --------------------------------------------------------------


class TransportSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str


class RsaTransport:
    """One way of asking RSA. Implementations are safe to call from several threads at once
    and return within their configured timeouts (all servers, all retries)."""

    type_name: ClassVar[str]
    Settings: ClassVar[type[TransportSettings]] = TransportSettings

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register(TRANSPORT_TYPES, cls, "RSA transport type")

    def __init__(self, settings: TransportSettings) -> None:
        self.settings = settings

    def describe(self) -> str:
        """Where this transport goes, for logs and the CLI (never a secret)."""
        return self.type_name

    def warnings(self) -> list[str]:
        """Settings that work but that an operator should know about (check-config)."""
        return []

    def check_passcode(self, username: str, passcode: str, client_ip: str | None = None) -> Verdict:
        raise NotImplementedError

    def check_next_tokencode(self, username: str, tokencode: str, attempt: Mapping[str, str],
                             client_ip: str | None = None) -> Verdict:
        raise NotImplementedError

    def cancel(self, attempt: Mapping[str, str]) -> None:
        """Give up an attempt RSA is waiting on (new PIN). Best effort: never raises."""


def open_transport(settings: TransportSettings) -> RsaTransport:
    return TRANSPORT_TYPES[settings.type](settings)


def parse_transport_settings(value: Any) -> TransportSettings:
    """The `transport:` mapping, validated by the model of its `type`.

    Errors keep their YAML path below `transport` (pydantic would otherwise insert the tag of
    a union), and an unknown key lists the keys of that transport type.
    """
    if isinstance(value, TransportSettings):
        return value
    if not isinstance(value, dict):
        raise _invalid((), "a mapping with a type, e.g. {type: radius, host: ..., secret: ...}", value)
    kind = value.get("type")
    cls = TRANSPORT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise _invalid(("type",), f"expected one of: {', '.join(sorted(TRANSPORT_TYPES))}; found {kind!r}", value)
    try:
        return cls.Settings.model_validate(value)
    except ValidationError as error:
        raise _with_allowed_keys(error, cls.Settings) from None


def _invalid(loc: tuple, message: str, value: Any) -> ValidationError:
    detail = InitErrorDetails(type=PydanticCustomError("rsa_transport", message), loc=loc, input=value)
    return ValidationError.from_exception_data("transport", [detail])


def _with_allowed_keys(error: ValidationError, model: type[BaseModel]) -> ValidationError:
    details: list[InitErrorDetails] = []
    for e in error.errors():
        if e["type"] == "extra_forbidden":
            owner = _model_at(model, e["loc"][:-1])
            allowed = ", ".join(sorted(owner.model_fields)) if owner else ""
            message = "unknown key" + (f"; expected one of: {allowed}" if allowed else "")
            details.append(InitErrorDetails(type=PydanticCustomError("unknown_key", message), loc=e["loc"],
                                            input=e["input"]))
        else:
            details.append(InitErrorDetails(type=PydanticCustomError(e["type"], e["msg"]), loc=e["loc"],
                                            input=e["input"]))
    return ValidationError.from_exception_data("transport", details)


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class at a location inside `model` (through lists of models)."""
    node: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(node, "model_fields", {})
        if part not in fields:
            return None
        node = fields[part].annotation
        args = getattr(node, "__args__", ())
        node = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), node)
    return node if isinstance(node, type) and issubclass(node, BaseModel) else None


# Importing the transport modules registers them; a broken one fails loudly here.
from provider.channels.rsa_transports import radius, rest  # noqa: E402,F401
