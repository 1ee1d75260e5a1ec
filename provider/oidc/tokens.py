"""Authorization codes, access tokens and refresh tokens, kept in the state store.

Everything issued from one login to one client is a family (`grant_id`): the code, every
access token and every refresh token that descend from it. Replaying a used code or a
rotated refresh token revokes the whole family (RFC 6749 4.1.2, RFC 9700 4.14.2).

Keys: `code:<sha256>` and `rt:<sha256>` (the secrets themselves are never stored),
`at:<jti>` for each live access token, `grant:<grant_id>` while the family is alive.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from joserfc.errors import JoseError

from provider.audit import audit
from provider.clock import Clock
from provider.oidc.keys import SigningKeys
from provider.settings import TokenSettings
from provider.storage.state import StateStore

# A used code is remembered this long, so that a replay of a leaked code revokes what the
# first redemption produced (RFC 6749 4.1.2).
USED_CODE_MEMORY = 3600


@dataclass(frozen=True)
class Authorization:
    """What one completed login granted one client; shared by a family of tokens."""

    grant_id: str
    client_id: str
    user_id: str
    scope: str
    auth_time: int
    amr: tuple[str, ...]
    acr: str
    sid: str
    nonce: str | None = None

    # Authlib's TokenMixin / refresh-token credential interface.
    def check_client(self, client: Any) -> bool:
        return client.get_client_id() == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Authorization:
        return cls(**{**raw, "amr": tuple(raw["amr"])})


@dataclass(frozen=True)
class AuthorizationCode:
    """Authlib's AuthorizationCodeMixin over an Authorization (OIDC Core 3.1.2.5)."""

    authorization: Authorization
    redirect_uri: str
    code_challenge: str | None
    code_challenge_method: str | None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.authorization.scope

    def get_nonce(self) -> str | None:
        return self.authorization.nonce

    def get_auth_time(self) -> int:
        return self.authorization.auth_time

    def get_acr(self) -> str:
        return self.authorization.acr

    def get_amr(self) -> list[str]:
        return list(self.authorization.amr)


class _Live:
    """Authlib's TokenMixin checks: tokens are only ever found live (expired and revoked
    ones are not found at all), so both answers are fixed."""

    def is_expired(self) -> bool:
        return False

    def is_revoked(self) -> bool:
        return False


@dataclass(frozen=True)
class AccessToken(_Live):
    """A valid access token's claims (RFC 9068) and the family it belongs to."""

    jti: str
    claims: dict[str, Any]

    @property
    def grant_id(self) -> str:
        return self.claims["grant_id"]

    @property
    def scope(self) -> str:
        return self.claims.get("scope", "")

    def check_client(self, client: Any) -> bool:
        return client.get_client_id() == self.claims["client_id"]


@dataclass(frozen=True)
class RefreshToken(_Live):
    """A live refresh token, as found by introspection or revocation."""

    digest: str
    authorization: Authorization

    def check_client(self, client: Any) -> bool:
        return self.authorization.check_client(client)


