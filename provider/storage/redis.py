"""The ``redis://``, ``rediss://`` and ``redis+sentinel://`` state store: records shared by every
instance of the provider. Each operation is one native command or one small Lua script, so it is
atomic on the server whatever the number of clients (see ``StateStore`` for the contract).

Every process keeps one bounded pool of connections (``pool_size``); a call waits at most
``timeout`` seconds for a free connection, to connect, and for the answer. Behind Sentinel the
pool asks the sentinels where the primary is whenever it opens a connection, so after a failover
the first call on a connection to the old primary fails (ServiceUnavailable) and the next one
reaches the new primary.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from provider.errors import ConfigurationError, ServiceUnavailable
from provider.storage.sentinel import SENTINEL_SCHEMES, sentinel_client
from provider.storage.state import DEFAULT_POOL_SIZE, DEFAULT_TIMEOUT, require_positive_ttl

P = ParamSpec("P")
R = TypeVar("R")

# Errors that mean "Redis cannot serve us right now" rather than "we sent a bad command".
# ReadOnlyError: a connection still points at a primary that was demoted by a failover.
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError)

# INCR, and start the window when this call created the counter.
INCR_WITH_EXPIRY = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return count
"""

# SET only if the current value is ARGV[1] (a missing key reads as false, never equal).
REPLACE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""

# DEL only if the current value is ARGV[1].
DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# SET ARGV[1] only if it is greater than the current number (or there is none); a current
# value that is not a number fails the script, as int() fails in the memory store.
RAISE_TO = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# An expiring set: a sorted set whose scores are the members' expiry times (server clock, in
# milliseconds). Expired members are dropped whenever the set is written or counted.
TRACK = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"""

TRACKED = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
return redis.call('ZCARD', KEYS[1])
"""


def _unavailable_when_unreachable(
    method: Callable[Concatenate[RedisStateStore, P], R],
) -> Callable[Concatenate[RedisStateStore, P], R]:
    """Turn a connection failure or timeout into ServiceUnavailable, whose detail names the
    server but never its password, so callers handle one error whatever the store."""

    @functools.wraps(method)
    def guarded(store: RedisStateStore, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(store, *args, **kwargs)
        except UNREACHABLE as exc:
            raise ServiceUnavailable(store._describe_failure(exc)) from exc

    return guarded


class RedisStateStore:
    """A ``StateStore`` on one Redis database; every key is written as ``prefix + key``."""

    def __init__(self, client: redis.Redis, prefix: str = "twostep:") -> None:
        self._client = client
        self._prefix = prefix
        self._incr = client.register_script(INCR_WITH_EXPIRY)
        self._replace = client.register_script(REPLACE)
        self._raise_to = client.register_script(RAISE_TO)
        self._delete_if = client.register_script(DELETE_IF)
        self._track = client.register_script(TRACK)
        self._tracked = client.register_script(TRACKED)

    @classmethod
    def from_url(
        cls, url: str, prefix: str = "twostep:", timeout: float = DEFAULT_TIMEOUT,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> RedisStateStore:
        """Connect lazily (the first call connects) with every call bounded by ``timeout``:
        waiting for one of the ``pool_size`` connections, connecting, and reading the answer.

        No retries: a retried GETDEL or INCR whose first reply was lost would apply twice.
        """
        options = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                   "retry": Retry(NoBackoff(), 0), "decode_responses": True}
        try:
            if urlsplit(url).scheme.lower() in SENTINEL_SCHEMES:
                client = sentinel_client(url, pool_size=pool_size, timeout=timeout, **options)
            else:
                pool = redis.BlockingConnectionPool.from_url(url, max_connections=pool_size, timeout=timeout,
                                                             **options)
                client = redis.Redis(connection_pool=pool)
        except ValueError as exc:
            raise ConfigurationError(f"state store URL {_without_credentials(url)}: {exc}") from exc
        return cls(client, prefix)

    @_unavailable_when_unreachable
    def get(self, key: str) -> str | None:
        return self._client.get(self._prefix + key)

    @_unavailable_when_unreachable
    def put(self, key: str, value: str, ttl: float) -> None:
        self._client.set(self._prefix + key, value, px=_milliseconds(ttl))

    @_unavailable_when_unreachable
    def add(self, key: str, value: str, ttl: float) -> bool:
        return bool(self._client.set(self._prefix + key, value, px=_milliseconds(ttl), nx=True))

    @_unavailable_when_unreachable
    def delete(self, key: str) -> bool:
        return self._client.delete(self._prefix + key) > 0

    @_unavailable_when_unreachable
    def take(self, key: str) -> str | None:
        return self._client.getdel(self._prefix + key)

    @_unavailable_when_unreachable
    def swap(self, key: str, value: str, ttl: float) -> str | None:
        return self._client.set(self._prefix + key, value, px=_milliseconds(ttl), get=True)

    @_unavailable_when_unreachable
    def replace(self, key: str, expected: str, value: str, ttl: float) -> bool:
        keys = [self._prefix + key]
        return self._replace(keys=keys, args=[expected, value, _milliseconds(ttl)]) == 1

    @_unavailable_when_unreachable
    def delete_if(self, key: str, expected: str) -> bool:
        return self._delete_if(keys=[self._prefix + key], args=[expected]) == 1

    @_unavailable_when_unreachable
    def incr(self, key: str, ttl: float) -> int:
        return int(self._incr(keys=[self._prefix + key], args=[_milliseconds(ttl)]))

    @_unavailable_when_unreachable
    def raise_to(self, key: str, value: int, ttl: float) -> bool:
        keys = [self._prefix + key]
        return self._raise_to(keys=keys, args=[int(value), _milliseconds(ttl)]) == 1

    @_unavailable_when_unreachable
    def track(self, index: str, member: str, ttl: float) -> None:
        self._track(keys=[self._prefix + index], args=[member, _milliseconds(ttl)])

    @_unavailable_when_unreachable
    def untrack(self, index: str, member: str) -> None:
        self._client.zrem(self._prefix + index, member)

    @_unavailable_when_unreachable
    def tracked(self, index: str) -> int:
        return int(self._tracked(keys=[self._prefix + index]))

    @_unavailable_when_unreachable
    def ping(self) -> None:
        self._client.ping()

    def _describe_failure(self, exc: Exception) -> str:
        """What went wrong and where, for the log: host, port and database, no credentials."""
        pool = self._client.connection_pool
        options = pool.connection_kwargs
        host, port = options.get("host", "localhost"), options.get("port", 6379)
        where = options.get("path") or f"{host}:{port}"
        if hasattr(pool, "service_name"):
            where = f"Sentinel service {pool.service_name}"
        message = str(exc)
        password = options.get("password")
        if password:
            message = message.replace(password, "***")
        return f"Redis at {where} db {options.get('db', 0)}: {type(exc).__name__}: {message}"


def _milliseconds(ttl: float) -> int:
    """PX wants whole milliseconds; round up so a tiny TTL never becomes 0 (an error)."""
    require_positive_ttl(ttl)
    return math.ceil(ttl * 1000)


def _without_credentials(url: str) -> str:
    """scheme://host:port/db: the URL minus user, password and query options."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
