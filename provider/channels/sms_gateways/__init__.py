"""SMS gateways, registered by their YAML `type`: how a text message leaves twostep.

A gateway module defines one `SmsGateway` subclass with `type_name`, its `Settings` model and
`send()`. Importing the module registers it; an unknown type is a configuration error that
lists the valid ones, reported at the YAML path of the `type` key (``channels.sms.gateway.type``).

The channel's `gateway:` setting is a `GatewaySpec`: validated by the model its `type` names,
so errors keep the YAML path of the file (no union tag in between) and `check-config` reports
them with every other problem.

A failed send raises `SendFailed` with one of three kinds, which decide what happens next:

- ``configuration``: our side is wrong (credentials, sender, URL): an operator must act;
- ``recipient``: this number cannot get the message (invalid, landline, opted out);
- ``unavailable``: try again later (timeouts, refused connections, 5xx, rate limits).

Details are for the log. They never hold the message (it holds the code) nor the full number:
`scrub()` is applied to whatever a remote server answered before it goes into a detail.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

import requests
from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from provider.registry import register

FailureKind = Literal["configuration", "recipient", "unavailable"]
GATEWAY_TYPES: dict[str, type[SmsGateway]] = {}

_DIGIT_RUNS = re.compile(r"\+?\d[\d\s().-]{4,}\d")  # phone numbers and codes: 6 characters or more


@dataclass(frozen=True)
class Sms:
    """One text message: to an E.164 number, with a body and how long it is worth delivering."""

    to: str
    body: str
    validity: int  # seconds; a message still queued after this is better dropped

    def __repr__(self) -> str:  # never the body (it holds the code) in a traceback or a log
        return f"Sms(to={self.to[:4]}…, body=<{len(self.body)} characters>, validity={self.validity})"


class SendFailed(Exception):
    """The message was not handed over. `detail` is for the log and holds no code, no full number."""

    def __init__(self, kind: FailureKind, detail: str, gateway: str = "") -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.gateway = gateway


class GatewaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    type: str


class SmsGateway:
    """One way of sending SMS. `where` is the YAML path of its settings, for log lines."""

    type_name: ClassVar[str]
    Settings: ClassVar[type[GatewaySettings]] = GatewaySettings

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register(GATEWAY_TYPES, cls, "SMS gateway type")

    def __init__(self, settings: GatewaySettings, where: str) -> None:
        self.settings = settings
        self.where = where

    @property
    def label(self) -> str:
        """What the audit and the log call this gateway, e.g. ``twilio``."""
        return self.type_name

    def send(self, sms: Sms) -> str:
        """Hand the message over; return the label of the gateway that took it. Raises SendFailed."""
        raise NotImplementedError

    def warnings(self) -> list[str]:
        """Settings that work but that an operator should know about (check-config)."""
        return []


class HttpCalling:
    """For gateways that call a provider over HTTPS: one session each, and the faults of the
    connection mapped to SendFailed kinds in one place (a TLS failure is our configuration)."""

    label: str

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session = requests.Session()

    def _call(self, method: str, url: str, timeout: float, **options: Any) -> requests.Response:
        try:
            return self._session.request(method, url, timeout=timeout, allow_redirects=False, **options)
        except requests.exceptions.SSLError as error:
            raise SendFailed("configuration", f"TLS: {scrub(str(error))}", self.label) from None
        except requests.Timeout:
            raise SendFailed("unavailable", f"no answer within {timeout:g} s", self.label) from None
        except requests.RequestException as error:
            raise SendFailed("unavailable", f"cannot connect: {type(error).__name__}", self.label) from None


def build_gateway(settings: GatewaySettings, where: str) -> SmsGateway:
    return GATEWAY_TYPES[settings.type](settings, where)


def _by_type(value: Any) -> GatewaySettings:
    """Validate a gateway mapping with the model of its `type`, keeping the YAML path of errors."""
    if isinstance(value, GatewaySettings):
        return value
    valid = ", ".join(sorted(GATEWAY_TYPES))
    if not isinstance(value, dict):
        raise PydanticCustomError("gateway", "expected a mapping with a type: one of {valid}", {"valid": valid})
    kind = value.get("type")
    cls = GATEWAY_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        problem = PydanticCustomError("gateway_type", "expected one of: {valid}; found {found}",
                                      {"valid": valid, "found": repr(kind)})
        raise ValidationError.from_exception_data("gateway", [InitErrorDetails(type=problem, loc=("type",),
                                                                               input=kind)])
    return cls.Settings.model_validate(value)


GatewaySpec = Annotated[GatewaySettings, PlainValidator(_by_type)]
"""The type of a `gateway:` setting: any registered gateway's settings, chosen by `type`."""


def remote_url(url: str) -> str:
    """An https URL, or http to this machine only (a local relay, tests): phone numbers and
    codes never cross a network in clear text."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"an https:// URL, found {url!r}")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError("https:// is required (http:// only to 127.0.0.1, ::1 or localhost)")
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def scrub(text: str, limit: int = 200) -> str:
    """A remote server's words, safe to log: runs of digits (numbers, codes) hidden, and short."""
    text = " ".join(text.split())
    text = _DIGIT_RUNS.sub("[digits]", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def unavailable_status(status: int) -> bool:
    """HTTP answers worth retrying elsewhere or later: rate limits and server errors."""
    return status == 429 or status >= 500


# Importing the gateway modules registers them; a broken one fails loudly here.
from provider.channels.sms_gateways import console, failover, http, twilio  # noqa: E402,F401
