"""Secrets encrypted at rest: TOTP keys, phone numbers, anything a database dump must not
give away.

AES-256-GCM with a random 96-bit nonce. The key is derived (HKDF-SHA256) from an operator's
secret of at least 32 characters, so the configured text is never used as a key directly.
A sealed value is self-describing text, ``v1.<kid>.<urlsafe-b64(nonce || ciphertext)>``:
the version lets the format change later, and the key id lets old keys keep decrypting
after a rotation until every row is re-encrypted under the current one.

Every value is sealed for a ``context`` (associated data, e.g. "enrollment:<user>:<channel>:
secret"): a ciphertext copied into another user's row does not decrypt there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from provider.errors import ConfigurationError

VERSION = "v1"
MIN_SECRET_LENGTH = 32
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96 bits: the size GCM is specified for (NIST SP 800-38D, 5.2.1.1)
TAG_BYTES = 16
KID_HEX_CHARS = 8
HKDF_INFO = b"twostep encryption at rest v1"


class DecryptionError(ConfigurationError):
    """A sealed value cannot be opened: unknown key id, bad format, tampering or the wrong
    context. Usually a missing old secret after a rotation, hence a configuration error.
    The detail names the key id at most, never key material or plaintext."""

    code = "decryption"


def derive_key(secret: str) -> bytes:
    """The AES key for an operator's secret; the same secret always gives the same key."""
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"an encryption secret must be at least {MIN_SECRET_LENGTH} characters")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=HKDF_INFO)
    return hkdf.derive(secret.encode("utf-8"))


def key_id(key: bytes) -> str:
    """A short public name for a key: a hash of the derived key, so it reveals nothing
    about the secret and is stable across restarts and instances."""
    return hashlib.sha256(key).hexdigest()[:KID_HEX_CHARS]


class Encryptor:
    """Seals with the current key, opens with any configured key. Thread-safe (immutable)."""

    __slots__ = ("_current", "_keys")

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise ValueError(f"the current key id {current!r} is not among the keys")
        if any(len(key) != KEY_BYTES for key in keys.values()):
            raise ValueError(f"encryption keys must be {KEY_BYTES} bytes")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self._current = current

    @classmethod
    def from_secrets(cls, current_secret: str, old_secrets: Sequence[str] = ()) -> Encryptor:
        """From the configured secrets: ``old_secrets`` only decrypt (key rotation)."""
        keys: dict[str, bytes] = {}
        for secret in (current_secret, *old_secrets):
            key = derive_key(secret)
            kid = key_id(key)
            if keys.get(kid, key) != key:
                raise ValueError(f"two encryption secrets share the key id {kid}; replace one")
            keys[kid] = key
        return cls(keys, key_id(derive_key(current_secret)))

    @property
    def current_kid(self) -> str:
        return self._current

    def __repr__(self) -> str:
        return f"Encryptor(current={self._current!r}, kids={sorted(self._keys)!r})"

    def encrypt(self, plaintext: bytes, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self._current].encrypt(nonce, plaintext, context.encode("utf-8"))
        payload = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{VERSION}.{self._current}.{payload}"

    def decrypt(self, token: str, context: str) -> bytes:
        kid, blob = _parse(token)
        aesgcm = self._keys.get(kid)
        if aesgcm is None:
            raise DecryptionError(
                f"sealed with key {kid}, which is not configured (an old secret missing?)"
            )
        try:
            return aesgcm.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context.encode("utf-8"))
        except InvalidTag:
            raise DecryptionError(
                f"value sealed with key {kid} does not authenticate for {context!r}"
                " (tampered with, or copied from another record)"
            ) from None

    def needs_reencrypt(self, token: str) -> bool:
        """Was ``token`` sealed with an older key? Raises DecryptionError if it is no token."""
        kid, _ = _parse(token)
        return kid != self._current


def _parse(token: str) -> tuple[str, bytes]:
    """Split a sealed value into key id and nonce || ciphertext, or say why it is none."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION or len(parts[1]) != KID_HEX_CHARS:
        raise DecryptionError(f"not a sealed value in the {VERSION} format")
    try:
        blob = base64.b64decode(parts[2], altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionError("sealed value is not valid base64") from None
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("sealed value is too short")
    return parts[1], blob
