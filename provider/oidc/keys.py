"""Signing keys: a JWK set in a file (mode 0600), created on first start.

The newest key signs; older keys stay published in /jwks until removed from the file, so
tokens signed before a rotation still verify (`twostep keys rotate`).
"""
from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

ALGORITHM = "RS256"


class SigningKeys:
    def __init__(self, keys: list[RSAKey]) -> None:
        if not keys:
            raise ValueError("a key set needs at least one key")
        self._keys = keys
        self._set = KeySet(keys)

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKeys:
        if not path.exists():
            _create(path, [_new_key()])
        return cls.load(path)

    @classmethod
    def load(cls, path: Path) -> SigningKeys:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls([RSAKey.import_key(item) for item in data["keys"]])

    @property
    def current(self) -> RSAKey:
        return self._keys[-1]

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False) for key in self._keys]}

    def sign(self, claims: dict[str, Any], typ: str = "JWT") -> str:
        header = {"alg": ALGORITHM, "kid": self.current.kid, "typ": typ}
        return jwt.encode(header, claims, self.current, algorithms=[ALGORITHM])

    def verify(self, token: str) -> jwt.Token:
        """Signature only; the caller checks the claims it cares about. Raises on any fault."""
        return jwt.decode(token, self._set, algorithms=[ALGORITHM])


def rotate(path: Path) -> str:
    """Add a new signing key to the file; returns its kid."""
    keys = SigningKeys.load(path)._keys if path.exists() else []
    key = _new_key()
    _write(path, [*keys, key])
    return key.kid


def _new_key() -> RSAKey:
    kid = time.strftime("%Y%m%d") + "-" + secrets.token_hex(4)
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": ALGORITHM}, private=True)


def _create(path: Path, keys: list[RSAKey]) -> None:
    """Write a new key file unless one appears meanwhile: gunicorn workers (or instances on a
    shared volume) starting at once must all sign with the same key, the first one written."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    _write(temporary, keys)
    try:
        os.link(temporary, path)  # atomic, and refuses to replace an existing file
    except FileExistsError:
        pass
    finally:
        temporary.unlink()


def _write(path: Path, keys: list[RSAKey]) -> None:
    """Write atomically, readable by the owner only: these are private keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"keys": [key.as_dict(private=True) for key in keys]}, handle, indent=2)
    os.replace(temporary, path)