class TokenService:
    def __init__(
        self, store: StateStore, keys: SigningKeys, clock: Clock, settings: TokenSettings, issuer: str
    ) -> None:
        self._store = store
        self._keys = keys
        self._clock = clock
        self._settings = settings
        self._issuer = issuer

    # -- authorization codes ---------------------------------------------------------

    def store_code(self, code: str, authorization: Authorization, redirect_uri: str, challenge: str | None,
                   method: str | None) -> None:
        record = {"authorization": asdict(authorization), "redirect_uri": redirect_uri,
                  "code_challenge": challenge, "code_challenge_method": method}
        self._store.put(f"code:{_digest(code)}", json.dumps(record), self._settings.code_ttl)

    def redeem_code(self, code: str, client_id: str) -> AuthorizationCode | None:
        """Take the code once. A second use finds its tombstone and revokes the family."""
        record = self._consume(f"code:{_digest(code)}", USED_CODE_MEMORY)
        if record is None:
            return None
        authorization = Authorization.from_dict(record["authorization"])
        if authorization.client_id != client_id:
            return None
        return AuthorizationCode(authorization, record["redirect_uri"], record["code_challenge"],
                                 record["code_challenge_method"])

    # -- tokens ----------------------------------------------------------------------

    def issue(self, authorization: Authorization, *, include_refresh_token: bool) -> dict[str, Any]:
        now = int(self._clock.now())
        jti = secrets.token_urlsafe(16)
        ttl = self._settings.access_token_ttl
        claims = {
            "iss": self._issuer, "sub": authorization.user_id, "aud": authorization.client_id,
            "client_id": authorization.client_id, "exp": now + ttl, "iat": now, "jti": jti,
            "scope": authorization.scope, "sid": authorization.sid, "auth_time": authorization.auth_time,
            "acr": authorization.acr, "amr": list(authorization.amr), "grant_id": authorization.grant_id,
        }
        self._store.put(f"grant:{authorization.grant_id}", "1", self._settings.refresh_token_ttl)
        self._store.put(f"at:{jti}", authorization.grant_id, ttl)
        # RFC 9068 2.1: typ "at+jwt", so an access token is never mistaken for an ID token.
        token = {"access_token": self._keys.sign(claims, typ="at+jwt"), "token_type": "Bearer",
                 "expires_in": ttl, "scope": authorization.scope}
        if include_refresh_token:
            refresh = secrets.token_urlsafe(32)
            self._store.put(f"rt:{_digest(refresh)}", authorization.to_json(), self._settings.refresh_token_ttl)
            token["refresh_token"] = refresh
        return token

    def redeem_refresh_token(self, token: str) -> Authorization | None:
        """Rotate: the token is used up here; presenting it again revokes the family."""
        record = self._consume(f"rt:{_digest(token)}", self._settings.refresh_token_ttl)
        if record is None:
            return None
        authorization = Authorization.from_dict({k: v for k, v in record.items() if k != "used"})
        return authorization if self._family_alive(authorization.grant_id) else None

    def find_refresh_token(self, token: str) -> RefreshToken | None:
        digest = _digest(token)
        text = self._store.get(f"rt:{digest}")
        if text is None:
            return None
        record = json.loads(text)
        if record.get("used") or not self._family_alive(record["grant_id"]):
            return None
        return RefreshToken(digest, Authorization.from_dict(record))

    def validate_access_token(self, token: str) -> AccessToken | None:
        """The token's claims if it is ours, unexpired and not revoked; else None."""
        if not token or len(token) > 8192:
            return None
        try:
            decoded = self._keys.verify(token)
        except (JoseError, ValueError):
            return None
        claims = decoded.claims
        if (decoded.header.get("typ") != "at+jwt" or claims.get("iss") != self._issuer
                or not isinstance(claims.get("exp"), int) or claims["exp"] <= self._clock.now()):
            return None
        jti = claims.get("jti")
        if not isinstance(jti, str) or self._store.get(f"at:{jti}") is None:
            return None
        if not self._family_alive(claims.get("grant_id", "")):
            return None
        return AccessToken(jti, claims)

    def revoke_access_token(self, token: AccessToken) -> None:
        self._store.delete(f"at:{token.jti}")

    def revoke_family(self, grant_id: str) -> None:
        """Every token of the family stops working (each checks `grant:<id>`)."""
        self._store.delete(f"grant:{grant_id}")

    # -- internals -------------------------------------------------------------------

    def _consume(self, key: str, remember: float) -> dict[str, Any] | None:
        """Mark a one-time record used (compare-and-set) and return it. Finding it used, or
        losing the race to mark it, means the secret was presented twice: revoke the family."""
        text = self._store.get(key)
        if text is None:
            return None
        record = json.loads(text)
        authorization = record.get("authorization", record)
        # The tombstone keeps only what a replay needs: whose family to revoke, and for the audit.
        used = json.dumps({"used": True, **{k: authorization[k] for k in ("grant_id", "user_id", "client_id")}})
        if record.get("used") or not self._store.replace(key, text, used, remember):
            self.revoke_family(authorization["grant_id"])
            audit("token.reuse_detected", user_id=authorization["user_id"], client_id=authorization["client_id"],
                  reason=key.split(":")[0] + " presented twice; its grant is revoked", outcome="revoked")
            return None
        return record

    def _family_alive(self, grant_id: str) -> bool:
        return bool(grant_id) and self._store.get(f"grant:{grant_id}") is not None


def new_grant_id() -> str:
    return secrets.token_urlsafe(16)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()

