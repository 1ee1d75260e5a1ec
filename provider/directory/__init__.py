"""Who the user is: the Directory interface, implemented by ``builtin`` (users in the SQL
database) and ``keycloak``. The login engine and the OIDC claims only see ``User``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class User:
    """One person, as every directory describes them. Frozen: a User is a snapshot, not a
    handle for changing the account."""

    id: str  # stable id (a UUID string for builtin); becomes the OIDC `sub`
    username: str
    email: str | None = None
    email_verified: bool = False
    name: str | None = None
    phone: str | None = None
    groups: tuple[str, ...] = ()
    disabled: bool = False


class Directory(Protocol):
    """Where usernames, passwords and profiles live.

    Implementations must be safe to call from several threads at once, and must not let a
    caller tell an unknown username from a wrong password (same error, similar time).
    """

    def authenticate(self, username: str, password: str) -> User:
        """The user, if the password is right.

        Raises InvalidCredentials (wrong password or unknown user: the same error),
        AccountDisabled (right password, disabled account) or ServiceUnavailable.
        """

    def get(self, user_id: str) -> User | None:
        """The user with this stable id (the `sub`), or None."""

    def find(self, username: str) -> User | None:
        """The user with this username, compared case-insensitively, or None."""

    def ping(self) -> None:
        """Check the directory can be reached; raises ServiceUnavailable."""
