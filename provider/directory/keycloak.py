"""The Keycloak directory: users, passwords and groups stay in an existing Keycloak realm;
twostep adds the second factors.

- The password is checked at the realm's token endpoint (password grant, as twostep's
  confidential client). The session that check opens in Keycloak is ended at once.
- Profiles come from the admin REST API, as that client's service account: the `sub` is the
  Keycloak user id (what Keycloak-integrated applications already know); `name` is first and
  last name; the phone number is the `phoneNumber` attribute (what Keycloak's own `phone`
  scope reads); groups are group paths without the leading slash (`staff`, `ops/on-call`).

Two differences from the built-in directory come from Keycloak itself: it answers "Account
disabled" before it checks the password, so a disabled account is reported as disabled
whatever password was typed; and when its brute-force detection has locked an account it
answers like a wrong password, which is then told apart through the admin API (AccountLocked).
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import unicodedata
from typing import Any

from provider.directory import User
from provider.directory.keycloak_api import WRONG_CREDENTIALS, KeycloakApi, segment
from provider.errors import AccountLocked, ConfigurationError, InvalidCredentials, ServiceUnavailable, TwostepError

log = logging.getLogger(__name__)

MAX_USERNAME_LENGTH = 255  # Keycloak's own limit (user profile default validator)
MAX_INPUT_LENGTH = 1024
MAX_GROUPS = 1000


class KeycloakDirectory:
    """Directory over one Keycloak realm. Thread-safe, as its KeycloakApi is."""

    def __init__(self, api: KeycloakApi) -> None:
        self._api = api

    def __repr__(self) -> str:
        return f"KeycloakDirectory({self._api!r})"

    def authenticate(self, username: str, password: str) -> User:
        if not (_plausible(username, MAX_USERNAME_LENGTH) and _plausible(password, MAX_INPUT_LENGTH)):
            raise InvalidCredentials(WRONG_CREDENTIALS)
        username = _normalized(username)
        try:
            granted = self._api.password_grant(username, password)
        except InvalidCredentials:
            self._raise_if_locked(username)
            raise
        try:
            user_id = _subject(granted.get("access_token"))
        finally:
            self._api.logout(granted.get("refresh_token"))
        user = self.get(user_id) if user_id else self.find(username)
        if user is None:
            raise ServiceUnavailable(f"{self._api.description} accepted the password of {username!r},"
                                     " but its admin API does not show that user")
        return user

    def get(self, user_id: str) -> User | None:
        if not _plausible(user_id, MAX_USERNAME_LENGTH):
            return None
        representation = self._api.admin_get(f"/users/{segment(user_id)}")
        return None if representation is None else self._user(representation)

    def find(self, username: str) -> User | None:
        if not _plausible(username, MAX_USERNAME_LENGTH):
            return None
        representation = self._by_username(_normalized(username))
        return None if representation is None else self._user(representation)

    def ping(self) -> None:
        if self._api.admin_get("/users/profile") is None:
            raise ConfigurationError(f"{self._api.description}: no such realm (or Keycloak older than 24)")

    # -- helpers -----------------------------------------------------------------------------

    def _by_username(self, username: str) -> dict[str, Any] | None:
        found = self._api.admin_get("/users", {"username": username, "exact": "true"})
        wanted = username.lower()  # Keycloak keeps usernames in lower case
        return next((u for u in _list(found) if str(u.get("username", "")).lower() == wanted), None)

    def _by_username_or_email(self, login: str) -> dict[str, Any] | None:
        """Whom Keycloak looked up for this login: by username, or by e-mail address when the
        realm allows logging in with it."""
        user = self._by_username(login)
        if user is None and "@" in login:
            found = _list(self._api.admin_get("/users", {"email": login, "exact": "true"}))
            user = found[0] if len(found) == 1 else None
        return user

    def _raise_if_locked(self, login: str) -> None:
        """Keycloak reports a brute-force lock as wrong credentials; its admin API knows better."""
        try:
            user = self._by_username_or_email(login)
            status = self._api.admin_get(f"/attack-detection/brute-force/users/{segment(user['id'])}") if user else None
        except TwostepError as error:
            log.warning("cannot ask Keycloak whether %r is locked: %s", login, error.detail)
            return
        if isinstance(status, dict) and status.get("disabled") is True:
            raise AccountLocked(f"Keycloak's brute-force detection locked user {user['id']}"
                                f" after {status.get('numFailures')} failures")

    def _user(self, representation: Any) -> User:
        if not (isinstance(representation, dict) and isinstance(representation.get("id"), str)
                and isinstance(representation.get("username"), str)):
            raise ServiceUnavailable(f"{self._api.description} answered with a user without id or username")
        groups = self._api.admin_get(f"/users/{segment(representation['id'])}/groups",
                                     {"briefRepresentation": "true", "max": str(MAX_GROUPS)})
        return _user(representation, tuple(_group_name(group) for group in _list(groups)))


def _user(representation: dict[str, Any], groups: tuple[str, ...]) -> User:
    attributes = representation.get("attributes")
    phone = attributes.get("phoneNumber") if isinstance(attributes, dict) else None
    names = (representation.get("firstName"), representation.get("lastName"))
    return User(
        id=representation["id"],
        username=representation["username"],
        email=representation.get("email") or None,
        email_verified=representation.get("emailVerified") is True,
        name=" ".join(name for name in names if isinstance(name, str) and name) or None,
        phone=phone[0] if isinstance(phone, list) and phone and isinstance(phone[0], str) else None,
        groups=tuple(group for group in groups if group),
        disabled=representation.get("enabled") is False,
    )


def _group_name(group: Any) -> str:
    """A group path without the leading slash: unambiguous for subgroups, the plain name for
    top-level groups."""
    if not isinstance(group, dict):
        return ""
    path = group.get("path")
    return path.removeprefix("/") if isinstance(path, str) and path else str(group.get("name") or "")


def _subject(access_token: Any) -> str | None:
    """The `sub` of the access token Keycloak just returned. Its signature is not checked: it
    came straight from the token endpoint over the connection twostep opened (as OIDC Core
    3.1.3.7 allows for ID tokens), and it is only used to look the user up."""
    if not isinstance(access_token, str) or access_token.count(".") != 2:
        return None
    payload = access_token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return subject if isinstance(subject, str) and subject else None


def _list(answer: Any) -> list[dict[str, Any]]:
    return [item for item in answer if isinstance(item, dict)] if isinstance(answer, list) else []


def _normalized(username: str) -> str:
    """NFKC, so "ａｌｉｃｅ" is "alice" as in the built-in directory; Keycloak lower-cases itself
    (and its default user profile refuses usernames that NFKC would change)."""
    return unicodedata.normalize("NFKC", username)


def _plausible(text: str, limit: int) -> bool:
    """Junk (empty, NUL, lone surrogates, absurd length) never reaches Keycloak."""
    if not text or len(text) > limit or "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
