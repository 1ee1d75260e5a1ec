"""RADIUS (RFC 2865) to RSA Authentication Manager's RADIUS server, or to a RADIUS server in
front of it.

PAP: User-Name and User-Password (hidden with the shared secret, RFC 2865 5.2), always with a
Message-Authenticator (RFC 3579 3.2), placed first against BlastRADIUS (CVE-2024-3596).
Access-Accept is a success, Access-Reject a wrong passcode, Access-Challenge asks for the next
tokencode (or a new PIN, told apart by its Reply-Message) and is answered with its State byte
for byte (RFC 2865 4.4), to the same server.

pyrad encodes and verifies the packets; the exchange over UDP is ours, because pyrad's client
treats a reply that fails the Response Authenticator check like no reply at all, and such a
reply is how a wrong shared secret shows. A server that checks the Message-Authenticator
discards a request signed with the wrong secret instead (RFC 3579 3.2, as FreeRADIUS does):
when every server stays silent, one check request without a Message-Authenticator (a made-up
user, a random password) tells a wrong secret from a server that is down.
"""
from __future__ import annotations

import base64
import binascii
import io
import re
import secrets
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pyrad import packet
from pyrad.dictionary import Dictionary

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

# The attributes twostep sends or reads (RFC 2865 section 5, RFC 3579 3.2). Reply-Message is
# read as octets: a server's odd bytes must not make a genuine reply undecodable.
DICTIONARY = Dictionary(io.StringIO("""
ATTRIBUTE User-Name 1 string
ATTRIBUTE User-Password 2 string encrypt=1
ATTRIBUTE Reply-Message 18 octets
ATTRIBUTE State 24 octets
ATTRIBUTE Calling-Station-Id 31 string
ATTRIBUTE NAS-Identifier 32 string
ATTRIBUTE Proxy-State 33 octets
ATTRIBUTE Message-Authenticator 80 octets
"""))
MESSAGE_AUTHENTICATOR = 80
CHECK_USER = "twostep-shared-secret-check"
CHECK_TIMEOUT = 2.0
REPLY_CODES = (packet.AccessAccept, packet.AccessReject, packet.AccessChallenge)


class RadiusServer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    host: str = Field(min_length=1)
    port: int = Field(1812, ge=1, le=65535)


