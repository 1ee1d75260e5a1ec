"""The parts of the SMS channel under the screens: numbers, codes and send limits, on the memory
store and on a real Redis, with a frozen clock."""
from __future__ import annotations

import pytest

from provider.channels.sms_codes import CodeBook
from provider.channels.sms_limits import WINDOW, Blocked, SendLimiter, Ticket
from provider.channels.sms_phone import INVALID, InvalidPhone, international, masked, parse_mobile
from provider.clock import FrozenClock
from provider.storage.encryption import Encryptor
from provider.storage.memory import MemoryStateStore

GB_MOBILE = "+447400123456"


@pytest.mark.parametrize(("typed", "region", "expected"), [
    ("+44 7400 123456", None, GB_MOBILE),
    ("  +44 (0)7400-123 456 ", None, GB_MOBILE),
    ("07400 123456", "GB", GB_MOBILE),
    ("0044 7400 123456", "GB", GB_MOBILE),
    ("+1 415 555 2671", "GB", "+14155552671"),  # US numbers can be mobile or fixed: accepted
    ("06 12 34 56 78", "FR", "+33612345678"),
])
def test_numbers_are_read_into_e164(typed, region, expected):
    assert parse_mobile(typed, region) == expected


@pytest.mark.parametrize(("typed", "region"), [
    ("", "GB"), ("   ", None), ("call me", "GB"), ("12", "GB"),
    ("07400 123456", None),  # no country code and no default region
    ("+44 20 7946 0958", None),  # a London landline
    ("+44 909 879 0879", None),  # premium rate
    ("+44 800 123 4567", None),  # freephone
    ("+1 800 555 0199", None),  # toll-free
    ("+44 7400 1234567", None),  # one digit too many
    ("+999 123 456 789", None),  # no such country code
    ("+44 7400 123456" + "0" * 60, None),  # absurdly long
])
def test_invalid_numbers(typed, region):
    with pytest.raises(InvalidPhone) as caught:
        parse_mobile(typed, region)
    assert str(caught.value) == INVALID


def test_allowed_regions():
    assert parse_mobile("+353 85 012 3456", None, ["IE", "GB"]) == "+353850123456"
    expected = r"only send codes to mobile numbers from: United Kingdom \(\+44\), Ireland \(\+353\)\.$"
    with pytest.raises(InvalidPhone, match=expected):
        parse_mobile("+33 6 12 34 56 78", None, ["GB", "IE"])


def test_display_and_masking():
    assert international(GB_MOBILE) == "+44 7400 123456"
    assert masked(GB_MOBILE) == "+44 •••• ••3456"
    assert masked("+14155552671", hide="*") == "+1 ***-***-2671"


# -- codes and limits, on both state stores -----------------------------------------------------


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def store_and_clock(request):
    clock = FrozenClock()
    if request.param == "memory":
        return MemoryStateStore(clock), clock
    return request.getfixturevalue("redis_store_factory")(), clock


@pytest.fixture
def book(store_and_clock) -> CodeBook:
    store, clock = store_and_clock
    encryptor = Encryptor.from_secrets("test-encryption-key-0123456789-0123456789")
    return CodeBook(store, encryptor, clock, length=6, ttl=300, max_attempts=3)


def test_a_code_is_single_use_and_bound_to_flow_and_number(book, store_and_clock):
    store, _ = store_and_clock
    code = book.new_code()
    assert len(code) == 6 and code.isdigit()
    book.remember("flow1:sms", GB_MOBILE, code)
    assert code not in store.get("sms:code:flow1:sms")  # only a keyed hash is stored
    assert book.check("flow2:sms", GB_MOBILE, code).result == "expired"  # another flow
    assert book.check("flow1:sms", "+447400999999", code).result == "wrong"  # another number
    assert book.check("flow1:sms", GB_MOBILE, f" {code[:3]} {code[3:]} ").ok
    assert book.check("flow1:sms", GB_MOBILE, code).result == "expired"  # used up


def test_wrong_codes_then_exhausted(book):
    code = book.new_code()
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    book.remember("f:sms", GB_MOBILE, code)
    assert book.check("f:sms", GB_MOBILE, "12a456").result == "malformed"  # not counted
    assert book.check("f:sms", GB_MOBILE, "1234567").result == "malformed"
    assert [book.check("f:sms", GB_MOBILE, wrong).tries_left for _ in range(2)] == [2, 1]
    assert book.check("f:sms", GB_MOBILE, wrong).result == "exhausted"
    assert book.check("f:sms", GB_MOBILE, code).result == "expired"  # the right one is gone too


def test_expiry_by_the_injected_clock_and_replacement(book, store_and_clock):
    _, clock = store_and_clock
    first, second = "111111", "222222"
    book.remember("f:sms", GB_MOBILE, first)
    book.remember("f:sms", GB_MOBILE, second)
    assert book.check("f:sms", GB_MOBILE, first).result == "replaced"
    assert book.check("f:sms", GB_MOBILE, "333333").result == "wrong"
    book.void("f:sms")  # a new code is on its way: none is valid
    assert book.check("f:sms", GB_MOBILE, second).result == "expired"
    book.remember("f:sms", GB_MOBILE, "444444")
    assert book.check("f:sms", GB_MOBILE, second).result == "replaced"
    clock.advance(301)
    assert book.check("f:sms", GB_MOBILE, "444444").result == "expired"
    assert not book.pending("f:sms")


def test_cooldown_and_sliding_quotas(store_and_clock):
    store, clock = store_and_clock
    limiter = SendLimiter(store, clock, cooldown=30)
    quotas = {"user": ("q:user", 3), "number": ("q:number", 2), "ip": ("q:ip", 0)}
    first = limiter.acquire("cool", quotas)
    assert isinstance(first, Ticket) and first.quota_keys == ("q:user", "q:number")
    blocked = limiter.acquire("cool", quotas)
    assert blocked == Blocked(first.at + 30, "cooldown") and limiter.wait("cool") == 30
    clock.advance(30)
    second = limiter.acquire("cool", quotas)
    assert isinstance(second, Ticket)
    clock.advance(30)
    assert limiter.acquire("cool", quotas) == Blocked(first.at + WINDOW, "quota", "number")
    limiter.give_back(second)  # the gateway refused it: it does not count
    clock.advance(30)
    assert isinstance(limiter.acquire("cool", quotas), Ticket)
    clock.advance(WINDOW - 90)  # the first send has left the window: one left in it
    number = {"number": ("q:number", 2)}
    assert isinstance(limiter.acquire("cool", number), Ticket)
    clock.advance(30)
    assert limiter.acquire("cool", number) == Blocked(first.at + 90 + WINDOW, "quota", "number")
    clock.advance(60)
    assert isinstance(limiter.acquire("cool", number), Ticket)
