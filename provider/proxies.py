"""Believe X-Forwarded-* headers only from the proxies the operator listed (`trusted_proxies`).

Behind a TLS-terminating load balancer the socket peer is the proxy: without this the
throttle would count every user as one address, and the request would look like plain http.
From anyone else these headers are ignored, so a client cannot choose its own address.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """WSGI middleware. The client is the right-most X-Forwarded-For address that is not a
    trusted proxy; scheme and host come from the nearest proxy's X-Forwarded-Proto/-Host."""

    def __init__(self, app: Callable[..., Any], networks: Sequence[Network]) -> None:
        self.app = app
        self.networks = tuple(networks)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.networks and self._trusted(environ.get("REMOTE_ADDR", "")):
            self._apply(environ)
        return self.app(environ, start_response)

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def _apply(self, environ: dict[str, Any]) -> None:
        chain = [hop.strip() for hop in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        for hop in reversed(chain):
            if not self._trusted(hop):
                environ["REMOTE_ADDR"] = hop
                break
        proto = _last(environ.get("HTTP_X_FORWARDED_PROTO"))
        if proto in ("http", "https"):
            environ["wsgi.url_scheme"] = proto
        host = _last(environ.get("HTTP_X_FORWARDED_HOST"))
        if host:
            environ["HTTP_HOST"] = host


def _last(header: str | None) -> str:
    return header.split(",")[-1].strip().lower() if header else ""
