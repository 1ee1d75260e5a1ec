"""The StateStore contract: one suite, run on every implementation (memory and a real Redis),
then what only one of them promises (Redis prefixes and failures, memory sweeping)."""
from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import pytest

from provider.clock import FrozenClock
from provider.errors import ConfigurationError, ServiceUnavailable
from provider.storage.memory import SWEEP_INTERVAL, MemoryStateStore
from provider.storage.redis import RedisStateStore
from provider.storage.state import StateStore, open_state_store

T = TypeVar("T")

SHORT_TTL = 0.5  # real seconds on Redis, so kept short; frozen-clock seconds on memory
PAST_SHORT_TTL = SHORT_TTL + 0.1
LONG_TTL = 60.0
THREADS = 20


@dataclass(frozen=True)
class Backend:
    store: StateStore
    elapse: Callable[[float], None]  # let this many seconds pass, as the store sees time


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        clock = FrozenClock()
        return Backend(open_state_store("memory://", clock=clock), clock.advance)
    make_store = request.getfixturevalue("redis_store_factory")
    return Backend(make_store(), time.sleep)


@pytest.fixture
def store(backend: Backend) -> StateStore:
    return backend.store


@pytest.fixture
def elapse(backend: Backend) -> Callable[[float], None]:
    return backend.elapse


def run_together(action: Callable[[int], T], threads: int = THREADS) -> list[T]:
    """Call ``action(i)`` on ``threads`` threads released at the same moment."""
    start = threading.Barrier(threads, timeout=10)

    def run(index: int) -> T:
        start.wait()
        return action(index)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(run, range(threads)))


# -- the contract: single calls -------------------------------------------------------------


def test_get_returns_what_put_stored(store: StateStore) -> None:
    value = '{"step": "totp", "name": "Zoë ✓"}'
    store.put("flow:abc", value, LONG_TTL)
    assert store.get("flow:abc") == value
    assert store.get("flow:other") is None


def test_put_overwrites(store: StateStore) -> None:
    store.put("k", "one", LONG_TTL)
    store.put("k", "two", LONG_TTL)
    assert store.get("k") == "two"


def test_add_sets_only_an_absent_key(store: StateStore) -> None:
    assert store.add("k", "first", LONG_TTL) is True
    assert store.add("k", "second", LONG_TTL) is False
    assert store.get("k") == "first"


def test_delete_says_whether_something_was_there(store: StateStore) -> None:
    store.put("k", "v", LONG_TTL)
    assert store.delete("k") is True
    assert store.delete("k") is False
    assert store.get("k") is None


def test_take_returns_the_value_once(store: StateStore) -> None:
    store.put("code", "secret", LONG_TTL)
    assert store.take("code") == "secret"
    assert store.take("code") is None
    assert store.get("code") is None


def test_swap_returns_the_previous_value(store: StateStore) -> None:
    assert store.swap("code", "secret", LONG_TTL) is None
    assert store.swap("code", "used", LONG_TTL) == "secret"
    assert store.get("code") == "used"


def test_replace_sets_only_when_the_current_value_is_expected(store: StateStore) -> None:
    assert store.replace("flow", "v1", "v2", LONG_TTL) is False
    assert store.get("flow") is None
    store.put("flow", "v1", LONG_TTL)
    assert store.replace("flow", "v0", "v2", LONG_TTL) is False
    assert store.get("flow") == "v1"
    assert store.replace("flow", "v1", "v2", LONG_TTL) is True
    assert store.get("flow") == "v2"


def test_incr_counts_from_one(store: StateStore) -> None:
    assert [store.incr("attempts", LONG_TTL) for _ in range(3)] == [1, 2, 3]
    assert store.get("attempts") == "3"


