"""The ``memory://`` state store: records in this process, for the embedded single-instance
deployment and for tests. Several workers or instances each see their own store, so anything
that spreads requests over more than one process needs Redis."""
from __future__ import annotations

import threading

from provider.clock import Clock, SystemClock
from provider.storage.state import require_positive_ttl

# How often, in seconds of the store's clock, a write also sweeps out every expired record.
# Reads drop the expired record they meet; the sweep catches keys nobody asks for again.
SWEEP_INTERVAL = 60.0


class MemoryStateStore:
    """A dict of ``key -> (value, expires_at)`` behind one lock (see ``StateStore``)."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, float]] = {}
        self._sets: dict[str, dict[str, float]] = {}  # expiring sets: index -> member -> expires_at
        self._next_sweep = self._clock.now() + SWEEP_INTERVAL

    def __len__(self) -> int:
        """Records held, including expired ones not swept yet (to watch memory use)."""
        with self._lock:
            return len(self._entries)

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._live(key)

    def put(self, key: str, value: str, ttl: float) -> None:
        require_positive_ttl(ttl)
        with self._lock:
            self._write(key, value, ttl)

    def add(self, key: str, value: str, ttl: float) -> bool:
        require_positive_ttl(ttl)
        with self._lock:
            if self._live(key) is not None:
                return False
            self._write(key, value, ttl)
            return True

    def delete(self, key: str) -> bool:
        with self._lock:
            found = self._live(key) is not None
            self._entries.pop(key, None)
            return found

    def take(self, key: str) -> str | None:
        with self._lock:
            value = self._live(key)
            self._entries.pop(key, None)
            return value

    def swap(self, key: str, value: str, ttl: float) -> str | None:
        require_positive_ttl(ttl)
        with self._lock:
            previous = self._live(key)
            self._write(key, value, ttl)
            return previous

    def replace(self, key: str, expected: str, value: str, ttl: float) -> bool:
        require_positive_ttl(ttl)
        with self._lock:
            if self._live(key) != expected:
                return False
            self._write(key, value, ttl)
            return True

    def delete_if(self, key: str, expected: str) -> bool:
        with self._lock:
            if self._live(key) != expected:
                return False
            del self._entries[key]
            return True

    def incr(self, key: str, ttl: float) -> int:
        require_positive_ttl(ttl)
        with self._lock:
            current = self._live(key)
            if current is None:
                self._write(key, "1", ttl)
                return 1
            count = int(current) + 1
            self._entries[key] = (str(count), self._entries[key][1])
            return count

    def raise_to(self, key: str, value: int, ttl: float) -> bool:
        require_positive_ttl(ttl)
        with self._lock:
            current = self._live(key)
            if current is not None and int(current) >= value:
                return False
            self._write(key, str(value), ttl)
            return True

    def track(self, index: str, member: str, ttl: float) -> None:
        require_positive_ttl(ttl)
        with self._lock:
            now = self._clock.now()
            self._sets.setdefault(index, {})[member] = now + ttl
            if now >= self._next_sweep:
                self._sweep(now)

    def untrack(self, index: str, member: str) -> None:
        with self._lock:
            self._sets.get(index, {}).pop(member, None)

    def tracked(self, index: str) -> int:
        now = self._clock.now()
        with self._lock:
            return sum(1 for expires_at in self._sets.get(index, {}).values() if expires_at > now)

    def ping(self) -> None:
        """Always reachable: it is this process."""

    def _live(self, key: str) -> str | None:
        """The value if present and not expired; an expired record is dropped on the way."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at <= self._clock.now():
            del self._entries[key]
            return None
        return value

    def _write(self, key: str, value: str, ttl: float) -> None:
        now = self._clock.now()
        self._entries[key] = (value, now + ttl)
        if now >= self._next_sweep:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        """Drop every expired record, so keys written once and never read do not pile up."""
        expired = [key for key, (_, expires_at) in self._entries.items() if expires_at <= now]
        for key in expired:
            del self._entries[key]
        for index, members in list(self._sets.items()):
            live = {member: expires_at for member, expires_at in members.items() if expires_at > now}
            if live:
                self._sets[index] = live
            else:
                del self._sets[index]
        self._next_sweep = now + SWEEP_INTERVAL
