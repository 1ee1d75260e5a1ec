"""The challenge step: prove a factor the user is registered for (or, for an
administrator-managed channel such as RSA, the factor every user is taken to have).

Skipped when a listed channel's factor was already proven in this login (by enrolment). With
several registrations, the most recently used comes first, with a way to use another.
"""
from __future__ import annotations

from collections.abc import Mapping

from provider.login.outcomes import Fail, Next, Render, Stay, Submitted
from provider.login.state import FlowState
from provider.login.steps import ChannelStepOptions, Step

NOT_SET_UP = "Two-factor authentication is not set up for your account. Contact your administrator."


class ChallengeStep(Step):
    type_name = "challenge"
    Options = ChannelStepOptions
    options: ChannelStepOptions

    def applies(self, state: FlowState, services) -> bool:
        return super().applies(state, services) and not set(state.factors) & set(self.options.channels)

    def show(self, state: FlowState, services) -> Render:
        registrations = self._registrations(state, services)
        if not registrations:
            return Render("message", {"message": NOT_SET_UP})
        current = self._current(state, registrations)
        screen = services.channels[current.channel].challenge_show(state, current, services)
        others = [{"name": e.channel, "label": services.channels[e.channel].display_label}
                  for e in registrations if e.channel != current.channel]
        return Render(screen.screen, {**screen.values, "others": others}, state=screen.state)

    def submit(self, state: FlowState, form: Mapping[str, str], services) -> Submitted:
        registrations = self._registrations(state, services)
        if not registrations:
            return Fail(NOT_SET_UP)
        if form.get("use") in {e.channel for e in registrations}:
            return Stay(state.evolve(data={"channel": form["use"]}))
        current = self._current(state, registrations)
        channel = services.channels[current.channel]
        outcome = channel.challenge_submit(state, form, current, services)
        return Next(outcome.state.proved(channel.amr, channel.name)) if isinstance(outcome, Next) else outcome

    def _registrations(self, state: FlowState, services) -> list:
        """The user's registrations for this step's channels, most recently used first; then
        those of administrator-managed channels (RSA), which every user has."""
        stored = [e for e in services.enrollments.list(state.user_id) if e.channel in self.options.channels]
        managed = [services.channels[name].registration_for(state.user_id, services)
                   for name in self.options.channels if not services.channels[name].self_enrollment]
        return stored + [e for e in managed if e is not None]

    @staticmethod
    def _current(state: FlowState, registrations: list):
        chosen = state.data.get("channel")
        return next((e for e in registrations if e.channel == chosen), registrations[0])
