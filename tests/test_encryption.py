"""Secrets encrypted at rest: AES-256-GCM under keys derived from the operator's secrets."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from provider.errors import ConfigurationError
from provider.storage.encryption import DecryptionError, Encryptor

SECRET = "correct horse battery staple, 32+ characters"
OLD_SECRET = "the secret we used last year, also long enough"
CONTEXT = "enrollment:alice:totp:secret"
PLAINTEXT = b"12345678901234567890"


@pytest.fixture
def encryptor() -> Encryptor:
    return Encryptor.from_secrets(SECRET)


def test_roundtrip(encryptor: Encryptor) -> None:
    token = encryptor.encrypt(PLAINTEXT, CONTEXT)
    assert encryptor.decrypt(token, CONTEXT) == PLAINTEXT
    assert encryptor.decrypt(encryptor.encrypt(b"", CONTEXT), CONTEXT) == b""


def test_token_is_self_describing_text(encryptor: Encryptor) -> None:
    token = encryptor.encrypt(PLAINTEXT, CONTEXT)
    assert re.fullmatch(r"v1\.[0-9a-f]{8}\.[A-Za-z0-9_=-]+", token)
    assert token.split(".")[1] == encryptor.current_kid


def test_ciphertext_does_not_contain_the_plaintext(encryptor: Encryptor) -> None:
    token = encryptor.encrypt(PLAINTEXT, CONTEXT)
    raw = base64.urlsafe_b64decode(token.split(".")[2])
    assert PLAINTEXT not in raw
    assert PLAINTEXT.decode() not in token


def test_nonce_is_random(encryptor: Encryptor) -> None:
    first, second = (encryptor.encrypt(PLAINTEXT, CONTEXT) for _ in range(2))
    assert first != second
    assert first.split(".")[2][:16] != second.split(".")[2][:16]


def test_context_binds_the_ciphertext(encryptor: Encryptor) -> None:
    token = encryptor.encrypt(PLAINTEXT, CONTEXT)
    with pytest.raises(DecryptionError) as raised:
        encryptor.decrypt(token, "enrollment:mallory:totp:secret")
    assert PLAINTEXT.decode() not in str(raised.value)


@pytest.mark.parametrize("position", [0, 11, 12, -1])  # nonce, ciphertext, tag
def test_tampering_is_detected(encryptor: Encryptor, position: int) -> None:
    version, kid, payload = encryptor.encrypt(PLAINTEXT, CONTEXT).split(".")
    blob = bytearray(base64.urlsafe_b64decode(payload))
    blob[position] ^= 0x01
    forged = f"{version}.{kid}.{base64.urlsafe_b64encode(bytes(blob)).decode()}"
    with pytest.raises(DecryptionError):
        encryptor.decrypt(forged, CONTEXT)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "v1",
        "v2.abcdef01.AAAA",
        "v1.abc.AAAA",
        "v1.abcdef01.not*base64",
        "v1.abcdef01.AAAA",  # shorter than nonce + tag
        "v1.abcdef01.ÄÖÜ",
        "v1.abcdef01.AAAA.extra",
    ],
)
def test_bad_format_is_a_decryption_error(encryptor: Encryptor, token: str) -> None:
    with pytest.raises(DecryptionError):
        encryptor.decrypt(token, CONTEXT)


def test_unknown_kid(encryptor: Encryptor) -> None:
    token = Encryptor.from_secrets(OLD_SECRET).encrypt(PLAINTEXT, CONTEXT)
    with pytest.raises(DecryptionError, match="not configured") as raised:
        encryptor.decrypt(token, CONTEXT)
    assert isinstance(raised.value, ConfigurationError)


def test_old_key_still_decrypts_and_needs_reencrypt() -> None:
    old = Encryptor.from_secrets(OLD_SECRET)
    rotated = Encryptor.from_secrets(SECRET, [OLD_SECRET])
    token = old.encrypt(PLAINTEXT, CONTEXT)
    assert rotated.decrypt(token, CONTEXT) == PLAINTEXT
    assert rotated.needs_reencrypt(token)
    fresh = rotated.encrypt(PLAINTEXT, CONTEXT)
    assert not rotated.needs_reencrypt(fresh)
    assert fresh.split(".")[1] == Encryptor.from_secrets(SECRET).current_kid


def test_same_secret_same_kid_different_secrets_different_kids() -> None:
    assert Encryptor.from_secrets(SECRET).current_kid == Encryptor.from_secrets(SECRET).current_kid
    assert Encryptor.from_secrets(SECRET).current_kid != Encryptor.from_secrets(OLD_SECRET).current_kid


def test_kid_and_repr_reveal_no_secret(encryptor: Encryptor) -> None:
    assert encryptor.current_kid != hashlib.sha256(SECRET.encode()).hexdigest()[:8]
    assert SECRET not in repr(encryptor)
    assert encryptor.current_kid in repr(encryptor)


@pytest.mark.parametrize("secret", ["", "x" * 31])
def test_short_secret_is_rejected(secret: str) -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        Encryptor.from_secrets(secret)
    with pytest.raises(ValueError, match="at least 32 characters"):
        Encryptor.from_secrets(SECRET, [secret])


def test_constructor_checks_its_keys() -> None:
    with pytest.raises(ValueError, match="current key id"):
        Encryptor({"abcdef01": bytes(32)}, "01234567")
    with pytest.raises(ValueError, match="32 bytes"):
        Encryptor({"abcdef01": bytes(16)}, "abcdef01")