def test_raise_to_accepts_only_a_greater_value(store: StateStore) -> None:
    assert store.raise_to("step", 56_666_667, LONG_TTL) is True
    assert store.raise_to("step", 56_666_667, LONG_TTL) is False
    assert store.raise_to("step", 56_666_666, LONG_TTL) is False
    assert store.get("step") == "56666667"
    assert store.raise_to("step", 56_666_668, LONG_TTL) is True
    assert store.get("step") == "56666668"


def test_ping_answers(store: StateStore) -> None:
    store.ping()


WRITES: dict[str, Callable[[StateStore, float], object]] = {
    "put": lambda store, ttl: store.put("k", "v", ttl),
    "add": lambda store, ttl: store.add("k", "v", ttl),
    "swap": lambda store, ttl: store.swap("k", "v", ttl),
    "replace": lambda store, ttl: store.replace("k", "old", "v", ttl),
    "incr": lambda store, ttl: store.incr("k", ttl),
    "raise_to": lambda store, ttl: store.raise_to("k", 1, ttl),
}


@pytest.mark.parametrize("ttl", [0, -1, float("nan")])
@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_a_write_without_a_positive_ttl_is_refused(
    store: StateStore, write: Callable[[StateStore, float], object], ttl: float
) -> None:
    store.put("k", "old", LONG_TTL)
    with pytest.raises(ValueError, match="ttl"):
        write(store, ttl)
    assert store.get("k") == "old"


# -- the contract: expiry -------------------------------------------------------------------


def test_every_write_sets_the_expiry_it_is_given(
    store: StateStore, elapse: Callable[[float], None]
) -> None:
    for key in ("swap", "replace", "raise_to"):
        store.put(key, "1", LONG_TTL)
    store.put("put", "v", SHORT_TTL)
    store.add("add", "v", SHORT_TTL)
    store.swap("swap", "v", SHORT_TTL)
    store.replace("replace", "1", "v", SHORT_TTL)
    store.incr("incr", SHORT_TTL)
    store.raise_to("raise_to", 2, SHORT_TTL)
    keys = ["put", "add", "swap", "replace", "incr", "raise_to"]
    assert None not in [store.get(key) for key in keys]
    elapse(PAST_SHORT_TTL)
    assert [store.get(key) for key in keys] == [None] * len(keys)


def test_a_refused_write_leaves_the_expiry_alone(
    store: StateStore, elapse: Callable[[float], None]
) -> None:
    for key in ("add", "replace", "raise_to"):
        store.put(key, "5", SHORT_TTL)
    assert store.add("add", "v", LONG_TTL) is False
    assert store.replace("replace", "4", "v", LONG_TTL) is False
    assert store.raise_to("raise_to", 5, LONG_TTL) is False
    elapse(PAST_SHORT_TTL)
    assert [store.get(key) for key in ("add", "replace", "raise_to")] == [None] * 3


def test_an_expired_record_counts_as_absent(
    store: StateStore, elapse: Callable[[float], None]
) -> None:
    for key in ("add", "take", "swap", "replace", "delete", "incr", "raise_to"):
        store.put(key, "9", SHORT_TTL)
    elapse(PAST_SHORT_TTL)
    assert store.add("add", "v", LONG_TTL) is True
    assert store.take("take") is None
    assert store.swap("swap", "v", LONG_TTL) is None
    assert store.replace("replace", "9", "v", LONG_TTL) is False
    assert store.delete("delete") is False
    assert store.incr("incr", LONG_TTL) == 1
    assert store.raise_to("raise_to", 1, LONG_TTL) is True


def test_incr_window_is_fixed_by_the_first_increment(
    store: StateStore, elapse: Callable[[float], None]
) -> None:
    assert store.incr("attempts", SHORT_TTL) == 1
    elapse(SHORT_TTL * 0.6)
    assert store.incr("attempts", SHORT_TTL) == 2
    elapse(SHORT_TTL * 0.6)
    assert store.get("attempts") is None
    assert store.incr("attempts", SHORT_TTL) == 1


# -- the contract: concurrency --------------------------------------------------------------


