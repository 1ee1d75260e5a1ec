"""The RSA SecurID Authentication API (REST), as served by RSA Authentication Manager on port
5555 (`https://HOST:5555/mfa/v1_1`) or by RSA's Cloud Authentication Service.

The shapes follow RSA's SecurID Authentication API Developer's Guide and RSA knowledge-base
article 000035143 ("How to set up the REST RSA SecurID Authentication API for Authentication
Manager"): POST `authn/initialize` with the passcode in `subjectCredentials` (methodId
`SECURID`); a CHALLENGE asking for `SECURID_NEXT_TOKENCODE` is answered by POST `authn/verify`
with the `authnAttemptId` and `inResponseTo` (the messageId RSA sent); POST `authn/cancel`
gives an attempt up. Every request carries the `client-key` header (the Access Key shown in the
Security Console under Setup > System Settings > RSA SecurID Authentication API), and TLS is
always verified, against AM's own CA when `ca_file` names it.

`attemptResponseCode` SUCCESS is a success, FAIL a wrong passcode, ERROR a configuration
problem; HTTP 400/401/403/404 and TLS failures are configuration problems too; timeouts,
connection errors, 5xx and malformed bodies are server problems.
"""
from __future__ import annotations

import ssl
import uuid
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from pydantic import Field, SecretStr, field_validator

from provider.channels.rsa_transports import (
    Accepted,
    ConfigurationProblem,
    NewPinRequired,
    NextTokencode,
    Rejected,
    RsaTransport,
    ServerProblem,
    TransportSettings,
    Verdict,
)

SECURID = "SECURID"
NEXT_TOKENCODE = "SECURID_NEXT_TOKENCODE"
HINTS = {
    400: "RSA refused the request as malformed",
    401: "the client_key is not accepted (Security Console: RSA SecurID Authentication API, Access Key)",
    403: "the client_key may not use this API",
    404: "no SecurID Authentication API at this address: base_url should end in /mfa/v1_1",
}


