"""Keycloak's HTTP interfaces as twostep uses them, for one realm: the OpenID Connect token and
logout endpoints (as a confidential client, client_secret_post) and the admin REST API (as
that client's service account). Shared by the Keycloak directory and enrolment store.

The service account's access token is cached until shortly before it expires, and renewed
once when the admin API refuses it anyway (revoked, or Keycloak restarted with new keys).
Every failure becomes one of twostep's errors: Keycloak unreachable, too slow or failing (5xx,
429) is ServiceUnavailable; a refused client or a missing admin role is ConfigurationError.
Token endpoint errors are told apart by ``error`` and ``error_description``, never by the
HTTP status: Keycloak 26.6 moved a wrong password from 401 to 400 (upgrading guide 26.6.0).
"""
from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import quote

import requests

from provider.clock import Clock
from provider.errors import (
    AccountDisabled,
    AccountSetupIncomplete,
    ConfigurationError,
    InvalidCredentials,
    ServiceUnavailable,
    TwostepError,
)

log = logging.getLogger(__name__)

# A cached service-account token is renewed this long before it expires (at most half its life).
TOKEN_RENEWAL_MARGIN = 30.0
WRONG_CREDENTIALS = "wrong username or password"
ROLES_HINT = ("give the client's service account the realm-management roles view-users and query-users"
              " (and manage-users when enrolments are kept in Keycloak)")

# Keycloak's error_description for invalid_grant at the password grant (Keycloak 26:
# authenticators/directgrant/ValidateUsername.java, ValidatePassword.java and
# protocol/oidc/grants/ResourceOwnerPasswordCredentialsGrantType.java).
_GRANT_ERRORS: dict[str, type[TwostepError]] = {
    "Account disabled": AccountDisabled,
    "Account is not fully set up": AccountSetupIncomplete,
}


def segment(value: str) -> str:
    """One path segment of the admin API (user ids of federated users contain ':')."""
    return quote(value, safe="")


