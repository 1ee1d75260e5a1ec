"""Authlib's authorization server, wired to twostep: grants whose hooks delegate to the
TokenService, PKCE (S256 only) and OpenID Connect as extensions, RFC 7009 and RFC 7662
endpoints."""
from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidRequestError,
    OAuth2Request,
    UnsupportedResponseTypeError,
    grants,
)
from authlib.oauth2.rfc6749.authenticate_client import authenticate_client_secret_basic
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core import OpenIDCode, UserInfo
from authlib.oidc.core.errors import RequestNotSupportedError, RequestURINotSupportedError

from provider.directory import Directory, User
from provider.oidc.claims import user_claims
from provider.oidc.keys import ALGORITHM, SigningKeys
from provider.oidc.tokens import AccessToken, Authorization, RefreshToken, TokenService
from provider.settings import ClientSettings, Settings


@dataclass(frozen=True)
class FinishedLogin:
    """The resource owner of an authorization response: who signed in, how and when."""

    user_id: str
    grant_id: str
    auth_time: int
    amr: tuple[str, ...]
    acr: str
    sid: str


class Client(ClientMixin):
    """A relying party from the settings (RFC 6749 2)."""

    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings

    def get_client_id(self) -> str:
        return self.settings.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Never guess among several: RFC 6749 3.1.2.3.
        uris = self.settings.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str) -> str:
        allowed = self.settings.scopes
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.settings.redirect_uris  # exact match, RFC 9700 2.1

    def check_client_secret(self, client_secret: str) -> bool:
        secret = self.settings.client_secret
        return secret is not None and hmac.compare_digest(
            secret.get_secret_value().encode(), (client_secret or "").encode("utf-8", "surrogatepass"))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.settings.is_public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")

    @property
    def requires_pkce(self) -> bool:
        return self.settings.is_public or self.settings.require_pkce


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    AUTHORIZATION_CODE_LENGTH = 43  # 43 characters of 62 possible: 256 bits

    @staticmethod
    def validate_authorization_redirect_uri(request: OAuth2Request, client: Client) -> str:
        # Authlib echoes a refused redirect_uri into error_description, which RFC 6749 5.2 limits
        # to printable ASCII (a control character made that a ValueError): refuse without the echo.
        uri = request.payload.redirect_uri
        if uri and not client.check_redirect_uri(uri):
            raise InvalidRequestError("'redirect_uri' is not registered for this client.")
        return grants.AuthorizationCodeGrant.validate_authorization_redirect_uri(request, client)

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        self.server.save_code(code, request)

    def query_authorization_code(self, code: str, client: Client):
        return self.server.tokens.redeem_code(code, client.get_client_id())

    def delete_authorization_code(self, authorization_code) -> None:
        pass  # already consumed by query_authorization_code, atomically

    def authenticate_user(self, authorization_code) -> User | None:
        return self.server.active_user(authorization_code.authorization.user_id)

    def generate_token(self, user, scope, grant_type=None, expires_in=None, include_refresh_token=True):
        authorization = self.request.authorization_code.authorization
        return self.server.tokens.issue(authorization, include_refresh_token=include_refresh_token)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation, RFC 9700 4.14.2

    def authenticate_refresh_token(self, refresh_token: str) -> Authorization | None:
        return self.server.tokens.redeem_refresh_token(refresh_token)

    def authenticate_user(self, refresh_token: Authorization) -> User | None:
        return self.server.active_user(refresh_token.user_id)

    def revoke_old_credential(self, refresh_token: Authorization) -> None:
        pass  # used up by authenticate_refresh_token

    def generate_token(self, user, scope, grant_type=None, expires_in=None, include_refresh_token=True):
        authorization = self.request.refresh_token
        if scope and scope != authorization.scope:  # RFC 6749 6: a narrower scope may be asked
            authorization = replace(authorization, scope=scope)
        return self.server.tokens.issue(authorization, include_refresh_token=True)


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only (RFC 9700 2.1.1); required for public clients and, unless a client
    opts out with `require_pkce: false`, for confidential ones too."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if grant.request.client.requires_pkce and not data.get("code_challenge"):
            raise InvalidRequestError("This client must use PKCE: 'code_challenge' is missing.")
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be 'S256'.")
        super().validate_code_challenge(grant, redirect_uri)