class RestSettings(TransportSettings):
    type: Literal["rest"]
    base_url: str = Field(description="e.g. https://am.example.com:5555/mfa/v1_1")
    client_key: SecretStr = Field(description="the Authentication API Access Key (sent as header client-key)")
    client_id: str = Field(min_length=1, max_length=255, description="the authentication agent's name in AM")
    ca_file: str | None = Field(None, description="PEM file of the CA that signed AM's certificate")
    timeout: float = Field(10.0, gt=0, le=60, description="seconds to wait for each answer")

    @field_validator("base_url")
    @classmethod
    def _https(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("an https URL without query or fragment, e.g. https://am.example.com:5555/mfa/v1_1")
        return url.rstrip("/")

    @field_validator("client_key")
    @classmethod
    def _key(cls, key: SecretStr) -> SecretStr:
        if not key.get_secret_value().strip():
            raise ValueError("the client key is empty")
        return key

    @field_validator("ca_file")
    @classmethod
    def _readable_ca(cls, path: str | None) -> str | None:
        if path is not None:
            try:
                ssl.create_default_context(cafile=path)
            except (OSError, ssl.SSLError) as error:
                raise ValueError(f"cannot read CA certificates (PEM) from {path}: {error}") from None
        return path


class RestTransport(RsaTransport):
    type_name = "rest"
    Settings = RestSettings
    settings: RestSettings

    def describe(self) -> str:
        return f"rest {self.settings.base_url} (agent {self.settings.client_id})"

    def check_passcode(self, username: str, passcode: str, client_ip: str | None = None) -> Verdict:
        body = self._body(username, SECURID, passcode, {"authnAttemptId": "", "inResponseTo": ""})
        return self._call("initialize", body)

    def check_next_tokencode(self, username: str, tokencode: str, attempt: Mapping[str, str],
                             client_ip: str | None = None) -> Verdict:
        if not attempt.get("authn_attempt_id"):
            return ServerProblem("the challenge kept in the flow state is unreadable")
        context = {"authnAttemptId": attempt["authn_attempt_id"], "inResponseTo": attempt.get("message_id", "")}
        return self._call("verify", self._body(username, NEXT_TOKENCODE, tokencode, context))

    def cancel(self, attempt: Mapping[str, str]) -> None:
        if attempt.get("authn_attempt_id"):
            self._post("cancel", {"authnAttemptId": attempt["authn_attempt_id"], "reason": "USER_ACTION"})

    # -- internals ----------------------------------------------------------------------

    def _body(self, username: str, method: str, value: str, context: dict[str, str]) -> dict[str, Any]:
        return {
            "clientId": self.settings.client_id,
            "subjectName": username,
            "lang": "en_US",
            "subjectCredentials": [{"methodId": method, "collectedInputs": [{"name": method, "value": value}]}],
            "context": {**context, "messageId": uuid.uuid4().hex},
        }

    def _call(self, endpoint: str, body: dict[str, Any]) -> Verdict:
        answer = self._post(endpoint, body)
        if not isinstance(answer, dict):
            return answer
        try:
            return self._verdict(answer, body["context"]["messageId"])
        except (AttributeError, KeyError, TypeError) as error:
            return ServerProblem(f"{endpoint}: an answer of an unexpected shape ({type(error).__name__}: {error})")

    def _post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any] | ConfigurationProblem | ServerProblem:
        url = f"{self.settings.base_url}/authn/{endpoint}"
        headers = {"client-key": self.settings.client_key.get_secret_value(), "Accept": "application/json"}
        try:
            response = requests.post(url, json=body, headers=headers, timeout=self.settings.timeout,
                                     verify=self.settings.ca_file or True, allow_redirects=False)
        except requests.exceptions.SSLError as error:
            return ConfigurationProblem(f"{url}: TLS verification failed (check ca_file and the host name): {error}")
        except requests.exceptions.Timeout:
            return ServerProblem(f"{url}: no answer within {self.settings.timeout:g} s")
        except requests.exceptions.RequestException as error:
            return ServerProblem(f"{url}: {type(error).__name__}: {error}")
        except OSError as error:  # the CA file went away since start-up
            return ConfigurationProblem(f"{url}: {error}")
        status = response.status_code
        if 400 <= status < 500:
            return ConfigurationProblem(f"{url}: HTTP {status}: " + HINTS.get(status, "RSA refused the request"))
        if status != 200:
            return ServerProblem(f"{url}: HTTP {status}")
        try:
            answer = response.json()
        except ValueError:
            return ServerProblem(f"{url}: the answer is not JSON")
        return answer if isinstance(answer, dict) else ServerProblem(f"{url}: the answer is not a JSON object")

    def _verdict(self, answer: dict[str, Any], message_id: str) -> Verdict:
        code, reason = answer.get("attemptResponseCode"), answer.get("attemptReasonCode")
        context = answer.get("context") or {}
        if context.get("inResponseTo") not in (None, message_id):
            return ServerProblem("the answer is not in response to our request (inResponseTo differs)")
        if code == "SUCCESS":
            return Accepted()
        if code == "FAIL":
            return Rejected(f"FAIL ({reason})")
        if code == "ERROR":
            return ConfigurationProblem(f"RSA answered ERROR ({reason}): check client_id (the agent name) and"
                                        " the agent's settings in the Security Console")
        if code == "CHALLENGE":
            return self._challenge(answer, context)
        return ServerProblem(f"unexpected attemptResponseCode {code!r}")

    def _challenge(self, answer: dict[str, Any], context: Mapping[str, Any]) -> Verdict:
        attempt_id, message_id = context.get("authnAttemptId"), context.get("messageId")
        if not isinstance(attempt_id, str) or not attempt_id or not isinstance(message_id, str):
            return ServerProblem("a CHALLENGE without context.authnAttemptId and messageId")
        attempt = {"authn_attempt_id": attempt_id, "message_id": message_id}
        results = answer.get("credentialValidationResults") or []
        if any(result.get("methodResponseCode") == "FAIL" for result in results):
            self.cancel(attempt)  # a wrong passcode RSA would take again: this attempt is over for us
            return Rejected("CHALLENGE after methodResponseCode FAIL")
        required = [method for challenge in (answer.get("challengeMethods") or {}).get("challenges") or []
                    for method in challenge.get("requiredMethods") or []]
        ids = [method.get("methodId") for method in required]
        if NEXT_TOKENCODE in ids:
            return NextTokencode(attempt, _prompt(required[ids.index(NEXT_TOKENCODE)]))
        if any(isinstance(i, str) and "PIN" in i for i in ids):
            return NewPinRequired(attempt)
        self.cancel(attempt)
        return ConfigurationProblem(f"RSA asks for {ids}, which twostep does not offer: check the agent's"
                                    " authentication policy")


def _prompt(method: Mapping[str, Any]) -> str | None:
    for version in method.get("versions") or []:
        text = (version.get("prompt") or {}).get("defaultText")
        if isinstance(text, str) and text.strip():
            return text.strip()
    return None
