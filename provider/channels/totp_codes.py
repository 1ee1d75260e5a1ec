"""Authenticator-app passcodes: TOTP (RFC 6238) over HOTP (RFC 4226), with nothing but the
standard library, ``qrcode`` for the enrolment picture and an injected state store.

Pure functions over a secret (raw bytes), :class:`TotpParameters` and an explicit ``now`` (seconds
since the epoch, from the caller's clock), so every result is reproducible in a test. The only
state is the last accepted time step per user, kept by :class:`ReplayGuard` in a
:class:`~provider.storage.state.StateStore` so that several instances refuse a replay alike.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import re
import secrets
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from qrcode.image.pure import PyPNGImage

from provider.storage.state import StateStore

Algorithm = Literal["SHA1", "SHA256", "SHA512"]
Reason = Literal["ok", "malformed", "wrong", "replayed"]

DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}
ALLOWED_DIGITS = (6, 8)  # what authenticator apps display; RFC 4226 §5.3 allows 6 to 8
MIN_SECRET_BYTES = 16  # RFC 4226 §4 R6: at least 128 bits (160 recommended)
SKEW_REACH = 10  # steps either side searched for a "your phone's clock is off" hint
_PASSCODE = re.compile(r"[0-9]+(?: +[0-9]+)*")  # ASCII digits, runs of spaces between them


@dataclass(frozen=True)
class TotpParameters:
    """How codes are made (RFC 6238 §4: X = ``period``, T0 = 0) and how far apart in time a
    submitted code may be from the server's clock (``valid_window`` steps either side, §5.2)."""

    digits: int = 6
    period: int = 30
    algorithm: Algorithm = "SHA1"
    valid_window: int = 1
    secret_bytes: int = 20

    def __post_init__(self) -> None:
        if self.algorithm not in DIGESTS:
            raise ValueError(f"algorithm must be one of {', '.join(DIGESTS)}, got {self.algorithm!r}")
        if self.digits not in ALLOWED_DIGITS:
            raise ValueError(f"digits must be 6 or 8, got {self.digits!r}")
        if self.period < 1:
            raise ValueError(f"period must be at least 1 second, got {self.period!r}")
        if self.valid_window < 0:
            raise ValueError(f"valid_window must be 0 or more steps, got {self.valid_window!r}")
        if self.secret_bytes < MIN_SECRET_BYTES:
            raise ValueError(f"secret_bytes must be at least {MIN_SECRET_BYTES}, got {self.secret_bytes!r}")


@dataclass(frozen=True)
class Verification:
    """The outcome of one submitted passcode. ``skew`` (steps, negative when the phone is behind)
    is set only for a ``wrong`` code that would be right if the phone's clock were that far off."""

    reason: Reason
    skew: int | None = None

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


# -- enrolment: the secret and how the user's app receives it ---------------------------------


def new_secret(params: TotpParameters) -> bytes:
    return secrets.token_bytes(params.secret_bytes)


def base32(secret: bytes) -> str:
    """The secret as authenticator apps take it: RFC 4648 base32 without ``=`` padding."""
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def grouped(secret_b32: str) -> str:
    """``GEZDGNBV...`` as ``GEZD GNBV ...``, easier to type by hand."""
    return " ".join(secret_b32[i : i + 4] for i in range(0, len(secret_b32), 4))


def provisioning_uri(secret: bytes, params: TotpParameters, issuer: str, account: str) -> str:
    """The Google Authenticator Key Uri Format: ``otpauth://totp/ISSUER:ACCOUNT?secret=...``.

    Label and issuer are percent-encoded; ``algorithm``, ``digits`` and ``period`` are written
    only when not the defaults, which some apps ignore (they are then better left at defaults).
    """
    for name, value in (("issuer", issuer), ("account", account)):
        if ":" in value:  # the format: "Neither issuer nor account name may themselves contain a colon"
            raise ValueError(f"the {name} of a provisioning URI may not contain a colon: {value!r}")
    query = [f"secret={base32(secret)}", f"issuer={quote(issuer, safe='')}"]
    defaults = TotpParameters()
    if params.algorithm != defaults.algorithm:
        query.append(f"algorithm={params.algorithm}")
    if params.digits != defaults.digits:
        query.append(f"digits={params.digits}")
    if params.period != defaults.period:
        query.append(f"period={params.period}")
    return f"otpauth://totp/{quote(issuer, safe='')}:{quote(account, safe='')}?{'&'.join(query)}"


def qr_data_uri(text: str) -> str:
    """A QR code of ``text`` as a ``data:image/png;base64,...`` URI for an ``<img src>``."""
    code = qrcode.QRCode(
        error_correction=ERROR_CORRECT_M, box_size=6, border=4, image_factory=PyPNGImage
    )
    code.add_data(text)
    code.make(fit=True)
    png = io.BytesIO()
    code.make_image().save(png)
    return "data:image/png;base64," + base64.b64encode(png.getvalue()).decode("ascii")


