"""X-Forwarded-* are believed from trusted proxies only."""
from __future__ import annotations

import ipaddress

import pytest

from provider.proxies import TrustedProxies


def seen(networks, remote, **headers):
    captured = {}

    def app(environ, start_response):
        captured.update(environ)
        return [b""]

    environ = {"REMOTE_ADDR": remote, "wsgi.url_scheme": "http", "HTTP_HOST": "internal:8080",
               **{f"HTTP_{k.upper()}": v for k, v in headers.items()}}
    TrustedProxies(app, [ipaddress.ip_network(n) for n in networks])(environ, lambda *a: None)
    return captured["REMOTE_ADDR"], captured["wsgi.url_scheme"], captured["HTTP_HOST"]


@pytest.mark.parametrize(("networks", "remote", "forwarded_for", "expected"), [
    ([], "10.0.0.5", "203.0.113.9", "10.0.0.5"),                          # nothing trusted
    (["10.0.0.0/8"], "198.51.100.7", "203.0.113.9", "198.51.100.7"),      # not from a proxy
    (["10.0.0.0/8"], "10.0.0.5", "203.0.113.9", "203.0.113.9"),
    (["10.0.0.0/8"], "10.0.0.5", "1.2.3.4, 203.0.113.9, 10.0.0.9", "203.0.113.9"),  # spoofed left part ignored
    (["10.0.0.0/8"], "10.0.0.5", "junk", "junk"),
    (["10.0.0.0/8"], "10.0.0.5", "", "10.0.0.5"),
])
def test_client_address(networks, remote, forwarded_for, expected):
    assert seen(networks, remote, x_forwarded_for=forwarded_for)[0] == expected


def test_scheme_and_host_from_a_trusted_proxy_only():
    assert seen(["127.0.0.1/32"], "127.0.0.1", x_forwarded_proto="https", x_forwarded_host="login.example.com")[1:] \
        == ("https", "login.example.com")
    assert seen(["127.0.0.1/32"], "192.0.2.1", x_forwarded_proto="https", x_forwarded_host="evil.example")[1:] \
        == ("http", "internal:8080")
