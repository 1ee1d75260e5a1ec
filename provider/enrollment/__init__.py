"""Which second factors a user has registered: the EnrollmentStore interface, implemented by
``sql`` (SQLite or PostgreSQL) and ``keycloak`` (user attributes).

Registrations are durable data: they never live only in the state store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Enrollment:
    """One user's registration for one channel. Frozen: a snapshot; change it with
    ``dataclasses.replace`` and ``EnrollmentStore.save``."""

    user_id: str
    channel: str  # the operator's channel name from the settings ("totp", "authenticator")
    kind: str  # the channel type that reads it: "totp" | "sms" | ...
    secret: bytes | None  # e.g. the raw TOTP key
    phone: str | None  # E.164, for SMS
    created_at: float  # seconds since the epoch
    last_used_at: float | None = None


class EnrollmentStore(Protocol):
    """Where registrations live. At most one per (user_id, channel).

    ``secret`` and ``phone`` are encrypted at rest, each bound to its user and channel, so
    a database dump reveals neither and a value copied into another row does not decrypt;
    user id, channel, kind and times stay readable, for lookups and for administrators.

    Implementations are safe to call from several threads and processes at once. ``save``
    is an upsert, atomic per (user_id, channel): concurrent saves leave one of them whole,
    never a mix. ``touch`` never moves ``last_used_at`` backwards. Every method raises
    ServiceUnavailable when the storage cannot be reached, and DecryptionError (a
    configuration error) when a stored value cannot be opened with the configured keys.
    """

    def list(self, user_id: str) -> list[Enrollment]:
        """The user's registrations, most recently used first, then never-used ones, newest
        registration first: the first is the one to offer by default. [] when none."""

    def get(self, user_id: str, channel: str) -> Enrollment | None:
        """The registration for this channel, or None."""

    def save(self, enrollment: Enrollment) -> None:
        """Insert, or replace the whole registration for (user_id, channel)."""

    def touch(self, user_id: str, channel: str, when: float) -> None:
        """Record a successful use at ``when``; nothing happens for an unknown registration."""

    def delete(self, user_id: str, channel: str | None = None) -> int:
        """Remove one channel's registration, or all of the user's; how many were removed."""

    def ping(self) -> None:
        """Raise ServiceUnavailable unless the storage answers (health checks)."""
