"""The RADIUS transport against a real FreeRADIUS (tests/fixtures/radius.py)."""
from __future__ import annotations

import base64
import socket
import threading
import time

import pytest
from pyrad import packet

from provider.channels.rsa_transports import (
    Accepted,
    ConfigurationProblem,
    NewPinRequired,
    NextTokencode,
    Rejected,
    ServerProblem,
    parse_transport_settings,
)
from provider.channels.rsa_transports.radius import DICTIONARY, RadiusTransport
from tests.fixtures.radius import (
    AGENT_PASSCODE,
    EMAIL_PASSCODE,
    NEWPIN_MESSAGE,
    NEWPIN_PASSCODE,
    NEXT_MESSAGE,
    NEXT_STATE,
    NEXT_TOKENCODE,
    NEXTCODE_PASSCODE,
)


def transport(**settings) -> RadiusTransport:
    return RadiusTransport(parse_transport_settings(settings))


def test_accept_and_reject(radius):
    radius_transport = transport(**radius.transport())
    assert radius_transport.check_passcode("agent", AGENT_PASSCODE) == Accepted()
    assert radius_transport.check_passcode("agent", "12345678000000") == Rejected("Access-Reject")
    assert radius_transport.check_passcode("nobody", AGENT_PASSCODE) == Rejected("Access-Reject")


def test_next_tokencode_challenge_carries_the_state_byte_for_byte(radius):
    radius_transport = transport(**radius.transport())
    challenge = radius_transport.check_passcode("nextcode", NEXTCODE_PASSCODE)
    assert isinstance(challenge, NextTokencode) and challenge.message == NEXT_MESSAGE
    assert base64.b64decode(challenge.attempt["state"]) == NEXT_STATE
    assert radius_transport.check_next_tokencode("nextcode", NEXT_TOKENCODE, challenge.attempt) == Accepted()
    assert isinstance(radius_transport.check_next_tokencode("nextcode", "999999", challenge.attempt), Rejected)
    altered = {**challenge.attempt, "state": base64.b64encode(NEXT_STATE[:-1] + b"#").decode()}
    assert isinstance(radius_transport.check_next_tokencode("nextcode", NEXT_TOKENCODE, altered), Rejected)


def test_new_pin_challenge(radius):
    verdict = transport(**radius.transport()).check_passcode("newpin", NEWPIN_PASSCODE)
    assert isinstance(verdict, NewPinRequired) and verdict.message == NEWPIN_MESSAGE


def test_wrong_shared_secret_is_a_configuration_problem(radius_factory):
    """FreeRADIUS answers a request signed with another secret when it does not check the
    Message-Authenticator (and discards it when it does): the reply fails our check."""
    server = radius_factory(require_message_authenticator=False)
    verdict = transport(**server.transport(secret="not-the-secret", timeout=0.3)).check_passcode(
        "agent", AGENT_PASSCODE)
    assert isinstance(verdict, ConfigurationProblem), verdict
    assert "shared secret differs from the server's" in verdict.reason
    assert "not-the-secret" not in verdict.reason


def test_wrong_secret_with_a_server_that_discards_unsigned_requests_is_told_in_the_log(radius):
    """A server that requires Message-Authenticator stays silent to every wrong-secret request:
    indistinguishable from an unreachable server, a server issue, and the reason says so."""
    verdict = transport(**radius.transport(secret="not-the-secret", timeout=0.3)).check_passcode(
        "agent", AGENT_PASSCODE)
    assert isinstance(verdict, ServerProblem) and "no reply to 1 try of 0.3 s" in verdict.reason


def test_stopped_server_is_a_server_issue(radius_factory):
    server = radius_factory()
    server.stop()
    started = time.monotonic()
    verdict = transport(**server.transport(timeout=2)).check_passcode("agent", AGENT_PASSCODE)
    assert isinstance(verdict, ServerProblem) and "refused" in verdict.reason.lower()
    assert time.monotonic() - started < 1  # the port is closed: no need to wait for timeouts


def test_silent_server_is_a_server_issue_after_the_retries(radius_factory):
    server = radius_factory()
    server.pause()
    verdict = transport(**server.transport(timeout=0.2, retries=1)).check_passcode("agent", AGENT_PASSCODE)
    assert isinstance(verdict, ServerProblem) and "no reply to 2 tries of 0.2 s" in verdict.reason


@pytest.mark.parametrize("failure", ["stopped", "silent"])
def test_failover_from_a_dead_primary_to_a_live_replica(radius_factory, failure):
    primary, replica = radius_factory(), radius_factory()
    primary.stop() if failure == "stopped" else primary.pause()
    servers = [{"host": s.host, "port": s.port} for s in (primary, replica)]
    radius_transport = transport(type="radius", servers=servers, secret=primary.secret, timeout=0.3, retries=0)
    assert radius_transport.check_passcode("agent", AGENT_PASSCODE) == Accepted()
    challenge = radius_transport.check_passcode("nextcode", NEXTCODE_PASSCODE)
    assert challenge.attempt["server"] == "1"  # the next tokencode goes to the replica that asked
    assert radius_transport.check_next_tokencode("nextcode", NEXT_TOKENCODE, challenge.attempt) == Accepted()


def test_require_message_authenticator(radius):
    radius_transport = transport(**radius.transport(require_message_authenticator=True))
    assert radius_transport.check_passcode("agent", AGENT_PASSCODE) == Accepted()  # this reply is signed
    verdict = radius_transport.check_passcode("agent@example.com", EMAIL_PASSCODE)
    if isinstance(verdict, Accepted):
        pytest.skip("this FreeRADIUS signs every reply")
    assert isinstance(verdict, ConfigurationProblem) and "no Message-Authenticator" in verdict.reason


def test_every_request_is_signed_and_hides_the_passcode():
    """What goes on the wire: PAP with a Message-Authenticator first, never the passcode in clear."""
    received: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(2)
        reader = threading.Thread(target=lambda: received.append(listener.recv(4096)))
        reader.start()
        settings = {"type": "radius", "host": "127.0.0.1", "port": listener.getsockname()[1], "secret": "s" * 16,
                    "timeout": 0.2, "retries": 0, "nas_identifier": "desk-sso"}
        transport(**settings).check_passcode("agent", AGENT_PASSCODE, client_ip="192.0.2.7")
        reader.join()
    request = packet.AuthPacket(secret=b"s" * 16, dict=DICTIONARY, packet=received[0])
    assert request.code == packet.AccessRequest
    assert received[0][20] == 80  # Message-Authenticator is the first attribute (BlastRADIUS)
    assert request.verify_message_authenticator()
    assert AGENT_PASSCODE.encode() not in received[0]
    assert request.PwDecrypt(request["User-Password"][0]) == AGENT_PASSCODE
    assert request["NAS-Identifier"] == ["desk-sso"] and request["Calling-Station-Id"] == ["192.0.2.7"]


def test_an_unreadable_challenge_state_is_a_server_issue(radius):
    verdict = transport(**radius.transport()).check_next_tokencode("nextcode", NEXT_TOKENCODE, {"state": "%%"})
    assert isinstance(verdict, ServerProblem)