# -- codes ------------------------------------------------------------------------------------


def normalize(code: str, params: TotpParameters) -> str | None:
    """The digits of a typed passcode, or None if it cannot be one.

    Surrounding whitespace and spaces between digits (apps show ``123 456``) are dropped;
    anything else that is not an ASCII digit, or the wrong number of digits, is refused.
    """
    stripped = code.strip()
    if not _PASSCODE.fullmatch(stripped):
        return None
    digits = stripped.replace(" ", "")
    return digits if len(digits) == params.digits else None


def step_at(params: TotpParameters, now: float) -> int:
    """RFC 6238 §4.2: T = floor((now - T0) / X), with T0 = 0."""
    return int(now // params.period)


def code_at(secret: bytes, params: TotpParameters, step: int) -> str:
    """HOTP (RFC 4226 §5.3) of a time step, with the digest RFC 6238 §1.2 allows."""
    if step < 0:
        raise ValueError(f"a time step is not negative, got {step}")
    mac = hmac.new(secret, step.to_bytes(8, "big"), DIGESTS[params.algorithm]).digest()
    offset = mac[-1] & 0x0F  # dynamic truncation, RFC 4226 §5.4
    binary = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(binary % 10**params.digits).zfill(params.digits)


def matching_step(secret: bytes, params: TotpParameters, code: str, now: float) -> int | None:
    """The time step within ``valid_window`` of now whose code is ``code`` (a normalized
    passcode), the one nearest now if several are; None if none is (RFC 6238 §5.2)."""
    current = step_at(params, now)
    offset = _matching_offset(secret, params, code, current, _offsets(0, params.valid_window))
    return None if offset is None else current + offset


def skewed_step(secret: bytes, params: TotpParameters, code: str, now: float, reach: int = SKEW_REACH) -> int | None:
    """The offset in steps (``-4``: the phone is two minutes behind) at which ``code`` would be
    valid, searched outside the window up to ``reach`` steps away; None if nowhere.

    Only a hint for the user: the code was wrong, and the caller still counts it as a failure.
    """
    current = step_at(params, now)
    return _matching_offset(secret, params, code, current, _offsets(params.valid_window + 1, reach))


def _offsets(nearest: int, farthest: int) -> list[int]:
    """Step offsets from ``nearest`` to ``farthest`` away, either side, nearest first."""
    offsets = [0] if nearest == 0 else []
    for distance in range(max(nearest, 1), farthest + 1):
        offsets += [-distance, distance]
    return offsets


def _matching_offset(secret: bytes, params: TotpParameters, code: str, current: int, offsets: list[int]) -> int | None:
    """The first offset whose code equals ``code``. Every candidate is compared in constant
    time and none is skipped, so the time taken does not tell which step matched, if any."""
    submitted = code.encode()
    found = None
    for offset in offsets:
        if current + offset < 0:
            continue  # before the epoch: no such step (depends on the clock, not on the code)
        candidate = code_at(secret, params, current + offset).encode("ascii")
        if hmac.compare_digest(candidate, submitted) and found is None:
            found = offset
    return found


# -- replay protection ------------------------------------------------------------------------


def replay_ttl(params: TotpParameters) -> float:
    """How long the last accepted step must be remembered: until no code of that step or an
    earlier one can fall inside the window again. A step accepted at ``+valid_window`` stays
    valid for ``2 * valid_window + 1`` periods; one more period covers clocks that differ."""
    return float((2 * params.valid_window + 2) * params.period)


class ReplayGuard:
    """Each passcode is accepted at most once (RFC 6238 §5.2): the last accepted time step is
    remembered per key, and a code of the same or an earlier step is refused.

    The key is the caller's, one per user and channel (``totp:last:{user_id}:{channel}``). The
    store's ``raise_to`` is atomic, so of concurrent submissions of one code on any number of
    threads or instances exactly one is accepted.
    """

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def accept(self, key: str, step: int, ttl: float) -> bool:
        """True only if ``step`` is later than every step accepted before for ``key``."""
        return self._store.raise_to(key, step, ttl)


def verify(secret: bytes, params: TotpParameters, code: str, now: float, guard: ReplayGuard, key: str) -> Verification:
    """Check a passcode as typed by the user, and use it up if it is right."""
    passcode = normalize(code, params)
    if passcode is None:
        return Verification("malformed")
    step = matching_step(secret, params, passcode, now)
    if step is None:
        return Verification("wrong", skew=skewed_step(secret, params, passcode, now))
    if not guard.accept(key, step, replay_ttl(params)):
        return Verification("replayed")
    return Verification("ok")