class RadiusSettings(TransportSettings):
    type: Literal["radius"]
    host: str | None = Field(None, min_length=1, description="one server; or `servers`")
    port: int = Field(1812, ge=1, le=65535)
    servers: list[RadiusServer] = Field([], description="RSA's primary and replicas, tried in order")
    secret: SecretStr = Field(description="the RADIUS client's shared secret in RSA Authentication Manager")
    timeout: float = Field(5.0, gt=0, le=60, description="seconds to wait for a reply")
    retries: int = Field(2, ge=0, le=10, description="resends to a silent server before the next one")
    nas_identifier: str = Field("twostep", min_length=1, max_length=253)
    require_message_authenticator: bool = Field(False, description="refuse replies without one (BlastRADIUS)")
    new_pin_prompt: str = Field(r"\bPIN\b", description="a challenge whose Reply-Message matches asks for a new PIN")

    @field_validator("secret")
    @classmethod
    def _not_empty(cls, secret: SecretStr) -> SecretStr:
        if not secret.get_secret_value():
            raise ValueError("the shared secret is empty")
        return secret

    @field_validator("new_pin_prompt")
    @classmethod
    def _pattern(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from None
        return pattern

    @model_validator(mode="after")
    def _servers_named_once(self) -> RadiusSettings:
        if self.host and self.servers:
            raise ValueError("give host (one server) or servers (a primary and its replicas), not both")
        if not self.host and not self.servers:
            raise ValueError("host is required (or servers, for a primary and its replicas)")
        return self


@dataclass(frozen=True)
class _NoReply:
    """A server that did not answer: silent (timeouts), or refused / unreachable / unknown."""

    reason: str
    silent: bool


class RadiusTransport(RsaTransport):
    type_name = "radius"
    Settings = RadiusSettings
    settings: RadiusSettings

    def __init__(self, settings: RadiusSettings) -> None:
        super().__init__(settings)
        s = settings
        self.servers = [(s.host, s.port)] if s.host else [(server.host, server.port) for server in s.servers]
        self._secret = s.secret.get_secret_value().encode()
        self._new_pin = re.compile(s.new_pin_prompt, re.IGNORECASE)

    def describe(self) -> str:
        return "radius " + ", ".join(f"{host}:{port}" for host, port in self.servers)

    def warnings(self) -> list[str]:
        if len(self._secret) < 16:
            return ["the RADIUS shared secret is shorter than 16 characters (RFC 2865 section 3)"]
        return []

    def check_passcode(self, username: str, passcode: str, client_ip: str | None = None) -> Verdict:
        return self._ask(lambda: self._request(username, passcode, client_ip), range(len(self.servers)))

    def check_next_tokencode(self, username: str, tokencode: str, attempt: Mapping[str, str],
                             client_ip: str | None = None) -> Verdict:
        try:
            index, state = int(attempt["server"]), base64.b64decode(attempt["state"], validate=True)
        except (KeyError, ValueError, binascii.Error):
            return ServerProblem("the challenge kept in the flow state is unreadable")
        if not 0 <= index < len(self.servers):
            return ServerProblem("the server that sent the challenge is no longer configured")
        # The State only means something to the server that issued it: no failover here.
        return self._ask(lambda: self._request(username, tokencode, client_ip, state), [index])

    # -- the exchange -------------------------------------------------------------------

    def _ask(self, build: Callable[[], packet.AuthPacket], indexes: Sequence[int]) -> Verdict:
        """Each server in turn, the next one only when this one does not answer."""
        failures: list[str] = []
        silent: tuple[str, int] | None = None
        for index in indexes:
            try:
                request = build()
            except ValueError as error:  # longer than RADIUS allows (RFC 2865 5.1, 5.2)
                return Rejected(f"cannot be sent over RADIUS: {error}")
            answer = self._exchange(self.servers[index], request, self.settings.retries + 1, self.settings.timeout)
            if isinstance(answer, packet.AuthPacket):
                return self._verdict(answer, index)
            if isinstance(answer, ConfigurationProblem):
                return answer
            failures.append(answer.reason)
            silent = silent or (self.servers[index] if answer.silent else None)
        if silent is not None:
            return self._explain_silence(silent, "; ".join(failures))
        return ServerProblem("; ".join(failures))

    def _exchange(self, server: tuple[str, int], request: packet.AuthPacket, tries: int,
                  timeout: float) -> packet.AuthPacket | ConfigurationProblem | _NoReply:
        """Send (and resend, the same bytes) until a reply to this request arrives."""
        host, port = server
        raw = request.RequestPacket()
        try:
            sock = _connected_socket(host, port)
        except OSError as error:
            return _NoReply(f"{host}:{port}: cannot be reached ({error})", silent=False)
        with sock:
            for _ in range(tries):
                deadline = time.monotonic() + timeout
                try:
                    sock.send(raw)
                    while (left := deadline - time.monotonic()) > 0:
                        sock.settimeout(left)
                        answer = self._check(request, sock.recv(8192), server)
                        if answer is not None:
                            return answer
                except TimeoutError:
                    continue
                except OSError as error:  # ICMP port unreachable: nothing listens there
                    return _NoReply(f"{host}:{port}: {error.strerror or error}", silent=False)
        return _NoReply(f"{host}:{port}: no reply to {tries} {'try' if tries == 1 else 'tries'} of {timeout:g} s",
                        silent=True)

    def _check(self, request: packet.AuthPacket, data: bytes, server: tuple[str, int],
               ) -> packet.AuthPacket | ConfigurationProblem | None:
        """The verified reply to `request`; a problem when it does not verify; None for a
        datagram that is not a reply to it (a late answer to an earlier request)."""
        if len(data) < 20 or data[1] != request.id or data[0] not in REPLY_CODES:
            return None
        try:
            reply = request.CreateReply(packet=data)
        except packet.PacketError:
            return None
        where = f"{server[0]}:{server[1]}"
        if not request.VerifyReply(reply, data):
            return ConfigurationProblem(f"{where}: a reply failed the Response Authenticator check: the shared"
                                        " secret differs from the server's")
        signed = dict.__contains__(reply, MESSAGE_AUTHENTICATOR)  # pyrad keeps attributes by code
        if request.message_authenticator and self.settings.require_message_authenticator and not signed:
            return ConfigurationProblem(f"{where}: the reply has no Message-Authenticator, and"
                                        " require_message_authenticator is set")
        return reply

    def _explain_silence(self, server: tuple[str, int], reason: str) -> Verdict:
        """A wrong secret or a dead server? One check without a Message-Authenticator tells."""
        check = packet.AuthPacket(packet.AccessRequest, secret=self._secret, dict=DICTIONARY)
        check["User-Name"] = CHECK_USER
        check["User-Password"] = check.PwCrypt(secrets.token_hex(8))
        check["NAS-Identifier"] = self.settings.nas_identifier
        answer = self._exchange(server, check, 1, min(self.settings.timeout, CHECK_TIMEOUT))
        if isinstance(answer, ConfigurationProblem):
            return ConfigurationProblem(f"{reason}; the server discards requests signed with our secret, and its"
                                        " reply to a check request does not verify: the shared secret differs"
                                        " from the server's")
        if isinstance(answer, packet.AuthPacket):
            return ServerProblem(f"{reason}; the server answers a check request, so the secret is right")
        return ServerProblem(reason)

    def _request(self, username: str, password: str, client_ip: str | None,
                 state: bytes | None = None) -> packet.AuthPacket:
        request = packet.AuthPacket(packet.AccessRequest, secret=self._secret, dict=DICTIONARY,
                                    message_authenticator=True)
        request["User-Name"] = username
        request["User-Password"] = request.PwCrypt(password)
        request["NAS-Identifier"] = self.settings.nas_identifier
        if client_ip:
            request["Calling-Station-Id"] = client_ip
        if state is not None:
            request["State"] = state
        return request

    def _verdict(self, reply: packet.AuthPacket, index: int) -> Verdict:
        message = " ".join(part.decode("utf-8", "replace").strip() for part in reply.get("Reply-Message", [])) or None
        if reply.code == packet.AccessAccept:
            return Accepted()
        if reply.code == packet.AccessReject:
            return Rejected("Access-Reject" + (f": {message}" if message else ""))
        states = reply.get("State", [])
        attempt = {"server": str(index), "state": base64.b64encode(states[0] if states else b"").decode()}
        if message and self._new_pin.search(message):
            return NewPinRequired(attempt, message)
        return NextTokencode(attempt, message)


def _connected_socket(host: str, port: int) -> socket.socket:
    """A UDP socket connected to the server: replies from elsewhere are not delivered, and an
    ICMP port-unreachable surfaces as an error instead of a timeout."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.connect(address)
    except OSError:
        sock.close()
        raise
    return sock
