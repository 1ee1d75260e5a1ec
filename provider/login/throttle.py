"""Brute-force throttling, shared by every instance through the state store.

Failed passwords and failed second factors count per user (by the username typed, so an
unknown user is counted exactly like a known one) and per client address. After `threshold`
consecutive failures a user waits `base_delay`, doubling with each further failure up to
`max_delay` (NIST SP 800-63B 5.2.2); during the wait even the right password is refused. A
completed login resets the user's count. An address with `ip_threshold` failures in
`ip_window` is refused until the window ends (password spraying across users).
"""
from __future__ import annotations

import math
import unicodedata
from typing import TYPE_CHECKING

from provider.clock import Clock
from provider.storage.state import StateStore

if TYPE_CHECKING:  # settings import the login steps; only the type is needed here
    from provider.settings import LockoutSettings

FAILURE_MEMORY = 24 * 3600  # consecutive failures are forgotten after a quiet day


class Throttle:
    def __init__(self, store: StateStore, clock: Clock, settings: LockoutSettings) -> None:
        self._store = store
        self._clock = clock
        self._settings = settings

    def wait(self, username: str | None, ip: str | None) -> float:
        """Seconds this user or address must still wait; 0 when they may try."""
        waits = [0.0]
        if username and self._settings.threshold:
            until = self._store.get(f"lock:{_key(username)}")
            if until is not None:
                waits.append(float(until) - self._clock.now())
        if ip and self._settings.ip_threshold:
            count = self._store.get(f"ipfail:{ip}")
            if count is not None and int(count) >= self._settings.ip_threshold:
                waits.append(float(self._settings.ip_window))
        return max(waits)

    def failed(self, username: str | None, ip: str | None) -> float:
        """Count a failure; returns the delay it starts (0 while under the threshold)."""
        if ip and self._settings.ip_threshold:
            self._store.incr(f"ipfail:{ip}", self._settings.ip_window)
        if not username or not self._settings.threshold:
            return 0.0
        key = _key(username)
        count = self._store.incr(f"fail:{key}", FAILURE_MEMORY)
        if count < self._settings.threshold:
            return 0.0
        s = self._settings
        delay = float(min(s.max_delay, s.base_delay * 2 ** min(count - s.threshold, 30)))
        self._store.put(f"lock:{key}", str(self._clock.now() + delay), delay)
        return delay

    def succeeded(self, username: str | None) -> None:
        if username:
            key = _key(username)
            self._store.delete(f"fail:{key}")
            self._store.delete(f"lock:{key}")


def message(wait: float) -> str:
    minutes = max(1, math.ceil(wait / 60))
    return f"Too many failed attempts. Try again in {minutes} minute{'s' if minutes > 1 else ''}."


def _key(username: str) -> str:
    # The directory's own notion of "the same username" (NFKC + casefold), bounded in size.
    return unicodedata.normalize("NFKC", username).casefold()[:256]
