"""The settings of an SMS channel (`channels.<name>` with `type: sms`)."""
from __future__ import annotations

import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from provider.channels import ChannelSettings
from provider.channels.sms_gateways import GatewaySpec
from provider.channels.sms_phone import known_region

DEFAULT_MESSAGE = "Your {issuer} verification code is {code}. It expires in {minutes} minutes."
MESSAGE_FIELDS = ("code", "issuer", "minutes")
SINGLE_SMS = 160  # GSM-7 characters in one SMS; longer messages cost several


class SendQuotas(BaseModel):
    """Sends per hour (a sliding window), per user, per number and per client address; 0: no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    user: int = Field(5, ge=0)
    number: int = Field(5, ge=0)
    ip: int = Field(20, ge=0)


class SmsSettings(ChannelSettings):
    type: Literal["sms"]
    gateway: GatewaySpec
    issuer: str = Field("twostep", min_length=1, max_length=40, description="{issuer} in the message")
    message: str = Field(DEFAULT_MESSAGE, min_length=1, max_length=480)
    default_region: str | None = Field(None, description="region of numbers typed without +, e.g. GB")
    allowed_regions: list[str] = Field([], description="only numbers of these regions; empty: any")
    code_length: int = Field(6, ge=6, le=10)
    code_ttl: int = Field(300, ge=60, le=3600, description="seconds a code is valid")
    max_attempts: int = Field(5, ge=1, le=20, description="wrong entries before a code is invalidated")
    resend: bool = Field(True, description="offer Resend OTP at login (enrolment always offers it)")
    resend_cooldown: int = Field(30, ge=0, le=3600, description="seconds between two sends to a user")
    max_sends_per_hour: SendQuotas = SendQuotas()

    @field_validator("default_region")
    @classmethod
    def _region(cls, region: str | None) -> str | None:
        return None if region is None else known_region(region)

    @field_validator("allowed_regions")
    @classmethod
    def _regions(cls, regions: list[str]) -> list[str]:
        return [known_region(region) for region in regions]

    @field_validator("message")
    @classmethod
    def _template(cls, message: str) -> str:
        try:
            fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(message)
                      if name is not None]
        except ValueError as error:
            raise ValueError(f"not a valid template ({error}); write {{{{ and }}}} for literal braces") from None
        for name, spec, conversion in fields:
            if name not in MESSAGE_FIELDS or spec or conversion:
                raise ValueError(f"unknown placeholder {{{name}}}; the message may use {{code}}, {{issuer}}"
                                 " and {minutes}")
        if "code" not in [name for name, _, _ in fields]:
            raise ValueError("the message must contain {code}")
        return message

    @property
    def minutes(self) -> int:
        return -(-self.code_ttl // 60)

    def render(self, code: str) -> str:
        return self.message.format(code=code, issuer=self.issuer, minutes=self.minutes)

    def notes(self, where: str) -> list[str]:
        """Warnings for check-config about settings that work but may surprise."""
        lines = []
        sample = self.render("0" * self.code_length)
        if len(sample) > SINGLE_SMS:
            lines.append(f"{where}.message: {len(sample)} characters, more than one SMS ({SINGLE_SMS})")
        if self.allowed_regions and self.default_region and self.default_region not in self.allowed_regions:
            lines.append(f"{where}.default_region: {self.default_region} is not among the allowed_regions")
        quotas = self.max_sends_per_hour
        if 0 in (quotas.user, quotas.number, quotas.ip) or self.resend_cooldown == 0:
            lines.append(f"{where}: a send limit is 0 (off): SMS pumping can run up the bill")
        return lines
