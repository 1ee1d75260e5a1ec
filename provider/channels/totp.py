"""The authenticator-app channel (TOTP, RFC 6238): Google / Microsoft Authenticator.

Enrolment shows a QR code and the key for manual entry; the secret is made once per
enrolment attempt, kept encrypted in the flow state, and becomes the user's registration only
when the first valid code proves the app has it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field

from provider.audit import audit
from provider.channels import Channel, ChannelSettings
from provider.channels import totp_codes as codes
from provider.enrollment import Enrollment
from provider.login.outcomes import Fail, Next, Render, Stay, Submitted
from provider.login.state import FlowState

PENDING = "totp_pending"
FAILURES = "failures"


class TotpSettings(ChannelSettings):
    type: Literal["totp"]
    issuer: str = Field("twostep", min_length=1, max_length=64, description="the name shown in the app")
    digits: Literal[6, 8] = 6
    period: int = Field(30, ge=15, le=120)
    algorithm: Literal["SHA1", "SHA256", "SHA512"] = "SHA1"
    valid_window: int = Field(1, ge=0, le=3, description="time steps accepted either side of now")
    secret_bytes: int = Field(20, ge=16, le=64)
    max_attempts: int = Field(5, ge=1, le=20, description="wrong codes before the login must start again")


class TotpChannel(Channel):
    type_name = "totp"
    Settings = TotpSettings
    amr = "otp"
    label = "Authenticator app"
    settings: TotpSettings

    @property
    def params(self) -> codes.TotpParameters:
        s = self.settings
        return codes.TotpParameters(digits=s.digits, period=s.period, algorithm=s.algorithm,
                                    valid_window=s.valid_window, secret_bytes=s.secret_bytes)

    def warnings(self) -> list[str]:
        s = self.settings
        if (s.algorithm, s.digits, s.period) != ("SHA1", 6, 30):
            return [f"channels.{self.name}: Microsoft Authenticator supports only SHA1, 6 digits, 30 seconds"]
        return []

    # -- enrolment ---------------------------------------------------------------------

    def enroll_show(self, state: FlowState, services) -> Render:
        secret, state = self._pending_secret(state, services)
        # The Key Uri Format forbids ':' in the label's parts; it only names the entry in the app.
        account = (state.username or "").replace(":", " ")
        uri = codes.provisioning_uri(secret, self.params, self.settings.issuer.replace(":", " "), account)
        return Render("totp_enroll", {"qr": codes.qr_data_uri(uri), "secret": codes.grouped(codes.base32(secret)),
                                      "issuer": self.settings.issuer, "digits": self.settings.digits}, state=state)

    def enroll_submit(self, state: FlowState, form: Mapping[str, str], services) -> Submitted:
        if PENDING not in state.data:
            return Stay(state, "Scan the QR code, then enter the code your app shows.")
        secret = services.encryptor.decrypt(state.data[PENDING], _context(state))
        outcome = self._check(state, form, secret, services)
        if isinstance(outcome, Next):
            now = services.clock.now()
            services.enrollments.save(Enrollment(user_id=state.user_id, channel=self.name, kind=self.type_name,
                                                 secret=secret, phone=None, created_at=now, last_used_at=now))
            audit("factor.enrolled", user_id=state.user_id, username=state.username, channel=self.name,
                  client_id=state.client_id, flow=state.flow, outcome="success")
        return outcome

    # -- challenge ---------------------------------------------------------------------

    def challenge_show(self, state: FlowState, enrollment: Enrollment, services) -> Render:
        return Render("totp_challenge", {"digits": self.settings.digits})

    def challenge_submit(self, state: FlowState, form: Mapping[str, str], enrollment: Enrollment,
                         services) -> Submitted:
        outcome = self._check(state, form, enrollment.secret or b"", services)
        if isinstance(outcome, Next):
            services.enrollments.touch(state.user_id, self.name, services.clock.now())
        return outcome

    # -- internals ---------------------------------------------------------------------

    def _check(self, state: FlowState, form: Mapping[str, str], secret: bytes, services) -> Submitted:
        guard = codes.ReplayGuard(services.state)
        result = codes.verify(secret, self.params, form.get("otp", ""), services.clock.now(), guard,
                              f"totp:last:{state.user_id}:{self.name}")
        if result.ok:
            return Next(state)
        failures = int(state.data.get(FAILURES, 0)) + 1
        audit("factor.challenge_failed", user_id=state.user_id, username=state.username, channel=self.name,
              client_id=state.client_id, flow=state.flow, outcome="failure", reason=result.reason)
        if failures >= self.settings.max_attempts:
            return Fail("Too many wrong codes. Start again to sign in.")
        return Stay(state.evolve(data={**state.data, FAILURES: failures}), _message(result, self.settings.digits),
                    failed=result.reason != "malformed")

    def _pending_secret(self, state: FlowState, services) -> tuple[bytes, FlowState]:
        """The secret of this enrolment attempt: made once, kept encrypted in the flow state."""
        if PENDING in state.data:
            return services.encryptor.decrypt(state.data[PENDING], _context(state)), state
        secret = codes.new_secret(self.params)
        sealed = services.encryptor.encrypt(secret, _context(state))
        return secret, state.evolve(data={**state.data, PENDING: sealed})


def _context(state: FlowState) -> str:
    return f"flow:{state.id}:totp"


def _message(result: codes.Verification, digits: int) -> str:
    if result.reason == "malformed":
        return f"Enter the {digits}-digit code from your authenticator app."
    if result.reason == "replayed":
        return "That code was already used. Wait for the next code and enter it."
    if result.skew is not None:
        return "That code is not valid now. The clock on your phone may be wrong: set it to automatic time."
    return "That code is not correct. Try the current code from your app."
