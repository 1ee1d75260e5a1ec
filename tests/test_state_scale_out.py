"""The state store for several instances: flows counted while active (the expiring-set contract
itself is in test_state_store.py), a bounded connection pool, and Redis behind Sentinel,
including a failover."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from provider.clock import SystemClock
from provider.errors import ConfigurationError, ServiceUnavailable
from provider.login.state import ACTIVE_FLOWS, FlowStore
from provider.storage.redis import RedisStateStore
from provider.storage.sentinel import parse_sentinel_url
from provider.storage.state import open_state_store
from tests.support.processes import RedisServer, free_port, wait_until


@pytest.mark.parametrize("url", ["memory://", pytest.param("redis", marks=pytest.mark.redis)])
def test_flows_are_active_from_creation_to_finish(url: str, request: pytest.FixtureRequest) -> None:
    store = open_state_store("memory://") if url == "memory://" else request.getfixturevalue("redis_store_factory")()
    flows = FlowStore(store, SystemClock())
    first = flows.create(flow="default", client_id="c", browser="b", request={}, expires_at=time.time() + 60)
    flows.create(flow="default", client_id="c", browser="b", request={}, expires_at=time.time() + 60)
    assert store.tracked(ACTIVE_FLOWS) == 2
    assert flows.finish(first) is True
    assert flows.finish(first) is False  # the loser of a race does not count it twice
    assert store.tracked(ACTIVE_FLOWS) == 1
    assert store.get(f"flow:{first.id}") is None  # nothing left behind


# -- the connection pool ----------------------------------------------------------------------


@pytest.mark.redis
def test_a_call_waits_for_a_free_connection_at_most_the_timeout(redis_url: str) -> None:
    store = open_state_store(redis_url, prefix="test:pool:", timeout=0.3, pool_size=1)
    assert isinstance(store, RedisStateStore)
    store.ping()
    pool = store._client.connection_pool
    held = pool.get_connection()  # the only connection, busy elsewhere
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable):
        store.get("k")
    assert 0.25 < time.monotonic() - started < 2.0
    pool.release(held)
    store.ping()


def test_the_pool_is_sized_from_the_call(redis_url: str = "redis://127.0.0.1:1/0") -> None:
    store = open_state_store(redis_url, timeout=0.5, pool_size=7)
    assert store._client.connection_pool.max_connections == 7
    assert store._client.connection_pool.connection_kwargs["socket_timeout"] == 0.5


# -- Sentinel ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "sentinels", "service", "db", "password"),
    [
        ("redis+sentinel://h1:26379,h2:26380/mymaster/2", [("h1", 26379), ("h2", 26380)], "mymaster", 2, None),
        ("redis+sentinel://:s3cret@sentinel.example/primary", [("sentinel.example", 26379)], "primary", 0, "s3cret"),
        ("redis+sentinel://[::1]:26379/mymaster/0", [("::1", 26379)], "mymaster", 0, None),
    ],
)
def test_sentinel_urls(url: str, sentinels: list, service: str, db: int, password: str | None) -> None:
    target = parse_sentinel_url(url)
    assert (target.sentinels, target.service, target.db, target.password) == (sentinels, service, db, password)


@pytest.mark.parametrize("url", [
    "redis+sentinel://:hunter2@/mymaster/0",
    "redis+sentinel://:hunter2@h1:26379/",
    "redis+sentinel://:hunter2@h1:26379/mymaster/zero",
    "redis+sentinel://:hunter2@h1:port/mymaster",
    "redis+sentinel://:hunter2@h1:26379/mymaster/0?ssl=true",
])
def test_a_malformed_sentinel_url_is_a_configuration_error_without_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_state_store(url)
    assert "hunter2" not in str(caught.value) and "hunter2" not in caught.value.detail


def _sentinel(tmp_path: Path, primary: RedisServer, down_after_ms: int = 100) -> RedisServer:
    port = free_port()
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / f"sentinel-{port}.conf"  # Sentinel rewrites its file: one of its own
    config.write_text(f"port {port}\nbind 127.0.0.1\n"
                      f"sentinel monitor mymaster 127.0.0.1 {primary.port} 1\n"
                      f"sentinel down-after-milliseconds mymaster {down_after_ms}\n"
                      "sentinel failover-timeout mymaster 2000\n")
    return RedisServer(tmp_path, port=port, extra=(str(config), "--sentinel")).start()


@pytest.mark.redis
def test_the_store_finds_the_primary_through_sentinel_and_follows_a_failover(tmp_path: Path) -> None:
    primary = RedisServer(tmp_path / "primary", extra=("--repl-diskless-sync-delay", "0")).start()
    replica = RedisServer(tmp_path / "replica", extra=("--replicaof", "127.0.0.1", str(primary.port))).start()
    sentinel = _sentinel(tmp_path / "sentinel", primary)
    try:
        store = open_state_store(f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster/3", prefix="t:", timeout=0.5)
        store.put("k", "before", 60)
        assert store.get("k") == "before"
        wait_until(lambda: RedisStateStore.from_url(replica.url.replace("/0", "/3"), prefix="t:").get("k")
                   == "before", 5, "replication")
        primary.kill()

        def written_after_failover() -> bool:
            try:
                store.put("k", "after", 60)
            except ServiceUnavailable:
                return False  # the old primary is gone; the sentinel has not promoted yet
            return True

        wait_until(written_after_failover, 15, "failover to the replica", interval=0.2)
        assert store.get("k") == "after"
        assert store._client.connection_pool.master_address == ("127.0.0.1", replica.port)
    finally:
        for server in (sentinel, replica, primary):
            server.stop()
