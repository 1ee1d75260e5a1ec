"""The enroll step: a user registered for none of the listed channels registers one now.

Registration ends with a verified code, which counts as the factor proven in this login. An
enrolment policy can close self-enrolment after a date, so that whoever holds a password can
no longer register a device of their own.
"""
from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from provider.login.outcomes import Fail, Next, Render, Stay, Submitted
from provider.login.state import FlowState
from provider.login.steps import ChannelStepOptions, Step

CLOSED = "Two-step verification must be set up by your administrator. Contact your administrator."


class EnrolUntil(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    until: datetime.date


class EnrollOptions(ChannelStepOptions):
    allow: EnrolUntil | None = None  # None: always (the default)
    self_enrolling = True

    @field_validator("allow", mode="before")
    @classmethod
    def _always_or_until(cls, value: Any) -> Any:
        if value in (None, "always"):
            return None
        if isinstance(value, str):
            raise ValueError("expected 'always' or {until: YYYY-MM-DD}")
        return value


class EnrollStep(Step):
    type_name = "enroll"
    Options = EnrollOptions
    options: EnrollOptions

    def applies(self, state: FlowState, services) -> bool:
        if not super().applies(state, services):
            return False
        registered = {e.channel for e in services.enrollments.list(state.user_id)}
        return not registered & set(self.options.channels)

    def show(self, state: FlowState, services) -> Render:
        if self._closed(services):
            return Render("message", {"message": CLOSED})
        channel = self._chosen(state, services)
        if channel is None:
            options = [{"name": n, "label": services.channels[n].display_label} for n in self.options.channels]
            return Render("enroll_choose", {"options": options})
        return channel.enroll_show(state, services)

    def submit(self, state: FlowState, form: Mapping[str, str], services) -> Submitted:
        if self._closed(services):
            return Fail(CLOSED)
        if form.get("use") in self.options.channels:
            return Stay(state.evolve(data={"channel": form["use"]}))
        channel = self._chosen(state, services)
        if channel is None:
            return Stay(state, "Choose a method.")
        outcome = channel.enroll_submit(state, form, services)
        return Next(outcome.state.proved(channel.amr, channel.name)) if isinstance(outcome, Next) else outcome

    def _chosen(self, state: FlowState, services):
        name = state.data.get("channel") or (self.options.channels[0] if len(self.options.channels) == 1 else None)
        return services.channels[name] if name else None

    def _closed(self, services) -> bool:
        allow = self.options.allow
        if allow is None:
            return False
        today = datetime.datetime.fromtimestamp(services.clock.now(), datetime.UTC).date()
        return today > allow.until
