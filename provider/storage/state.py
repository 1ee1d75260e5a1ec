"""The state store: short-lived, TTL'd records (flow states, SSO sessions, authorization codes,
tokens, SMS codes, rate-limit counters, used TOTP steps) behind one small interface, so the same
login code runs embedded in one process (``memory://``) or as several instances sharing Redis."""
from __future__ import annotations

from typing import Protocol
from urllib.parse import urlsplit

from provider.clock import Clock
from provider.errors import ConfigurationError

ACCEPTED_SCHEMES = ("memory", "redis", "rediss", "redis+sentinel")
DEFAULT_TIMEOUT = 2.0
DEFAULT_POOL_SIZE = 16


class StateStore(Protocol):
    """Ephemeral key/value records that expire, shared by every request of the provider.

    Keys and values are strings (callers serialise JSON themselves); every write takes a
    ``ttl`` in seconds, which must be greater than zero: nothing in a state store lives forever.

    Concurrency contract. Requests for the same user, flow or code can arrive at the same time,
    on several threads or several instances. Each method is atomic on its one key: no caller
    ever observes half of an operation, and of concurrent writers exactly one wins. Nothing is
    atomic across keys or across calls, so a read-modify-write must not be written as
    ``get`` then ``put``: use ``take`` or ``swap`` to consume something once, ``add`` to
    create something once, ``replace`` (compare-and-set on a version in the value) to update
    it, ``incr`` for counters and ``raise_to`` for monotonic high-water marks (``delete_if`` to
consume a record whose value must still be the one read). ``put`` is
    last-writer-wins.

    Expiry is decided by the store (an injected clock for memory, the server for Redis) and
    is approximate to a few milliseconds. An expired record is indistinguishable from one that
    never existed, and a store may lose everything at any time (a Redis restart): callers treat
    "absent" as "expired, start again", so durable data never lives only here.

    Implementations are safe to share between threads. When the store cannot be reached, any
    method raises :class:`provider.errors.ServiceUnavailable` within its timeout; nothing is
    retried behind the caller's back, because a retried ``take`` or ``incr`` could apply twice.
    """

    def get(self, key: str) -> str | None:
        """The current value, or None if absent or expired."""

    def put(self, key: str, value: str, ttl: float) -> None:
        """Set the value and its expiry, whatever was there before."""

    def add(self, key: str, value: str, ttl: float) -> bool:
        """Set the value only if the key is absent; True if this call created it."""

    def delete(self, key: str) -> bool:
        """Remove the key; True if something was there."""

    def take(self, key: str) -> str | None:
        """Get and delete in one step, so a single-use code is accepted at most once."""

    def swap(self, key: str, value: str, ttl: float) -> str | None:
        """Set the value and return the previous one (None if absent), in one step.

        Used to replace an authorization code by a 'used' tombstone: the one caller that gets
        the code back redeems it, and a later replay finds the tombstone (RFC 6749 §4.1.2).
        """

    def replace(self, key: str, expected: str, value: str, ttl: float) -> bool:
        """Compare-and-set: store ``value`` only if the current value equals ``expected``."""

    def delete_if(self, key: str, expected: str) -> bool:
        """Compare-and-delete: remove the key only if its value equals ``expected``; True if
        this call removed it. Consumes a record exactly once without leaving a tombstone."""

    def incr(self, key: str, ttl: float) -> int:
        """Add one to a counter and return the new count.

        The expiry is set when the counter is created and not extended by later increments,
        so a rate limit counts in fixed windows instead of locking out a persistent caller
        forever.
        """

    def raise_to(self, key: str, value: int, ttl: float) -> bool:
        """Store ``max(current, value)``; True only if ``value`` was strictly greater (or absent).

        TOTP replay protection: the last accepted time step is raised, and a passcode for the
        same or an earlier step is refused (RFC 6238 §5.2). When False, nothing changes,
        including the expiry.
        """

    def track(self, index: str, member: str, ttl: float) -> None:
        """Add ``member`` to the expiring set ``index`` for ``ttl`` seconds (again: renew it).

        Each member expires on its own; the set exists to be counted (active flows), so it
        costs one small record per member and no scan of the keyspace.
        """

    def untrack(self, index: str, member: str) -> None:
        """Remove ``member`` from the expiring set ``index`` (absent: nothing happens)."""

    def tracked(self, index: str) -> int:
        """How many members of the expiring set ``index`` have not expired."""

    def ping(self) -> None:
        """Return if the store answers; raise ServiceUnavailable if not (health checks)."""


def open_state_store(
    url: str,
    clock: Clock | None = None,
    prefix: str = "twostep:",
    *,
    timeout: float = DEFAULT_TIMEOUT,
    pool_size: int = DEFAULT_POOL_SIZE,
) -> StateStore:
    """The store the configured URL names.

    ``memory://`` keeps records in this process (a single instance; its own namespace, so
    ``prefix`` does not apply); ``redis://``, ``rediss://`` (TLS) and ``redis+sentinel://``
    share them between instances, every key written as ``prefix + key``, at most ``pool_size``
    connections per process and every call bounded by ``timeout`` seconds.
    ``clock`` decides expiry for the memory store only; Redis expires keys by its own clock.
    """
    scheme = urlsplit(url).scheme.lower()
    # Imported here: each implementation imports require_positive_ttl from this module.
    if scheme == "memory":
        from provider.storage.memory import MemoryStateStore

        return MemoryStateStore(clock)
    if scheme in ("redis", "rediss", "redis+sentinel"):
        from provider.storage.redis import RedisStateStore

        return RedisStateStore.from_url(url, prefix=prefix, timeout=timeout, pool_size=pool_size)
    accepted = ", ".join(f"{name}://" for name in ACCEPTED_SCHEMES)
    raise ConfigurationError(
        f"state store URL scheme {scheme + '://' if scheme else '(none)'} is not supported; "
        f"use one of {accepted}"
    )


def require_positive_ttl(ttl: float) -> None:
    """Refuse a TTL that would make a record immortal or expire it before it is written."""
    if not ttl > 0:
        raise ValueError(f"ttl must be greater than 0 seconds, got {ttl!r}")