def test_take_from_many_threads_gives_the_value_to_one(store: StateStore) -> None:
    store.put("code", "secret", LONG_TTL)
    results = run_together(lambda _: store.take("code"))
    assert (results.count("secret"), results.count(None)) == (1, THREADS - 1)


def test_swap_from_many_threads_gives_the_value_to_one(store: StateStore) -> None:
    store.put("code", "secret", LONG_TTL)
    results = run_together(lambda _: store.swap("code", "used", LONG_TTL))
    assert (results.count("secret"), results.count("used")) == (1, THREADS - 1)


def test_add_from_many_threads_creates_once(store: StateStore) -> None:
    results = run_together(lambda i: store.add("session", f"v{i}", LONG_TTL))
    assert results.count(True) == 1
    assert store.get("session") == f"v{results.index(True)}"


def test_delete_from_many_threads_deletes_once(store: StateStore) -> None:
    store.put("k", "v", LONG_TTL)
    assert run_together(lambda _: store.delete("k")).count(True) == 1


def test_replace_from_many_threads_with_one_expected_value_succeeds_once(
    store: StateStore,
) -> None:
    store.put("flow", "version-1", LONG_TTL)
    results = run_together(lambda i: store.replace("flow", "version-1", f"v2-{i}", LONG_TTL))
    assert results.count(True) == 1
    assert store.get("flow") == f"v2-{results.index(True)}"


def test_incr_from_many_threads_counts_every_call(store: StateStore) -> None:
    per_thread = 25

    def count(_: int) -> list[int]:
        return [store.incr("attempts", LONG_TTL) for _ in range(per_thread)]

    counts = [n for batch in run_together(count) for n in batch]
    assert sorted(counts) == list(range(1, THREADS * per_thread + 1))


def test_raise_to_from_many_threads_accepts_one_time_step_once(store: StateStore) -> None:
    results = run_together(lambda _: store.raise_to("totp:alice", 56_666_667, LONG_TTL))
    assert results.count(True) == 1


# -- choosing an implementation -------------------------------------------------------------


@pytest.mark.parametrize(
    "url, implementation",
    [
        ("memory://", MemoryStateStore),
        ("redis://127.0.0.1:6379/0", RedisStateStore),
        ("rediss://:secret@redis.example:6380/2", RedisStateStore),
    ],
)
def test_the_url_scheme_picks_the_implementation(url: str, implementation: type) -> None:
    assert isinstance(open_state_store(url), implementation)


@pytest.mark.parametrize("url", ["memcached://host", "mysql://admin:hunter2@db/x", "", "/tmp/x"])
def test_an_unknown_scheme_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_state_store(url)
    assert all(scheme in caught.value.detail for scheme in ("memory://", "redis://", "rediss://"))
    assert "hunter2" not in caught.value.detail


def test_a_malformed_redis_url_is_a_configuration_error_without_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_state_store("redis://:hunter2@127.0.0.1:port/0")
    assert "127.0.0.1" in caught.value.detail
    assert "hunter2" not in str(caught.value)


# -- Redis only: prefixes, failures ---------------------------------------------------------


@pytest.mark.redis
def test_stores_with_different_prefixes_do_not_see_each_other(
    redis_store_factory: Callable[..., StateStore],
) -> None:
    alpha, beta = redis_store_factory(), redis_store_factory()
    alpha.put("flow:abc", "alpha", LONG_TTL)
    assert beta.get("flow:abc") is None
    assert beta.add("flow:abc", "beta", LONG_TTL) is True
    assert alpha.get("flow:abc") == "alpha"


@pytest.mark.redis
def test_keys_are_written_under_the_prefix(
    redis_url: str, redis_store_factory: Callable[..., StateStore]
) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    redis_store_factory(prefix).put("flow:abc", "v", LONG_TTL)
    unprefixed = open_state_store(redis_url, prefix="")
    assert unprefixed.get(f"{prefix}flow:abc") == "v"


