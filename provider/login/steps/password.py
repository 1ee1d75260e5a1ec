"""The password step: who is this? Checked against the directory."""
from __future__ import annotations

from collections.abc import Mapping

from provider.audit import audit
from provider.errors import (
    AccountDisabled,
    AccountLocked,
    AccountSetupIncomplete,
    InvalidCredentials,
    ServiceUnavailable,
)
from provider.login.outcomes import Next, Render, Stay, Submitted
from provider.login.services import Services
from provider.login.state import FlowState
from provider.login.steps import Step

MAX_FIELD = 1024


class PasswordStep(Step):
    type_name = "password"

    def show(self, state: FlowState, services: Services) -> Render:
        return Render("login", {"username": state.username or ""})

    def submit(self, state: FlowState, form: Mapping[str, str], services: Services) -> Submitted:
        username = form.get("username", "").strip()[:MAX_FIELD]
        password = form.get("password", "")
        state = state.evolve(username=username)
        if not username or not password:
            return Stay(state, "Enter your username and password.")
        try:
            user = services.directory.authenticate(username, password)
        except (InvalidCredentials, AccountDisabled, AccountLocked) as error:
            audit("login.failed", username=username, client_id=state.client_id, flow=state.flow,
                  ip=services.client_ip, outcome="failure", reason=error.code)
            return Stay(state, error.user_message, failed=True)
        except (ServiceUnavailable, AccountSetupIncomplete) as error:
            return Stay(state, error.user_message)
        return Next(state.evolve(user_id=user.id, username=user.username).proved("pwd"))
