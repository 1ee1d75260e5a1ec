"""Settings that work but deserve an operator's look: printed by check-config, logged at start."""
from __future__ import annotations

from urllib.parse import urlsplit

from provider.settings.models import KeycloakDirectorySettings, Settings


def warnings_for(settings: Settings) -> list[str]:
    lines = _production(settings) + _keycloak(settings)
    lines += [w for channel in settings.parsed_channels.values() for w in channel.warnings()]
    used = {client.flow for client in settings.clients}
    lines += [f"flow {name!r} is used by no client" + (" (reachable by its acr)" if flow.acr else "")
              for name, flow in sorted(settings.parsed_flows.items()) if name not in used]
    return lines


def _production(settings: Settings) -> list[str]:
    """Settings that are fine on a laptop and unsafe in front of real accounts."""
    lines = []
    host = urlsplit(settings.issuer).hostname or ""
    if not settings.is_https and host not in ("localhost", "127.0.0.1", "::1"):
        lines.append("issuer: http on a non-loopback host; use https in production")
    for name, secret in (("secret_key", settings.secret_key), ("encryption_key", settings.encryption_key)):
        if secret is not None and len(secret.get_secret_value()) < 43:
            lines.append(f"{name}: shorter than 43 characters (256 bits as base64); use secrets.token_urlsafe(32)")
    lines += [f"clients.{i}.require_pkce: false lets a stolen code be redeemed without the verifier"
              for i, client in enumerate(settings.clients) if not client.require_pkce and not client.is_public]
    if not settings.lockout.threshold:
        lines.append("lockout.threshold: 0 disables per-user throttling of password and code guessing")
    if not settings.lockout.ip_threshold:
        lines.append("lockout.ip_threshold: 0 disables per-address throttling (password spraying)")
    return lines


def _keycloak(settings: Settings) -> list[str]:
    directory = settings.directory
    if not isinstance(directory, KeycloakDirectorySettings):
        return []
    host = urlsplit(directory.url).hostname or ""
    if directory.url.startswith("http://") and host not in ("localhost", "127.0.0.1", "::1"):
        return ["directory.url: http on a non-loopback host sends users' passwords and the client secret"
                " unencrypted; use https"]
    return []