class KeycloakApi:
    """Thread-safe: one HTTP session per thread, a lock around the cached service-account token."""

    def __init__(self, url: str, realm: str, client_id: str, client_secret: str, *, clock: Clock,
                 timeout: float = 5.0, verify: bool | str = True) -> None:
        base = url.rstrip("/")
        self.description = f"Keycloak realm {realm!r} at {base}"
        self._oidc = f"{base}/realms/{segment(realm)}/protocol/openid-connect"
        self._admin = f"{base}/admin/realms/{segment(realm)}"
        self._client = {"client_id": client_id, "client_secret": client_secret}
        self._clock = clock
        self._timeout = timeout
        self._verify = verify
        self._local = threading.local()
        self._token_lock = threading.Lock()
        self._token: str | None = None
        self._token_renew_at = 0.0

    def __repr__(self) -> str:
        return f"KeycloakApi({self.description}, client {self._client['client_id']!r})"

    # -- OpenID Connect ----------------------------------------------------------------------

    def password_grant(self, username: str, password: str) -> dict[str, Any]:
        """The token response for a right password (RFC 6749 4.3); raises InvalidCredentials,
        AccountDisabled, AccountSetupIncomplete, ConfigurationError or ServiceUnavailable."""
        return self._token_request({"grant_type": "password", "username": username, "password": password})

    def logout(self, refresh_token: str | None) -> None:
        """End the session a password check opened in Keycloak (its logout endpoint, legacy form:
        refresh_token with client authentication, 204). Best effort: on failure the session
        ends by Keycloak's own idle timeout, which is logged."""
        if not refresh_token:
            return
        try:
            response = self._send("POST", f"{self._oidc}/logout", data={**self._client, "refresh_token": refresh_token})
        except ServiceUnavailable as error:
            log.warning("Keycloak session not ended after the password check: %s", error.detail)
            return
        if response.status_code not in (200, 204):
            log.warning("Keycloak session not ended after the password check: HTTP %d %s",
                        response.status_code, _error_text(response))

    # -- admin REST API ----------------------------------------------------------------------

    def admin_get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET /admin/realms/{realm}{path}: the decoded JSON, or None when Keycloak says 404."""
        response = self._admin_call("GET", path, params=params)
        return None if response is None else _json(response, self.description)

    def admin_put(self, path: str, body: dict[str, Any]) -> bool:
        """PUT /admin/realms/{realm}{path}: True when done, False when Keycloak says 404."""
        return self._admin_call("PUT", path, json=body) is not None

    def _admin_call(self, method: str, path: str, **kwargs: Any) -> requests.Response | None:
        for renew in (False, True):
            headers = {"Authorization": f"Bearer {self._service_token(renew)}"}
            response = self._send(method, self._admin + path, headers=headers, **kwargs)
            if response.status_code != 401:
                break
        status = response.status_code
        if status == 404:
            return None
        if status == 401:
            raise ConfigurationError(f"{self.description} refused the service account's fresh token for {method}"
                                     f" {path} (HTTP 401): check the client's service account and the token's audience")
        if status == 403:
            raise ConfigurationError(f"{self.description} refused {method} {path} (HTTP 403): {ROLES_HINT}")
        if status >= 500 or status == 429:
            raise ServiceUnavailable(f"{self.description} failed {method} {path}: HTTP {status}")
        if status >= 400:
            raise ConfigurationError(f"{self.description} refused {method} {path}: HTTP {status} "
                                     f"{_error_text(response)}")
        return response

    def _service_token(self, renew: bool) -> str:
        """The service account's access token (RFC 6749 4.4), shared by all threads until
        shortly before it expires. Fetched outside the lock: when Keycloak hangs, threads time
        out side by side instead of one after the other."""
        with self._token_lock:
            if self._token and not renew and self._clock.now() < self._token_renew_at:
                return self._token
        asked_at = self._clock.now()
        answer = self._token_request({"grant_type": "client_credentials"})
        token, lifespan = answer.get("access_token"), answer.get("expires_in", 60)
        if not isinstance(token, str) or not isinstance(lifespan, int | float):
            raise ServiceUnavailable(f"{self.description} answered the token request without a token")
        with self._token_lock:
            self._token = token
            self._token_renew_at = asked_at + lifespan - min(TOKEN_RENEWAL_MARGIN, lifespan / 2)
        return token

    # -- HTTP ----------------------------------------------------------------------------------

    def _token_request(self, form: dict[str, str]) -> dict[str, Any]:
        response = self._send("POST", f"{self._oidc}/token", data={**form, **self._client})
        if response.status_code == 200:
            answer = _json(response, self.description)
            if isinstance(answer, dict):
                return answer
        raise self._token_error(response, form["grant_type"])

    def _token_error(self, response: requests.Response, grant: str) -> TwostepError:
        """RFC 6749 5.2 error response, as Keycloak fills it in."""
        status = response.status_code
        if status >= 500 or status == 429:
            return ServiceUnavailable(f"{self.description} failed the {grant} grant: HTTP {status}")
        body = _json_or_none(response)
        error = body.get("error") if isinstance(body, dict) else None
        description = body.get("error_description") if isinstance(body, dict) else None
        if error == "invalid_grant" and grant == "password":
            kind = _GRANT_ERRORS.get(str(description), InvalidCredentials)
            return kind(WRONG_CREDENTIALS if kind is InvalidCredentials else f"Keycloak: {description}")
        detail = (f"{self.description} refused the {grant} grant of client {self._client['client_id']!r}:"
                  f" HTTP {status} {error or ''} {description or ''}".rstrip())
        if error in ("invalid_client", "unauthorized_client"):
            detail += ("; check directory.client_id and directory.client_secret, and that the client has"
                       " Client authentication, Direct access grants and Service accounts roles enabled")
        log.error("%s", detail)
        return ConfigurationError(detail)

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session().request(method, url, timeout=self._timeout, verify=self._verify,
                                           allow_redirects=False, **kwargs)
        except requests.Timeout:
            raise ServiceUnavailable(f"{self.description} did not answer within {self._timeout:g} s") from None
        except requests.RequestException as error:
            raise ServiceUnavailable(f"cannot reach {self.description}: {_first_line(error)}") from None

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session


def _json(response: requests.Response, description: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ServiceUnavailable(f"{description} answered HTTP {response.status_code} with something"
                                 " that is not JSON (a proxy page?)") from None


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_text(response: requests.Response) -> str:
    body = _json_or_none(response)
    if isinstance(body, dict):
        return " ".join(str(body[key]) for key in ("error", "error_description", "errorMessage", "field")
                        if key in body)
    return response.text[:200]


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]
