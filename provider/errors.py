"""One error hierarchy. Each error has a machine code (for logs and audit) and a sentence for
the user; the detail that helps an operator goes to the log, never to the page."""
from __future__ import annotations


class TwostepError(Exception):
    code = "error"
    user_message = "Something went wrong. Please try again."

    def __init__(self, detail: str = "", *, user_message: str | None = None) -> None:
        super().__init__(detail or self.code)
        self.detail = detail
        if user_message is not None:
            self.user_message = user_message


class ConfigurationError(TwostepError):
    """The settings are wrong; an operator must fix them."""

    code = "configuration"
    user_message = "Sign-in is not configured correctly. Please contact your administrator."


class ServiceUnavailable(TwostepError):
    """A dependency (state store, database, directory) cannot be reached right now."""

    code = "unavailable"
    user_message = "Sign-in is temporarily unavailable, try again shortly."


class InvalidCredentials(TwostepError):
    """Wrong password or unknown user: one message for both, so usernames cannot be probed."""

    code = "invalid_credentials"
    user_message = "Incorrect username or password."


class AccountDisabled(TwostepError):
    code = "account_disabled"
    user_message = "Your account is disabled. Please contact your administrator."


class AccountLocked(TwostepError):
    """The directory locked the account after too many failed attempts (Keycloak's brute-force
    detection). Said only when the directory itself reports the lock."""

    code = "account_locked"
    user_message = ("Your account is temporarily locked after too many failed sign-in attempts."
                    " Try again later, or contact your administrator.")


class AccountSetupIncomplete(TwostepError):
    """Right password, but the directory wants something done first (Keycloak's required
    actions: update the password, verify the e-mail address, accept the terms, ...)."""

    code = "account_setup_incomplete"
    user_message = "Finish setting up your account in Keycloak, then sign in here again."
