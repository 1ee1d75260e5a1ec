"""The RSA SecurID channel: a passcode (PIN followed by the tokencode) checked by RSA
Authentication Manager, over RADIUS or the REST Authentication API (`rsa_transports`).

No self-enrolment: tokens are assigned by an administrator in RSA, so every user counts as
registered and RSA decides. When RSA asks for the next tokencode, a second screen completes the
same attempt; what the transport needs for that (RADIUS State, REST authnAttemptId) is kept in
the flow state, never the passcode. A new-PIN request is not handled in the browser.

The user sees one of three errors: the passcode is invalid, the RSA configuration is invalid,
or there is an issue with the RSA server; the audit log says which and why.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import Field, PlainValidator

from provider.audit import audit
from provider.channels import Channel, ChannelSettings
from provider.channels.rsa_transports import (
    Accepted,
    ConfigurationProblem,
    NewPinRequired,
    NextTokencode,
    Rejected,
    RsaTransport,
    ServerProblem,
    TransportSettings,
    Verdict,
    open_transport,
    parse_transport_settings,
)
from provider.enrollment import Enrollment
from provider.login.outcomes import Fail, Next, Render, Stay, Submitted
from provider.login.state import FlowState

ATTEMPT = "rsa_attempt"  # the challenge being answered: what the transport needs, never a code
PROMPT = "rsa_prompt"
FAILURES = "failures"

INVALID = "The passcode is invalid. Enter your PIN followed by the code shown on your token."
CONFIGURATION = "The RSA configuration is invalid. Please contact your administrator."
SERVER = "There is an issue with the RSA server. Please try again later."
NEW_PIN = ("Your RSA SecurID token needs a new PIN. Set it in RSA Self-Service, then sign in with"
           " your new PIN.")
TOO_MANY = "Too many wrong passcodes. Start again to sign in."


class RsaSettings(ChannelSettings):
    type: Literal["rsa"]
    transport: Annotated[TransportSettings, PlainValidator(parse_transport_settings)]
    pin_length: int = Field(8, ge=0, le=8, description="the longest PIN (RSA PINs have 4 to 8 characters)")
    tokencode_length: Literal[6, 8] = 6
    username_attribute: str | None = Field(None, pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$",
                                           description="the user attribute RSA knows the user by (default: the"
                                                       " directory username)")
    max_attempts: int = Field(5, ge=1, le=20, description="wrong passcodes before the login must start again")
    new_pin_message: str = Field(NEW_PIN, min_length=1, max_length=500)


class RsaChannel(Channel):
    type_name = "rsa"
    Settings = RsaSettings
    self_enrollment = False
    amr = "otp"
    label = "RSA SecurID"
    settings: RsaSettings

    def __init__(self, name: str, settings: RsaSettings) -> None:
        super().__init__(name, settings)
        self.transport: RsaTransport = open_transport(settings.transport)

    @property
    def passcode_length(self) -> int:
        return self.settings.pin_length + self.settings.tokencode_length

    def warnings(self) -> list[str]:
        return [f"channels.{self.name}.transport: {line}" for line in self.transport.warnings()]

    def registration_for(self, user_id: str, services) -> Enrollment:
        """Every user is registered: RSA Authentication Manager knows who has a token."""
        return Enrollment(user_id=user_id, channel=self.name, kind=self.type_name, secret=None, phone=None,
                          created_at=0.0)

    # -- challenge ---------------------------------------------------------------------

    def challenge_show(self, state: FlowState, enrollment: Enrollment, services) -> Render:
        s = self.settings
        if ATTEMPT in state.data:
            return Render("rsa_next_tokencode", {"digits": s.tokencode_length, "prompt": state.data.get(PROMPT)})
        return Render("rsa_challenge", {"maxlength": self.passcode_length, "digits": s.tokencode_length})

    def challenge_submit(self, state: FlowState, form: Mapping[str, str], enrollment: Enrollment,
                         services) -> Submitted:
        attempt = state.data.get(ATTEMPT)
        field = "otp" if attempt else "passcode"
        code = re.sub(r"\s+", "", form.get(field, ""))[:64]
        if not code:
            return Stay(state, "Enter the next tokencode." if attempt else
                        "Enter your passcode: your PIN followed by the code shown on your token.")
        username = self._rsa_username(state, services)
        if username is None:
            return self._trouble(state, ConfigurationProblem(f"the user has no {self.settings.username_attribute!r}"))
        if not self._well_formed(code, attempt is not None):
            return self._rejected(state.evolve(data=_without_attempt(state.data)),
                                  Rejected("not of the configured lengths: not sent to RSA"), guessed=False)
        if attempt:
            verdict: Verdict = self.transport.check_next_tokencode(username, code, attempt, services.client_ip)
        else:
            verdict = self.transport.check_passcode(username, code, services.client_ip)
        return self._answer(state, verdict)

    # -- internals ---------------------------------------------------------------------

    def _answer(self, state: FlowState, verdict: Verdict) -> Submitted:
        data = _without_attempt(state.data)
        if isinstance(verdict, Accepted):
            return Next(state.evolve(data=data))
        if isinstance(verdict, NextTokencode):
            self._audit("rsa.next_tokencode", state, outcome="challenge")
            return Stay(state.evolve(data={**data, ATTEMPT: dict(verdict.attempt), PROMPT: verdict.message}))
        if isinstance(verdict, NewPinRequired):
            self.transport.cancel(verdict.attempt)
            self._audit("rsa.new_pin_required", state, outcome="failure")
            return Stay(state.evolve(data=data), self.settings.new_pin_message)
        if isinstance(verdict, Rejected):
            return self._rejected(state.evolve(data=data), verdict)
        return self._trouble(state.evolve(data=data), verdict)

    def _rejected(self, state: FlowState, verdict: Rejected, guessed: bool = True) -> Submitted:
        """A wrong passcode. One RSA refused counts towards the lockout (`failed`) like any
        wrong code; a malformed one was never sent, so only towards this login's attempts."""
        failures = int(state.data.get(FAILURES, 0)) + 1
        reason = "invalid_passcode" if guessed else "malformed"
        self._audit("rsa.error", state, outcome="invalid_passcode", reason=verdict.reason)
        self._audit("factor.challenge_failed", state, outcome="failure", reason=reason)
        if failures >= self.settings.max_attempts:
            return Fail(TOO_MANY)
        return Stay(state.evolve(data={**state.data, FAILURES: failures}), INVALID, failed=guessed)

    def _trouble(self, state: FlowState, verdict: ConfigurationProblem | ServerProblem) -> Submitted:
        configuration = isinstance(verdict, ConfigurationProblem)
        self._audit("rsa.error", state, outcome="configuration" if configuration else "server_issue",
                    reason=verdict.reason, transport=self.transport.describe())
        return Stay(state, CONFIGURATION if configuration else SERVER)

    def _well_formed(self, code: str, tokencode_only: bool) -> bool:
        digits = self.settings.tokencode_length
        if tokencode_only:
            return re.fullmatch(rf"[0-9]{{{digits}}}", code) is not None
        return re.fullmatch(rf"[A-Za-z0-9]{{0,{self.settings.pin_length}}}[0-9]{{{digits}}}", code) is not None

    def _rsa_username(self, state: FlowState, services) -> str | None:
        """The name RSA knows: the directory username, or the attribute `username_attribute`."""
        attribute = self.settings.username_attribute
        if attribute is None:
            return state.username
        user = services.directory.get(state.user_id) if state.user_id else None
        value = getattr(user, attribute, None) if user else None
        if value is None and user is not None:
            value = (getattr(user, "attributes", None) or {}).get(attribute)
        if isinstance(value, list | tuple):
            value = value[0] if value else None
        return str(value) if value else None

    def _audit(self, event: str, state: FlowState, **fields) -> None:
        audit(event, user_id=state.user_id, username=state.username, channel=self.name,
              client_id=state.client_id, flow=state.flow, **fields)


def _without_attempt(data: Mapping) -> dict:
    return {k: v for k, v in data.items() if k not in (ATTEMPT, PROMPT)}
