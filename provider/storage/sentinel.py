"""Redis behind Sentinel: ``redis+sentinel://[:password@]host:26379[,host:26379...]/service[/db]``.

The URL names the sentinels, not the primary: the sentinels are asked where the primary of
``service`` is each time a connection is opened, so a failover needs no change of settings.
``password`` (and a user, for Redis ACLs) is for the Redis servers; sentinels that require their
own password take it as ``?sentinel_password=...``. No other query option is accepted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.sentinel import Sentinel, SentinelConnectionPool

SENTINEL_SCHEMES = ("redis+sentinel",)
DEFAULT_SENTINEL_PORT = 26379


class BlockingSentinelConnectionPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """The sentinel pool, waiting up to ``timeout`` for a free connection (like the plain
    ``redis://`` pool) instead of failing at once when all ``max_connections`` are busy."""


def sentinel_client(url: str, *, pool_size: int, timeout: float, **options: Any) -> redis.Redis:
    """A client of the primary of the URL's service. Raises ValueError on a malformed URL."""
    target = parse_sentinel_url(url)
    sentinel_options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if "retry" in options:
        sentinel_options["retry"] = options["retry"]
    if target.sentinel_password:
        sentinel_options["password"] = target.sentinel_password
    sentinel = Sentinel(target.sentinels, sentinel_kwargs=sentinel_options)
    return sentinel.master_for(
        target.service, connection_pool_class=BlockingSentinelConnectionPool, max_connections=pool_size,
        timeout=timeout, db=target.db, username=target.username, password=target.password, **options)


@dataclass(frozen=True)
class SentinelTarget:
    """What a ``redis+sentinel://`` URL says."""

    sentinels: list[tuple[str, int]]
    service: str
    db: int
    username: str | None
    password: str | None
    sentinel_password: str | None


def parse_sentinel_url(url: str) -> SentinelTarget:
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":") if credentials else ("", "", "")
    sentinels = [_host_port(item) for item in hosts.split(",") if item.strip()]
    if not sentinels:
        raise ValueError("expected at least one sentinel, e.g. redis+sentinel://host:26379/mymaster/0")
    path = [segment for segment in parts.path.split("/") if segment]
    if not path or len(path) > 2:
        raise ValueError("expected the service name and optionally the database after the sentinels,"
                         " e.g. /mymaster/0")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"the database must be a number, found {path[1]!r}")
    query = parse_qs(parts.query)
    unknown = set(query) - {"sentinel_password"}
    if unknown:
        raise ValueError(f"unknown option {sorted(unknown)[0]!r}; the only option is sentinel_password")
    return SentinelTarget(sentinels, unquote(path[0]), int(path[1]) if len(path) == 2 else 0,
                          unquote(username) or None, unquote(password) or None,
                          query.get("sentinel_password", [None])[0])


def _host_port(item: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port``; the port defaults to 26379."""
    item = item.strip()
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        port = rest.removeprefix(":")
    elif item.count(":") == 1:
        host, port = item.split(":")
    else:
        host, port = item, ""
    if not port:
        return host, DEFAULT_SENTINEL_PORT
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port for each sentinel, found {item!r}")
    return host, int(port)
