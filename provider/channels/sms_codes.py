"""One-time SMS codes, kept in the state store as a keyed hash only.

A code belongs to one scope (a login flow and a channel) and one number: the hash covers
both, so a code sent to a number that was then edited proves nothing. Each scope holds at
most one valid code; a new one replaces the previous, whose hash is kept only to tell the user
"that code was replaced" instead of "wrong". The hash is an HMAC under a
random key made for that code and sealed with the configured encryption key, so a copy of the
state store is not enough to try the million six-digit codes offline.

Wrong guesses are counted with the store's atomic ``incr`` before the comparison, so parallel
requests cannot try more than ``max_attempts`` codes; the code is used up by compare-and-set,
so of two requests submitting it at once exactly one succeeds. Expiry is decided by the
injected clock (the store's TTL only cleans up).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Literal

from provider.clock import Clock
from provider.errors import ConfigurationError
from provider.storage.encryption import Encryptor
from provider.storage.state import StateStore

Check = Literal["ok", "malformed", "wrong", "replaced", "expired", "exhausted"]
USED = "used"
KEY_BYTES = 32
HISTORY = 4  # replaced codes remembered, to tell the user "use the latest SMS" rather than "wrong"


@dataclass(frozen=True)
class Verdict:
    result: Check
    tries_left: int = 0

    @property
    def ok(self) -> bool:
        return self.result == "ok"


class CodeBook:
    def __init__(self, store: StateStore, encryptor: Encryptor | None, clock: Clock, *, length: int, ttl: int,
                 max_attempts: int) -> None:
        if encryptor is None:
            raise ConfigurationError("SMS codes need an encryption_key in the settings")
        self._store, self._encryptor, self._clock = store, encryptor, clock
        self.length, self.ttl, self.max_attempts = length, ttl, max_attempts

    def new_code(self) -> str:
        """Uniformly random digits from the system's CSPRNG (leading zeros included)."""
        return "".join(secrets.choice("0123456789") for _ in range(self.length))

    def remember(self, scope: str, phone: str, code: str) -> None:
        """Make `code` the one valid code of the scope, for `phone`, for `ttl` seconds."""
        key = secrets.token_bytes(KEY_BYTES)
        record = {"id": secrets.token_urlsafe(9), "key": self._encryptor.encrypt(key, _context(scope)),
                  "mac": _mac(key, scope, phone, code), "expires": self._clock.now() + self.ttl,
                  "older": self._history(scope)}
        self._store.put(_code_key(scope), json.dumps(record), self.ttl + 60)

    def void(self, scope: str) -> None:
        """No code of the scope is valid any more (a new one is being sent); the replaced ones
        are still recognised, to say so."""
        record = {"id": secrets.token_urlsafe(9), "older": self._history(scope)}
        self._store.put(_code_key(scope), json.dumps(record), self.ttl + 60)

    def forget(self, scope: str) -> None:
        self._store.delete(_code_key(scope))

    def pending(self, scope: str) -> bool:
        """Is there a code of this scope that can still be used?"""
        return self._record(scope) is not None

    def check(self, scope: str, phone: str, typed: str) -> Verdict:
        digits = "".join(typed.split())
        if len(digits) != self.length or not (digits.isascii() and digits.isdigit()):
            return Verdict("malformed")  # cannot be the code: not counted as a guess
        found = self._record(scope)
        if found is None:
            return Verdict("expired")
        raw, record = found
        tries = self._store.incr(f"sms:tries:{scope}:{record['id']}", self.ttl + 60)
        if tries > self.max_attempts:
            self.forget(scope)
            return Verdict("exhausted")
        if self._matches(scope, phone, digits, record["key"], record["mac"]):
            used = self._store.replace(_code_key(scope), raw, USED, self.ttl + 60)
            return Verdict("ok") if used else Verdict("expired")  # another request used it first
        if tries >= self.max_attempts:
            self.forget(scope)
            return Verdict("exhausted")
        replaced = any(self._matches(scope, phone, digits, key, mac) for key, mac in record["older"])
        return Verdict("replaced" if replaced else "wrong", tries_left=self.max_attempts - tries)

    def _matches(self, scope: str, phone: str, digits: str, sealed_key: str, mac: str) -> bool:
        key = self._encryptor.decrypt(sealed_key, _context(scope))
        return hmac.compare_digest(_mac(key, scope, phone, digits), mac)

    def _record(self, scope: str) -> tuple[str, dict] | None:
        """The scope's usable code record (raw and parsed), or None."""
        raw = self._store.get(_code_key(scope))
        if raw is None or raw == USED:
            return None
        record = json.loads(raw)
        usable = "mac" in record and record["expires"] > self._clock.now()
        return (raw, record) if usable else None

    def _history(self, scope: str) -> list[list[str]]:
        raw = self._store.get(_code_key(scope))
        if raw is None or raw == USED:
            return []
        record = json.loads(raw)
        current = [[record["key"], record["mac"]]] if "mac" in record else []
        return (record.get("older", []) + current)[-HISTORY:]


def _mac(key: bytes, scope: str, phone: str, code: str) -> str:
    message = "\n".join((scope, phone, code)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _code_key(scope: str) -> str:
    return f"sms:code:{scope}"


def _context(scope: str) -> str:
    return f"sms:code:{scope}"
