"""Brute-force throttling: per user (known or not) and per address, across flows and instances."""
from __future__ import annotations

import pytest

from provider.clock import FrozenClock
from provider.login.throttle import Throttle, message
from provider.settings import LockoutSettings
from provider.storage.state import open_state_store
from tests.fixtures.app import PASSWORD, base_settings
from tests.support.rp import Callback, Page


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def throttle(request):
    clock = FrozenClock()
    if request.param == "memory":
        store = open_state_store("memory://", clock)
    else:
        store = request.getfixturevalue("redis_store_factory")()
    return Throttle(store, clock, LockoutSettings(threshold=3, base_delay=30, max_delay=100, ip_threshold=0)), clock


def test_backoff_doubles_up_to_the_cap(throttle):
    t, _ = throttle
    assert [t.failed("alice", None) for _ in range(6)] == [0, 0, 30, 60, 100, 100]
    assert 99 <= t.wait("alice", None) <= 100
    assert t.wait("ALICE", None) > 0  # the same user, however it is typed
    assert t.wait("bob", None) == 0


def test_success_resets(throttle):
    t, _ = throttle
    for _ in range(3):
        t.failed("alice", None)
    t.succeeded("alice")
    assert t.wait("alice", None) == 0
    assert t.failed("alice", None) == 0  # counting starts again


def test_messages():
    assert message(30) == "Too many failed attempts. Try again in 1 minute."
    assert message(61) == "Too many failed attempts. Try again in 2 minutes."


def test_wait_ends_with_time():
    clock = FrozenClock()
    t = Throttle(open_state_store("memory://", clock), clock, LockoutSettings(threshold=1, base_delay=30))
    t.failed("alice", None)
    clock.advance(31)
    assert t.wait("alice", None) == 0


def lockout_settings(tmp_path, **lockout):
    settings = base_settings(tmp_path, "memory://")
    settings["lockout"] = {"threshold": 3, "base_delay": 60, **lockout}
    return settings


def test_the_right_password_is_refused_while_throttled(serve, tmp_path):
    served = serve(lockout_settings(tmp_path))
    rp = served.rp()
    page = rp.authorize()
    for _ in range(3):
        page = rp.submit(page, username="agent", password="wrong")
    assert page.error == "Too many failed attempts. Try again in 1 minute."
    page = rp.submit(page, username="agent", password=PASSWORD)
    assert isinstance(page, Page) and page.error.startswith("Too many failed attempts")
    # Another flow, another browser: the count is the user's, not the flow's.
    other = served.rp()
    result = other.submit(other.authorize(), username="agent", password=PASSWORD)
    assert isinstance(result, Page) and result.error.startswith("Too many failed attempts")
    served.clock.advance(61)
    assert isinstance(other.submit(result, username="agent", password=PASSWORD), Callback)


def test_unknown_users_are_counted_the_same(serve, tmp_path):
    served = serve(lockout_settings(tmp_path))
    rp = served.rp()
    page = rp.authorize()
    for _ in range(3):
        page = rp.submit(page, username="nobody", password="wrong")
    assert page.error == "Too many failed attempts. Try again in 1 minute."


def test_spraying_from_one_address_is_refused(serve, tmp_path):
    served = serve(lockout_settings(tmp_path, threshold=0, ip_threshold=4))
    rp = served.rp()
    page = rp.authorize()
    for name in ("ann", "bob", "cid", "dee"):
        page = rp.submit(page, username=name, password="wrong")
    result = rp.submit(page, username="agent", password=PASSWORD)
    assert isinstance(result, Page) and result.error.startswith("Too many failed attempts")
