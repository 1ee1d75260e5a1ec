"""The `http` gateway: a templated webhook, for SMS providers (or an in-house relay) with no
gateway of their own here.

The request body is the `json` or the `form` mapping of the settings, in which string values
may hold ``{phone}`` (E.164) and ``{message}``. They are filled in as data, value by value, and
the body is serialised afterwards, so a message can never break out of its JSON string.
TLS certificates are always verified, against the system's CAs or `ca_file`.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from provider.channels.sms_gateways import (
    GatewaySettings,
    HttpCalling,
    SendFailed,
    Sms,
    SmsGateway,
    remote_url,
    scrub,
    unavailable_status,
)

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
PLACEHOLDERS = ("phone", "message")
_STATUSES = re.compile(r"\d{3}(-\d{3})?(,\d{3}(-\d{3})?)*")


class HttpSettings(GatewaySettings):
    type: Literal["http"]
    url: str
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[str, str] = {}
    json_body: dict[str, Any] | None = Field(None, alias="json", description="a JSON object to send")
    form: dict[str, str] | None = Field(None, description="form fields to send, url-encoded")
    timeout: float = Field(5.0, gt=0, le=60, description="seconds")
    success_status: str = Field("200-299", description="e.g. 200-299, or 200,202")
    ca_file: str | None = Field(None, description="PEM file of the CAs to trust instead of the system's")

    @field_validator("url")
    @classmethod
    def _remote(cls, url: str) -> str:
        return remote_url(url)

    @field_validator("success_status", mode="before")
    @classmethod
    def _statuses(cls, value: Any) -> Any:
        text = str(value).replace(" ", "") if isinstance(value, int | str) else value
        if not isinstance(text, str) or not _STATUSES.fullmatch(text):
            raise ValueError("HTTP statuses and ranges, such as 200-299 or 200,202")
        return text

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, path: str | None) -> str | None:
        if path is not None and not Path(path).is_file():
            raise ValueError(f"a PEM file of CA certificates, but there is no file {path!r}")
        return path

    @field_validator("headers")
    @classmethod
    def _no_placeholders_in_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if PLACEHOLDER.search(value):
                raise ValueError(f"header {name!r}: placeholders are filled in `json` or `form` only")
        return headers

    @model_validator(mode="after")
    def _one_body_with_both_placeholders(self) -> HttpSettings:
        if (self.json_body is None) == (self.form is None):
            raise ValueError("give either `json` or `form` (the request body), not both and not neither")
        used = set(_placeholders(self.json_body if self.json_body is not None else self.form))
        unknown = sorted(used - set(PLACEHOLDERS))
        if unknown:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}; the body may use {{phone}} and {{message}}")
        missing = [name for name in PLACEHOLDERS if name not in used]
        if missing:
            raise ValueError(f"the body must contain {{{missing[0]}}} somewhere, or the SMS cannot be sent")
        return self

    def accepts(self, status: int) -> bool:
        for part in self.success_status.split(","):
            low, _, high = part.partition("-")
            if int(low) <= status <= int(high or low):
                return True
        return False


class HttpGateway(HttpCalling, SmsGateway):
    type_name = "http"
    Settings = HttpSettings
    settings: HttpSettings

    @property
    def label(self) -> str:
        return f"http {_origin(self.settings.url)}"

    def send(self, sms: Sms) -> str:
        s = self.settings
        values = {"phone": sms.to, "message": sms.body}
        body = {"json": _fill(s.json_body, values)} if s.json_body is not None else {"data": _fill(s.form, values)}
        response = self._call(s.method, s.url, s.timeout, headers=s.headers, verify=s.ca_file or True, **body)
        with response:
            if s.accepts(response.status_code):
                return self.label
            kind = "unavailable" if unavailable_status(response.status_code) else "configuration"
            raise SendFailed(kind, f"HTTP {response.status_code}: {scrub(response.text)}", self.label)


def _placeholders(value: Any) -> list[str]:
    if isinstance(value, str):
        return PLACEHOLDER.findall(value)
    if isinstance(value, dict):
        return [name for item in value.values() for name in _placeholders(item)]
    if isinstance(value, list):
        return [name for item in value for name in _placeholders(item)]
    return []


def _fill(value: Any, values: dict[str, str]) -> Any:
    """The template with placeholders replaced in every string, keys and non-strings untouched."""
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), value)
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    return value


def _origin(url: str) -> str:
    """scheme://host[:port] of the URL: enough to tell gateways apart, no path or credentials."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].rpartition('@')[2]}"