class NoRequestObjects:
    """OIDC Core 6: request objects are not supported; say so in the standard way."""

    def __call__(self, grant) -> None:
        grant.register_hook("after_validate_authorization_request_payload", self.refuse)

    @staticmethod
    def refuse(grant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if "request" in data:
            raise RequestNotSupportedError()
        if "request_uri" in data:
            raise RequestURINotSupportedError()


class TwostepOpenIDCode(OpenIDCode):
    """ID tokens (OIDC Core 2) signed with the current key, carrying auth_time, acr, amr, sid."""

    def __init__(self, server: TwostepAuthorizationServer) -> None:
        super().__init__(require_nonce=False)
        self._server = server

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return False  # nonces are the RP's replay check; they are echoed, not stored

    def resolve_client_private_key(self, client: Client):
        return self._server.keys.current

    def get_client_algorithm(self, client: Client) -> str:
        return ALGORITHM

    def get_encode_header(self, client: Client) -> dict[str, str]:
        return {"alg": ALGORITHM, "kid": self._server.keys.current.kid, "typ": "JWT"}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        now = int(self._server.clock.now())
        return {"iss": self._server.issuer, "aud": client.get_client_id(), "iat": now,
                "exp": now + self._server.settings.tokens.id_token_ttl}

    def get_authorization_code_claims(self, authorization_code) -> dict[str, Any]:
        return {**super().get_authorization_code_claims(authorization_code),
                "sid": authorization_code.authorization.sid}

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        return UserInfo(user_claims(user, scope, self._server.groups_claim))


def _client_secret_basic(query_client: Callable[[str], Client | None], request: OAuth2Request) -> Client | None:
    """RFC 6749 2.3.1. Authlib's header parser raises ValueError on a malformed header (not
    base64, not UTF-8, nothing after "Basic"): that client simply failed to authenticate."""
    try:
        extract_basic_authorization(request.headers)
    except ValueError:
        return None
    return authenticate_client_secret_basic(query_client, request)


class TwostepRevocationEndpoint(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string: str, token_type_hint: str | None):
        return self.server.find_token(token_string, token_type_hint)

    def revoke_token(self, token, request) -> None:
        self.server.revoke(token)


class TwostepIntrospectionEndpoint(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string: str, token_type_hint: str | None):
        return self.server.find_token(token_string, token_type_hint)

    def check_permission(self, token, client: Client, request) -> bool:
        return token.check_client(client)  # a client may only introspect its own tokens

    def introspect_token(self, token) -> dict[str, Any]:
        return self.server.introspection(token)


class TwostepIssuerParameter(IssuerParameter):
    def __init__(self, issuer: str) -> None:
        self._issuer = issuer

    def get_issuer(self) -> str:
        return self._issuer


class TwostepAuthorizationServer(AuthorizationServer):
    def __init__(self, settings: Settings, tokens: TokenService, keys: SigningKeys, directory: Directory,
                 clock) -> None:
        super().__init__()
        self.settings = settings
        self.issuer = settings.issuer
        self.tokens = tokens
        self.keys = keys
        self.directory = directory
        self.clock = clock
        self._clients = {c.client_id: Client(c) for c in settings.clients}
        self.groups_claim: str | None = getattr(settings.directory, "groups_claim", None)
        self.register_grant(AuthorizationCodeGrant,
                            [S256CodeChallenge(required=True), NoRequestObjects(), TwostepOpenIDCode(self)])
        self.register_grant(RefreshTokenGrant)
        self.register_endpoint(TwostepRevocationEndpoint)
        self.register_endpoint(TwostepIntrospectionEndpoint)
        self.register_extension(TwostepIssuerParameter(self.issuer))
        self.register_client_auth_method("client_secret_basic", _client_secret_basic)

    def init_app(self, app, query_client=None, save_token=None) -> None:
        super().init_app(app, query_client=self.query_client, save_token=self.save_token)

    def query_client(self, client_id: str) -> Client | None:
        return self._clients.get(client_id) if isinstance(client_id, str) else None

    def get_authorization_grant(self, request: OAuth2Request):
        response_type = request.payload.response_type or ""
        if invalid_error_characters(response_type):
            # Authlib echoes a refused response_type into error_description, which RFC 6749 5.2
            # limits to printable ASCII (building it raised ValueError): refuse without the echo.
            raise UnsupportedResponseTypeError(response_type, redirect_uri=self._error_redirect_uri(request))
        return super().get_authorization_grant(request)

    def _error_redirect_uri(self, request: OAuth2Request) -> str | None:
        """Where an authorization error may be sent: a known client's registered URI only
        (RFC 6749 4.1.2.1), as Authlib decides it."""
        client = self.query_client(request.payload.client_id)
        if client is None:
            return None
        uri = request.payload.redirect_uri
        if not uri:
            return client.get_default_redirect_uri()
        return uri if client.check_redirect_uri(uri) else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        pass  # the TokenService stored it when it was issued

    def active_user(self, user_id: str) -> User | None:
        user = self.directory.get(user_id)
        return None if user is None or user.disabled else user

    def save_code(self, code: str, request: OAuth2Request) -> None:
        login: FinishedLogin = request.user
        data = request.payload.data
        authorization = Authorization(
            grant_id=login.grant_id, client_id=request.client.get_client_id(), user_id=login.user_id,
            scope=request.scope, auth_time=login.auth_time, amr=login.amr, acr=login.acr, sid=login.sid,
            nonce=data.get("nonce"))
        redirect_uri = data.get("redirect_uri") or request.client.get_default_redirect_uri()
        self.tokens.store_code(code, authorization, redirect_uri, data.get("code_challenge"),
                               data.get("code_challenge_method"))

    def find_token(self, token: str, hint: str | None) -> AccessToken | RefreshToken | None:
        if hint != "refresh_token" and (found := self.tokens.validate_access_token(token)):
            return found
        return self.tokens.find_refresh_token(token)

    def revoke(self, token: AccessToken | RefreshToken) -> None:
        # RFC 7009 2.1: revoking a refresh token also revokes the access tokens of its grant.
        if isinstance(token, RefreshToken):
            self.tokens.revoke_family(token.authorization.grant_id)
        else:
            self.tokens.revoke_access_token(token)

    def introspection(self, token: AccessToken | RefreshToken) -> dict[str, Any]:
        if isinstance(token, RefreshToken):
            a = token.authorization
            return {"active": True, "token_type": "refresh_token", "client_id": a.client_id, "sub": a.user_id,
                    "scope": a.scope, "iss": self.issuer}
        claims = token.claims
        return {"active": True, "token_type": "access_token", "client_id": claims["client_id"],
                "sub": claims["sub"], "scope": claims["scope"], "exp": claims["exp"], "iat": claims["iat"],
                "iss": claims["iss"], "aud": claims["aud"], "jti": token.jti}
