"""The SMS channel: a one-time code texted to the user's mobile phone.

Enrolment has three stages, kept in the flow state: the number is typed (**Register**), shown
back in international format for a yes/no (**Edit** / **Confirm**), then the code sent to it is
entered (**Send**, with **Resend OTP**). The number becomes the user's registration only when a
code sent to it comes back. At login a registered user gets a code automatically, once per
flow; **Resend OTP** is offered too unless `resend: false`.

Every send passes the cooldown and quotas of `sms_limits`; codes live in `sms_codes`. A send
that fails leaves no usable code behind. Numbers are personal data: the log and the audit get
them masked; codes never leave this module except in the message to the gateway.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from provider.audit import audit
from provider.channels import Channel, ChannelSettings
from provider.channels.sms_codes import CodeBook, Verdict
from provider.channels.sms_gateways import SendFailed, Sms, build_gateway, scrub
from provider.channels.sms_limits import Blocked, SendLimiter
from provider.channels.sms_phone import InvalidPhone, digest, international, masked, parse_mobile, region_name
from provider.channels.sms_settings import SmsSettings
from provider.enrollment import Enrollment
from provider.login.outcomes import Fail, Next, Render, Stay, Submitted
from provider.login.state import FlowState

log = logging.getLogger("twostep.sms")

PHONE, STAGE, SENDS, AUTO = "sms_phone", "sms_stage", "sms_sends", "sms_auto"
SEND_FAILED = "We could not send the SMS. Try again in a moment."
RECIPIENT_NEW = "We could not send an SMS to this number. Check it, or enter another mobile number."
RECIPIENT_REGISTERED = "We could not send an SMS to your registered number. Contact your administrator."
NO_RESEND = "Start again to sign in and get a new code."


@dataclass(frozen=True)
class Delivery:
    state: FlowState
    error: str | None = None
    failure: str | None = None  # "blocked" or a SendFailed kind


class SmsChannel(Channel):
    type_name = "sms"
    Settings = SmsSettings
    amr = "sms"  # RFC 8176: confirmation by a code sent by SMS
    label = "Text message (SMS)"
    settings: SmsSettings

    def __init__(self, name: str, settings: ChannelSettings) -> None:
        super().__init__(name, settings)
        self.gateway = build_gateway(self.settings.gateway, f"channels.{name}.gateway")

    def warnings(self) -> list[str]:
        return self.gateway.warnings() + self.settings.notes(f"channels.{self.name}")

    # -- enrolment ---------------------------------------------------------------------

    def enroll_show(self, state: FlowState, services) -> Render:
        phone = self._pending_phone(state, services)
        stage = state.data.get(STAGE, "phone") if phone else "phone"
        if stage == "code":
            return Render("sms_code", self._code_screen(state, phone, services, enrolling=True))
        region = self.settings.default_region
        return Render("sms_enroll", {"phone": international(phone) if phone else "",
                                     "confirm": international(phone) if stage == "confirm" else None,
                                     "region": region_name(region) if region else None})

    def enroll_submit(self, state: FlowState, form: Mapping[str, str], services) -> Submitted:
        action, stage = form.get("action", ""), state.data.get(STAGE, "phone")
        if action == "register" or (not action and stage == "phone"):
            return self._register(state, form.get("phone", ""), services)
        if action == "edit":
            self._codes(services).forget(self._scope(state))
            return Stay(_with(state, **{STAGE: "phone"}))
        phone = self._pending_phone(state, services)
        if phone is None:
            return Stay(_with(state, **{STAGE: "phone"}), "Enter your mobile phone number.")
        if action in ("confirm", "resend"):
            delivery = self._deliver(state, phone, services, enrolling=True)
            if delivery.failure == "recipient":
                return Stay(_with(delivery.state, **{STAGE: "phone"}), delivery.error)
            sent = delivery.failure is None or stage == "code"
            return Stay(_with(delivery.state, **{STAGE: "code" if sent else stage}), delivery.error)
        if stage != "code":
            return Stay(state)
        outcome = self._verify(state, form, phone, services, enrolling=True)
        if isinstance(outcome, Next):
            now = services.clock.now()
            services.enrollments.save(Enrollment(user_id=state.user_id, channel=self.name, kind=self.type_name,
                                                 secret=None, phone=phone, created_at=now, last_used_at=now))
            audit("factor.enrolled", user_id=state.user_id, username=state.username, channel=self.name,
                  client_id=state.client_id, flow=state.flow, phone=masked(phone, hide="*"), outcome="success")
        return outcome

    def _register(self, state: FlowState, typed: str, services) -> Submitted:
        s = self.settings
        try:
            phone = parse_mobile(typed, s.default_region, s.allowed_regions)
        except InvalidPhone as invalid:
            return Stay(_with(state, **{STAGE: "phone"}), str(invalid))
        self._codes(services).forget(self._scope(state))
        sealed = services.encryptor.encrypt(phone.encode(), _context(state))
        return Stay(_with(state, **{PHONE: sealed, STAGE: "confirm", SENDS: 0}))

    # -- challenge ---------------------------------------------------------------------

    def challenge_show(self, state: FlowState, enrollment: Enrollment, services) -> Render:
        phone = enrollment.phone
        if not phone:
            return Render("message", {"message": RECIPIENT_REGISTERED})
        if state.data.get(AUTO):
            return Render("sms_code", self._code_screen(state, phone, services, enrolling=False))
        delivery = self._deliver(_with(state, **{AUTO: True}), phone, services, enrolling=False)
        state = delivery.state
        if delivery.failure == "blocked" and self._codes(services).pending(self._scope(state)):
            state = _with(state, **{SENDS: max(1, state.data.get(SENDS, 0))})  # sent by a parallel request
        elif delivery.error:
            state = state.evolve(error=delivery.error)
        return Render("sms_code", self._code_screen(state, phone, services, enrolling=False), state=state)

    def challenge_submit(self, state: FlowState, form: Mapping[str, str], enrollment: Enrollment,
                         services) -> Submitted:
        phone = enrollment.phone
        if not phone:
            return Fail(RECIPIENT_REGISTERED)
        if form.get("action") == "resend":
            if not self._offers_resend(state, enrolling=False):
                return Stay(state, NO_RESEND)
            delivery = self._deliver(state, phone, services, enrolling=False)
            return Stay(delivery.state, delivery.error)
        outcome = self._verify(state, form, phone, services, enrolling=False)
        if isinstance(outcome, Next):
            services.enrollments.touch(state.user_id, self.name, services.clock.now())
        return outcome

    # -- sending -----------------------------------------------------------------------

    def _deliver(self, state: FlowState, phone: str, services, *, enrolling: bool) -> Delivery:
        """Send a new code to `phone` if the limits allow; the previous code dies either way."""
        fields = self._audit_fields(state, phone, enrolling)
        ticket = self._limiter(services).acquire(self._cooldown_key(state), self._quotas(state, phone, services))
        if isinstance(ticket, Blocked):
            audit("sms.throttled", **fields, reason=ticket.reason, limit=ticket.limit or None, outcome="failure")
            return Delivery(state, _blocked(ticket, services.clock.now()), "blocked")
        codes = self._codes(services)
        codes.void(self._scope(state))
        code = codes.new_code()
        try:
            gateway = self.gateway.send(Sms(phone, self.settings.render(code), self.settings.code_ttl))
        except Exception as error:  # a gateway's bug is a failed send too, never a 500 page
            failure = error if isinstance(error, SendFailed) else \
                SendFailed("configuration", f"{type(error).__name__}: {scrub(str(error))}", self.gateway.label)
            if failure.kind != "unavailable":
                self._limiter(services).give_back(ticket)  # surely not sent: neither counted nor cooling
            log.warning("SMS to %s via %s failed, %s: %s", fields["phone"], failure.gateway or self.gateway.label,
                        failure.kind, failure.detail)
            audit("sms.failed", **fields, gateway=failure.gateway or self.gateway.label, reason=failure.kind,
                  outcome="failure")
            recipient = RECIPIENT_NEW if enrolling else RECIPIENT_REGISTERED
            return Delivery(state, recipient if failure.kind == "recipient" else SEND_FAILED, failure.kind)
        codes.remember(self._scope(state), phone, code)
        audit("sms.sent", **fields, gateway=gateway, outcome="success")
        return Delivery(_with(state, **{SENDS: state.data.get(SENDS, 0) + 1}))

    def _quotas(self, state: FlowState, phone: str, services) -> dict[str, tuple[str, int]]:
        limits, prefix = self.settings.max_sends_per_hour, f"sms:{self.name}:sent"
        quotas = {"user": (f"{prefix}:user:{state.user_id}", limits.user),
                  "number": (f"{prefix}:number:{digest(phone)}", limits.number)}
        if services.client_ip:
            quotas["ip"] = (f"{prefix}:ip:{services.client_ip}", limits.ip)
        return quotas

    # -- checking ----------------------------------------------------------------------

    def _verify(self, state: FlowState, form: Mapping[str, str], phone: str, services, *,
                enrolling: bool) -> Submitted:
        verdict = self._codes(services).check(self._scope(state), phone, form.get("otp", ""))
        if verdict.ok:
            return Next(state)
        audit("factor.challenge_failed", **self._audit_fields(state, phone, enrolling), reason=verdict.result,
              outcome="failure")
        if verdict.result in ("expired", "exhausted") and not self._offers_resend(state, enrolling):
            return Fail(("Too many wrong codes. " if verdict.result == "exhausted" else "The code expired. ")
                        + NO_RESEND)
        return Stay(state, self._verdict_message(verdict, state))

    def _verdict_message(self, verdict: Verdict, state: FlowState) -> str:
        if verdict.result == "malformed":
            return f"Enter the {self.settings.code_length}-digit code from the SMS."
        if verdict.result == "wrong":
            left = f" You can try {verdict.tries_left} more time{'s' if verdict.tries_left > 1 else ''}." \
                if verdict.tries_left <= 2 else ""
            return "That code is not correct. Check the SMS and try again." + left
        if verdict.result == "exhausted":
            return "Too many wrong codes: that code no longer works. Use Resend OTP to get a new one."
        if verdict.result == "replaced":
            return "That code was replaced by a newer one. Enter the code from the latest SMS."
        if not state.data.get(SENDS):
            return "We have not sent you a code yet. Use Resend OTP to get one."
        return "That code has expired or was replaced by a newer one. Use Resend OTP to get a new one."

    # -- helpers -----------------------------------------------------------------------

    def _code_screen(self, state: FlowState, phone: str, services, *, enrolling: bool) -> dict[str, Any]:
        sends = state.data.get(SENDS, 0)
        number = international(phone) if enrolling else masked(phone)
        notice = f"We sent a new code to {number}. The previous code no longer works." if sends > 1 else None
        wait = math.ceil(self._limiter(services).wait(self._cooldown_key(state)))
        return {"number": number, "digits": self.settings.code_length, "notice": notice, "enrolling": enrolling,
                "resend": self._offers_resend(state, enrolling), "resend_wait": wait,
                "minutes": self.settings.minutes}

    def _offers_resend(self, state: FlowState, enrolling: bool) -> bool:
        return enrolling or self.settings.resend or not state.data.get(SENDS)

    def _pending_phone(self, state: FlowState, services) -> str | None:
        sealed = state.data.get(PHONE)
        return services.encryptor.decrypt(sealed, _context(state)).decode() if sealed else None

    def _codes(self, services) -> CodeBook:
        s = self.settings
        return CodeBook(services.state, services.encryptor, services.clock, length=s.code_length, ttl=s.code_ttl,
                        max_attempts=s.max_attempts)

    def _limiter(self, services) -> SendLimiter:
        return SendLimiter(services.state, services.clock, self.settings.resend_cooldown)

    def _scope(self, state: FlowState) -> str:
        return f"{state.id}:{self.name}"

    def _cooldown_key(self, state: FlowState) -> str:
        return f"sms:{self.name}:cooldown:{state.user_id}"

    def _audit_fields(self, state: FlowState, phone: str, enrolling: bool) -> dict[str, Any]:
        return {"user_id": state.user_id, "username": state.username, "channel": self.name,
                "client_id": state.client_id, "flow": state.flow, "phone": masked(phone, hide="*"),
                "purpose": "enroll" if enrolling else "challenge"}


def _with(state: FlowState, **data: Any) -> FlowState:
    return state.evolve(data={**state.data, **data})


def _context(state: FlowState) -> str:
    return f"flow:{state.id}:sms:phone"


def _blocked(blocked: Blocked, now: float) -> str:
    seconds = max(1, math.ceil(blocked.until - now))
    if blocked.reason == "cooldown":
        return f"Wait {seconds} seconds before asking for a new code."
    minutes = math.ceil(seconds / 60)
    return f"Too many codes were requested. Try again in {minutes} minute{'s' if minutes > 1 else ''}."
