"""Password hashing with argon2id.

The stored hash names its own algorithm and parameters (``$argon2id$v=19$m=...,t=...,p=...``),
so the cost can be raised later: a hash made with older parameters still verifies, and
``needs_rehash`` says when to replace it.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from functools import cached_property

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HashParameters:
    """argon2id cost. The defaults are OWASP's minimum recommendation for argon2id
    (19 MiB of memory, 2 iterations, 1 lane); tests pass cheaper ones to stay fast."""

    memory_cost: int = 19456  # KiB
    time_cost: int = 2
    parallelism: int = 1


class PasswordHasher:
    """Hashes and verifies passwords; verification time does not depend on the password."""

    def __init__(self, parameters: HashParameters = HashParameters()) -> None:
        self.parameters = parameters
        self._argon2 = argon2.PasswordHasher(
            time_cost=parameters.time_cost,
            memory_cost=parameters.memory_cost,
            parallelism=parameters.parallelism,
            type=argon2.Type.ID,
        )

    def hash(self, password: str) -> str:
        return self._argon2.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """True if the password matches. A corrupt stored hash counts as a mismatch, so one
        damaged row locks out one user instead of breaking the login page."""
        try:
            return self._argon2.verify(password_hash, password)
        except VerifyMismatchError:
            return False
        except (VerificationError, InvalidHashError):
            log.warning("a stored password hash is not a valid argon2 hash")
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True if the hash was made with other parameters than ours (e.g. older, cheaper)."""
        return self._argon2.check_needs_rehash(password_hash)

    def dummy_verify(self, password: str) -> None:
        """Spend the time a real verification costs, for a user that does not exist, so the
        response time does not tell an attacker which usernames are real."""
        self.verify(self._dummy_hash, password)

    @cached_property
    def _dummy_hash(self) -> str:
        # Made on first use, not at start-up, so commands that never log in stay quick.
        return self.hash(secrets.token_urlsafe(32))
