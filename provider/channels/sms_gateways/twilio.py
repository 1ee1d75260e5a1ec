"""The `twilio` gateway: Twilio Programmable Messaging, Messages resource (API version 2010-04-01).

    POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json
    Authorization: Basic base64(AccountSid:AuthToken)
    Content-Type: application/x-www-form-urlencoded
    To=+E164 & (From=... | MessagingServiceSid=MG...) & Body=... & ValidityPeriod=seconds

https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource
A created message answers 201 with the Message as JSON; an error answers 4xx/5xx with
``{"code": ..., "message": ..., "more_info": ..., "status": ...}``
(https://www.twilio.com/docs/usage/twilios-response). The error codes that matter here are
sorted by who must act (https://www.twilio.com/docs/api/errors/<code>).
"""
from __future__ import annotations

import re
from typing import Literal

import requests
from pydantic import Field, SecretStr, field_validator, model_validator

from provider.channels.sms_gateways import (
    FailureKind,
    GatewaySettings,
    HttpCalling,
    SendFailed,
    Sms,
    SmsGateway,
    remote_url,
    scrub,
    unavailable_status,
)

API_VERSION = "2010-04-01"
MAX_VALIDITY = 36000  # ValidityPeriod: 1 to 36,000 seconds (error 90007 outside)
ERROR_KINDS: dict[int, FailureKind] = {
    20003: "configuration",  # Permission Denied: wrong Account SID / Auth Token, suspended account
    21606: "configuration",  # the From number is not a valid, SMS-capable number of this account
    21608: "configuration",  # trial account: the To number is not verified
    21211: "recipient",  # Invalid 'To' Phone Number
    21612: "recipient",  # the To number cannot be reached from this sender
    21614: "recipient",  # 'To' number is not a valid mobile number (a landline)
    21610: "recipient",  # the recipient replied STOP: unsubscribed from this sender
    20429: "unavailable",  # Too Many Requests
}
SENDER_ID = re.compile(r"\+[1-9][0-9]{6,14}|[0-9]{3,8}|(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")  # E.164, short code, name


class TwilioSettings(GatewaySettings):
    type: Literal["twilio"]
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$", description="AC followed by 32 hex digits")
    auth_token: SecretStr = Field(min_length=1)
    sender: str | None = Field(None, alias="from",
                               description="a Twilio number in E.164, a short code or an alphanumeric sender ID")
    messaging_service_sid: str | None = Field(None, pattern=r"^MG[0-9a-fA-F]{32}$")
    base_url: str = "https://api.twilio.com"
    timeout: float = Field(10.0, gt=0, le=60, description="seconds")

    @field_validator("sender")
    @classmethod
    def _sender_id(cls, sender: str | None) -> str | None:
        if sender is not None and not SENDER_ID.fullmatch(sender):
            raise ValueError("a number in E.164 (+14155550100), a short code or an alphanumeric sender ID"
                             " (up to 11 letters, digits and spaces)")
        return sender

    @field_validator("base_url")
    @classmethod
    def _remote(cls, url: str) -> str:
        return remote_url(url).rstrip("/")

    @model_validator(mode="after")
    def _one_sender(self) -> TwilioSettings:
        if (self.sender is None) == (self.messaging_service_sid is None):
            raise ValueError("give either `from` (the sending number) or `messaging_service_sid`, not both")
        return self


class TwilioGateway(HttpCalling, SmsGateway):
    type_name = "twilio"
    Settings = TwilioSettings
    settings: TwilioSettings

    def send(self, sms: Sms) -> str:
        s = self.settings
        url = f"{s.base_url}/{API_VERSION}/Accounts/{s.account_sid}/Messages.json"
        form = {"To": sms.to, "Body": sms.body, "ValidityPeriod": str(max(1, min(sms.validity, MAX_VALIDITY)))}
        if s.messaging_service_sid:
            form["MessagingServiceSid"] = s.messaging_service_sid
        else:
            form["From"] = s.sender or ""
        response = self._call("POST", url, s.timeout, data=form,
                              auth=(s.account_sid, s.auth_token.get_secret_value()))
        with response:
            if response.status_code in (200, 201):
                return self.label
            raise self._failure(response)

    def _failure(self, response: requests.Response) -> SendFailed:
        try:
            error = response.json()
        except ValueError:
            error = {}
        code = error.get("code") if isinstance(error, dict) else None
        code = code if isinstance(code, int) else None
        if code in ERROR_KINDS:
            kind = ERROR_KINDS[code]
        elif unavailable_status(response.status_code):
            kind = "unavailable"
        else:
            kind = "configuration"  # a request Twilio refused for a reason not about the recipient
        message = scrub(str(error.get("message", ""))) if isinstance(error, dict) else ""
        detail = f"HTTP {response.status_code}, Twilio error {code}: {message}" if code else \
            f"HTTP {response.status_code}: {message or scrub(response.text)}"
        return SendFailed(kind, detail, self.label)
