"""The login engine: walks a flow's steps over a FlowState. Knows nothing of HTTP.

A GET asks `current()` what to show; a POST goes to `submit()`, which accepts a form only
for the step and version the page was rendered for: a stale, replayed or crafted POST
changes nothing and the user is shown the current step again.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import replace

from provider.audit import audit
from provider.clock import Clock
from provider.login.flows import Flow
from provider.login.outcomes import Done, Fail, Next, Render, Stay
from provider.login.services import Services
from provider.login.state import FlowNotFound, FlowState, FlowStore
from provider.login.throttle import message as throttled_message


def browser_digest(browser_token: str) -> str:
    return hashlib.sha256(browser_token.encode()).hexdigest()


class LoginEngine:
    def __init__(
        self, flows: Mapping[str, Flow], store: FlowStore, services: Services, clock: Clock, ttl: int
    ) -> None:
        self._flows = flows
        self._store = store
        self._services = services
        self._clock = clock
        self._ttl = ttl

    def start(self, *, flow: str, client_id: str, request: dict[str, str], browser_token: str) -> FlowState:
        hint = request.get("login_hint", "")[:255] or None
        return self._store.create(
            flow=flow,
            client_id=client_id,
            browser=browser_digest(browser_token),
            request=request,
            expires_at=self._clock.now() + self._ttl,
            username=hint,
        )

    def load(self, flow_id: str, browser_token: str) -> FlowState:
        """The flow, if it exists and belongs to this browser (else FlowNotFound)."""
        state = self._store.load(flow_id)
        if not hmac.compare_digest(state.browser, browser_digest(browser_token)):
            raise FlowNotFound(flow_id)
        return state

    def current(self, state: FlowState, client_ip: str | None = None) -> Render:
        """What to show for this flow now: its current step, with the last error if any."""
        step = self._flows[state.flow].steps[state.step]
        screen = step.show(state, self._for(client_ip))
        if screen.state is not None and screen.state != state:
            if not self._store.save(state, screen.state):
                return self.current(self._store.load(state.id), client_ip)  # changed under us: show what won
            state = self._store.load(state.id)
        return Render(screen.screen, {**screen.values, "error": state.error, "version": state.version})

    def submit(self, state: FlowState, version: str, form: Mapping[str, str],
               client_ip: str | None = None) -> Done | Fail | None:
        """Submit the current step. None means: show the current step again."""
        if version != str(state.version):
            return None  # not the page of the current step: back button, double submit, crafted POST
        # One submission of a flow at a time: a loser's "wrong" must not overwrite the state a
        # racing winner is about to complete (compare-and-set alone would let both fail).
        if not self._store.claim(state.id):
            return None
        try:
            if self._store.load(state.id) != state:
                return None  # moved on while this request waited
            return self._submit(state, form, client_ip)
        except FlowNotFound:
            return None
        finally:
            self._store.release(state.id)

    def _submit(self, state: FlowState, form: Mapping[str, str], client_ip: str | None) -> Done | Fail | None:
        services = self._for(client_ip)
        throttle = services.throttle
        if wait := throttle.wait(state.username, client_ip):
            return self._stay(state, Stay(state, throttled_message(wait)))
        step = self._flows[state.flow].steps[state.step]
        outcome = step.submit(state, form, services)
        if isinstance(outcome, Next):
            for channel in outcome.state.factors[len(state.factors):]:
                audit("factor.verified", user_id=outcome.state.user_id, username=outcome.state.username,
                      channel=channel, client_id=state.client_id, flow=state.flow, ip=client_ip, outcome="success")
        typed_now = isinstance(outcome, Stay | Next) and outcome.state.username != state.username
        if typed_now and (wait := throttle.wait(outcome.state.username, client_ip)):
            # The username was only just typed: refused even when right, until the wait is over.
            # (An unchanged username was checked above: no second round trip on every step.)
            return self._stay(state, Stay(outcome.state, throttled_message(wait)))
        if isinstance(outcome, Fail) or (isinstance(outcome, Stay) and outcome.failed):
            failed_as = outcome.state.username if isinstance(outcome, Stay) else state.username
            if delay := throttle.failed(failed_as, client_ip):
                audit("account.throttled", username=failed_as, flow=state.flow, client_id=state.client_id,
                      ip=client_ip, reason=f"delay {int(delay)} s")
                if isinstance(outcome, Stay):
                    outcome = Stay(outcome.state, throttled_message(delay))
        if isinstance(outcome, Fail):
            self._store.finish(state)
            return outcome
        if isinstance(outcome, Stay):
            return self._stay(state, outcome)
        return self._advance(state, outcome.state, services)

    def _stay(self, old: FlowState, outcome: Stay) -> None:
        self._store.save(old, outcome.state.evolve(error=outcome.error))
        return None

    def _for(self, client_ip: str | None) -> Services:
        return replace(self._services, client_ip=client_ip) if client_ip else self._services

    def _advance(self, old: FlowState, state: FlowState, services: Services) -> Done | None:
        steps = self._flows[state.flow].steps
        index = state.step + 1
        while index < len(steps) and not steps[index].applies(state, services):
            index += 1
        state = state.evolve(step=index, error=None, data={})
        if index < len(steps):
            self._store.save(old, state)
            return None
        # Consume the flow: of two requests racing to complete it, only one gets Done.
        if not self._store.finish(old):
            return None
        services.throttle.succeeded(state.username)
        return Done(state)
