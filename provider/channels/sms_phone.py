"""Mobile numbers as users type them, as they are stored (E.164) and as they are shown (masked).

Parsing is libphonenumber's (the ``phonenumbers`` port): a number without ``+`` is read in the
configured default region; only numbers that are valid and can be mobile are accepted, which
also keeps premium-rate and toll-free numbers (SMS pumping's favourites) out.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType, geocoder

MAX_TYPED = 64  # longer than any number written with spaces and punctuation
MOBILE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)
INVALID = "Enter a valid mobile number, including the country code (for example +44 7400 123456)."
KEEP_DIGITS = 4


class InvalidPhone(ValueError):
    """Not a number we send codes to; the message is for the user."""


def known_region(region: str) -> str:
    """An ISO 3166 region code phonenumbers knows (``GB``), for settings validation."""
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"a two-letter region code such as GB, US or FR, found {region!r}")
    return code


def parse_mobile(typed: str, default_region: str | None, allowed_regions: Sequence[str] = ()) -> str:
    """The E.164 form of a mobile number as typed, or InvalidPhone with what to do about it."""
    text = typed.strip()
    if not text or len(text) > MAX_TYPED:
        raise InvalidPhone(INVALID)
    try:
        number = phonenumbers.parse(text, default_region)
    except NumberParseException:
        raise InvalidPhone(INVALID) from None
    if not phonenumbers.is_valid_number(number) or phonenumbers.number_type(number) not in MOBILE_TYPES:
        raise InvalidPhone(INVALID)
    region = phonenumbers.region_code_for_number(number)
    if allowed_regions and region not in allowed_regions:
        accepted = ", ".join(region_name(code) for code in allowed_regions)
        raise InvalidPhone(f"We can only send codes to mobile numbers from: {accepted}.")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def region_name(region: str) -> str:
    """``GB`` as users know it: ``United Kingdom (+44)``."""
    example = phonenumbers.example_number(region)
    name = geocoder.country_name_for_number(example, "en") if example else ""
    return f"{name or region} (+{phonenumbers.country_code_for_region(region)})"


def international(e164: str) -> str:
    """``+447400123456`` as people write it: ``+44 7400 123456``."""
    return phonenumbers.format_number(phonenumbers.parse(e164), PhoneNumberFormat.INTERNATIONAL)


def masked(e164: str, hide: str = "•") -> str:
    """The number with all but the country code and the last four digits hidden:
    ``+44 •••• ••3456`` on screen, ``+44 **** **3456`` in logs and audit lines."""
    try:
        number = phonenumbers.parse(e164)
    except NumberParseException:
        return hide * 4
    written = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    prefix = f"+{number.country_code}"
    rest = written[len(prefix):]
    total = sum(ch.isdigit() for ch in rest)
    seen, out = 0, []
    for ch in rest:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen > total - KEEP_DIGITS else hide)
        else:
            out.append(ch)
    return prefix + "".join(out)


def digest(e164: str) -> str:
    """A short stable name for a number, for rate-limit keys: the state store never holds
    numbers in its keys. (Not a secret: numbers are few enough to enumerate.)"""
    return hashlib.sha256(e164.encode()).hexdigest()[:24]
