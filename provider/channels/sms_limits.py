"""Limits on sending SMS, against SMS pumping (toll fraud) and plain annoyance: a cooldown
between two sends to one user, and quotas of sends per hour per user, per number and per client
address.

Everything lives in the shared state store, so the limits hold across instances. Quotas are
sliding windows: each key holds the times of its recent sends (at most `limit` of them), updated
by compare-and-set, so the answer to "when may I try again?" is exact. Times come from the
injected clock, so the store's own expiry (Redis keeps its own time) only cleans up.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from provider.clock import Clock
from provider.errors import ServiceUnavailable
from provider.storage.state import StateStore

WINDOW = 3600.0  # quotas are per hour
ATTEMPTS = 16  # compare-and-set rounds before giving up under contention


@dataclass(frozen=True)
class Blocked:
    """No send now. `until` is when one will be allowed; `limit` names what was hit."""

    until: float
    reason: Literal["cooldown", "quota"]
    limit: str = ""


@dataclass(frozen=True)
class Ticket:
    """A send allowed at `at`: the quota keys it counted in and the cooldown it started (to
    give back if the send surely did not happen)."""

    at: float
    quota_keys: tuple[str, ...]
    cooldown: tuple[str, str] | None = None  # (key, value written)


class SendLimiter:
    def __init__(self, store: StateStore, clock: Clock, cooldown: int) -> None:
        self._store, self._clock, self.cooldown = store, clock, cooldown

    def wait(self, cooldown_key: str) -> float:
        """Seconds until the cooldown of this key has passed (0 when it has)."""
        raw = self._store.get(cooldown_key)
        return max(0.0, float(raw) - self._clock.now()) if raw else 0.0

    def acquire(self, cooldown_key: str, quotas: Mapping[str, tuple[str, int]]) -> Ticket | Blocked:
        """Start the cooldown and count one send in every quota (name -> (key, limit); a limit
        of 0 is no limit), or say why not and until when. Nothing is counted when blocked."""
        now = self._clock.now()
        if (until := now + self.wait(cooldown_key)) > now:
            return Blocked(until, "cooldown")
        active = {name: spec for name, spec in quotas.items() if spec[1] > 0}
        for name, (key, limit) in active.items():
            if (until := self._full_until(key, limit, now)) is not None:
                return Blocked(until, "quota", name)
        started = self._start_cooldown(cooldown_key, now)
        if isinstance(started, float):
            return Blocked(started, "cooldown")  # another request started it just now
        taken: list[str] = []
        for name, (key, limit) in active.items():
            if (until := self._count(key, limit, now)) is not None:  # filled up in the meantime
                self.give_back(Ticket(now, tuple(taken), started))
                return Blocked(until, "quota", name)
            taken.append(key)
        return Ticket(now, tuple(taken), started)

    def give_back(self, ticket: Ticket) -> None:
        """Undo a send that surely did not happen (the gateway refused it): uncount it, and end
        the cooldown it started unless a later send has started another."""
        for key in ticket.quota_keys:
            self._update(key, lambda times, at=ticket.at: _without(times, at))
        if ticket.cooldown:
            key, value = ticket.cooldown
            self._store.replace(key, value, repr(ticket.at), 1)  # a cooldown that has passed

    # -- internals ---------------------------------------------------------------------

    def _full_until(self, key: str, limit: int, now: float) -> float | None:
        times = _recent(self._store.get(key), now)
        return min(times) + WINDOW if len(times) >= limit else None

    def _count(self, key: str, limit: int, now: float) -> float | None:
        result: list[float] = []

        def add(times: list[float]) -> list[float] | None:
            times = [t for t in times if t > now - WINDOW]
            if len(times) >= limit:
                result.append(min(times) + WINDOW)
                return None
            return [*times, now]

        self._update(key, add)
        return result[0] if result else None

    def _start_cooldown(self, key: str, now: float) -> tuple[str, str] | float | None:
        """(key, value written) when started; the end of another's cooldown if one runs."""
        if self.cooldown <= 0:
            return None
        for _ in range(ATTEMPTS):
            raw = self._store.get(key)
            if raw is not None and float(raw) > now:
                return float(raw)
            value = repr(now + self.cooldown)
            if self._store.add(key, value, self.cooldown) if raw is None else \
                    self._store.replace(key, raw, value, self.cooldown):
                return key, value
        raise ServiceUnavailable(f"SMS cooldown {key}: too much contention")

    def _update(self, key: str, change) -> None:
        """Compare-and-set `change(times)` into the key; `change` returning None leaves it alone."""
        for _ in range(ATTEMPTS):
            raw = self._store.get(key)
            times = json.loads(raw) if raw else []
            new = change(times)
            if new is None:
                return
            value = json.dumps(new)
            if self._store.add(key, value, WINDOW) if raw is None else self._store.replace(key, raw, value, WINDOW):
                return
        raise ServiceUnavailable(f"SMS quota {key}: too much contention")


def _recent(raw: str | None, now: float) -> list[float]:
    return [t for t in (json.loads(raw) if raw else []) if t > now - WINDOW]


def _without(times: list[float], at: float) -> list[float] | None:
    if at not in times:
        return None
    times = list(times)
    times.remove(at)
    return times