@pytest.mark.redis
def test_the_default_prefix_is_twostep(redis_url: str) -> None:
    key = f"test:{uuid.uuid4().hex}"
    store = open_state_store(redis_url)
    store.put(key, "v", LONG_TTL)
    try:
        assert open_state_store(redis_url, prefix="").get(f"twostep:{key}") == "v"
    finally:
        store.delete(key)


CALLS: dict[str, Callable[[StateStore], object]] = {
    "get": lambda store: store.get("k"),
    "put": lambda store: store.put("k", "v", LONG_TTL),
    "add": lambda store: store.add("k", "v", LONG_TTL),
    "delete": lambda store: store.delete("k"),
    "take": lambda store: store.take("k"),
    "swap": lambda store: store.swap("k", "v", LONG_TTL),
    "replace": lambda store: store.replace("k", "old", "v", LONG_TTL),
    "incr": lambda store: store.incr("k", LONG_TTL),
    "raise_to": lambda store: store.raise_to("k", 1, LONG_TTL),
    "ping": lambda store: store.ping(),
}


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers: a hung server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_unreachable_redis_is_service_unavailable_without_the_password(
    closed_port: int, call: Callable[[StateStore], object]
) -> None:
    store = open_state_store(f"redis://:hunter2@127.0.0.1:{closed_port}/15")
    with pytest.raises(ServiceUnavailable) as caught:
        call(store)
    assert f"127.0.0.1:{closed_port}" in caught.value.detail
    assert "hunter2" not in str(caught.value)


def test_a_hung_redis_is_service_unavailable_within_the_timeout(silent_port: int) -> None:
    store = open_state_store(f"redis://127.0.0.1:{silent_port}/15", timeout=0.2)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="Timeout"):
        store.get("k")
    assert time.monotonic() - started < 1.0


# -- memory only: sweeping ------------------------------------------------------------------


def test_memory_store_sweeps_expired_records_nobody_reads_again() -> None:
    clock = FrozenClock()
    store = MemoryStateStore(clock)
    for index in range(100):
        store.put(f"abandoned:{index}", "v", SHORT_TTL)
    clock.advance(SWEEP_INTERVAL)
    store.put("fresh", "v", LONG_TTL)
    assert len(store) == 1


# -- the contract: expiring sets (the active-flows count) -----------------------------------


def test_tracked_counts_members_once(store: StateStore) -> None:
    assert store.tracked("flows:active") == 0
    store.track("flows:active", "a", 60)
    store.track("flows:active", "b", 60)
    store.track("flows:active", "a", 60)  # renewed, not added twice
    assert store.tracked("flows:active") == 2
    store.untrack("flows:active", "a")
    store.untrack("flows:active", "never-there")
    assert store.tracked("flows:active") == 1
    assert store.tracked("flows:other") == 0


def test_tracked_members_expire_on_their_own(store: StateStore, elapse) -> None:
    store.track("flows:active", "short", SHORT_TTL)
    store.track("flows:active", "long", 60)
    elapse(SHORT_TTL + 0.2)
    assert store.tracked("flows:active") == 1


def test_a_tracked_set_refuses_a_ttl_that_is_not_positive(store: StateStore) -> None:
    with pytest.raises(ValueError, match="ttl"):
        store.track("flows:active", "a", 0)


def test_delete_if_removes_only_the_expected_value(store: StateStore) -> None:
    store.put("flow:abc", "v1", LONG_TTL)
    assert store.delete_if("flow:abc", "v0") is False
    assert store.get("flow:abc") == "v1"
    assert store.delete_if("flow:abc", "v1") is True
    assert store.get("flow:abc") is None
    assert store.delete_if("flow:abc", "v1") is False
    assert store.delete_if("never", "") is False


def test_delete_if_from_many_threads_deletes_once(store: StateStore) -> None:
    store.put("flow:abc", "state", LONG_TTL)
    assert sum(run_together(lambda _: store.delete_if("flow:abc", "state"))) == 1
