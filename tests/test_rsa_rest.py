"""The REST transport (RSA SecurID Authentication API) against the stand-in of
tests/fixtures/rsa_am.py, over HTTPS with a test CA."""
from __future__ import annotations

import socket

import pytest

from provider.channels.rsa_transports import (
    Accepted,
    ConfigurationProblem,
    NewPinRequired,
    NextTokencode,
    Rejected,
    ServerProblem,
    parse_transport_settings,
)
from provider.channels.rsa_transports.rest import RestTransport
from tests.fixtures.radius import AGENT_PASSCODE, NEWPIN_PASSCODE, NEXT_TOKENCODE, NEXTCODE_PASSCODE
from tests.fixtures.rsa_am import AGENT, CLIENT_KEY, NEXT_PROMPT, TestCA


def transport(**settings) -> RestTransport:
    return RestTransport(parse_transport_settings(settings))


def test_success_sends_the_documented_request(rsa_am):
    assert transport(**rsa_am.transport()).check_passcode("agent", AGENT_PASSCODE) == Accepted()
    path, headers, body = rsa_am.requests[0]
    assert path == "/mfa/v1_1/authn/initialize" and headers["client-key"] == CLIENT_KEY
    assert body["clientId"] == AGENT and body["subjectName"] == "agent"
    assert body["subjectCredentials"] == [{"methodId": "SECURID",
                                           "collectedInputs": [{"name": "SECURID", "value": AGENT_PASSCODE}]}]
    assert body["context"]["authnAttemptId"] == "" and body["context"]["messageId"]


def test_fail_is_an_invalid_passcode(rsa_am):
    verdict = transport(**rsa_am.transport()).check_passcode("agent", "12345678000000")
    assert verdict == Rejected("FAIL (VERIFY_ERROR)")


def test_next_tokencode_completes_the_same_attempt(rsa_am):
    rest = transport(**rsa_am.transport())
    challenge = rest.check_passcode("nextcode", NEXTCODE_PASSCODE)
    assert isinstance(challenge, NextTokencode) and challenge.message == NEXT_PROMPT
    assert rest.check_next_tokencode("nextcode", NEXT_TOKENCODE, challenge.attempt) == Accepted()
    path, _, body = rsa_am.requests[-1]
    assert path == "/mfa/v1_1/authn/verify"
    assert body["context"]["authnAttemptId"] == challenge.attempt["authn_attempt_id"]
    assert body["context"]["inResponseTo"] == challenge.attempt["message_id"]
    assert body["subjectCredentials"][0]["methodId"] == "SECURID_NEXT_TOKENCODE"


def test_a_wrong_next_tokencode_is_an_invalid_passcode(rsa_am):
    rest = transport(**rsa_am.transport())
    challenge = rest.check_passcode("nextcode", NEXTCODE_PASSCODE)
    assert isinstance(rest.check_next_tokencode("nextcode", "000000", challenge.attempt), Rejected)


def test_new_pin_can_be_cancelled(rsa_am):
    rest = transport(**rsa_am.transport())
    verdict = rest.check_passcode("newpin", NEWPIN_PASSCODE)
    assert isinstance(verdict, NewPinRequired)
    rest.cancel(verdict.attempt)
    assert rsa_am.cancelled == [verdict.attempt["authn_attempt_id"]]
    assert rsa_am.requests[-1][2]["authnAttemptId"] == verdict.attempt["authn_attempt_id"]


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"client_key": "not-the-key"}, "HTTP 401: the client_key is not accepted"),
    ({"client_id": "unknown-agent"}, "ERROR (INVALID_CLIENT_ID)"),
])
def test_configuration_problems(rsa_am, overrides, expected):
    verdict = transport(**rsa_am.transport(**overrides)).check_passcode("agent", AGENT_PASSCODE)
    assert isinstance(verdict, ConfigurationProblem) and expected in verdict.reason
    assert "not-the-key" not in verdict.reason


def test_a_wrong_base_path_is_a_configuration_problem(rsa_am):
    verdict = transport(**rsa_am.transport(base_url=rsa_am.url.removesuffix("/mfa/v1_1"))).check_passcode(
        "agent", AGENT_PASSCODE)
    assert isinstance(verdict, ConfigurationProblem) and "HTTP 404" in verdict.reason


@pytest.mark.parametrize(("fault", "expected"), [
    ({"status": 500}, "HTTP 500"),
    ({"status": 503}, "HTTP 503"),
    ({"malformed": True}, "not JSON"),
    ({"delay": 1.0}, "no answer within 0.3 s"),
])
def test_server_problems(rsa_am, fault, expected):
    for name, value in fault.items():
        setattr(rsa_am, name, value)
    verdict = transport(**rsa_am.transport(timeout=0.3)).check_passcode("agent", AGENT_PASSCODE)
    assert isinstance(verdict, ServerProblem) and expected in verdict.reason


def test_nothing_listening_is_a_server_issue(rsa_am):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    verdict = transport(**rsa_am.transport(base_url=f"https://127.0.0.1:{port}/mfa/v1_1")).check_passcode(
        "agent", AGENT_PASSCODE)
    assert isinstance(verdict, ServerProblem)


def test_a_certificate_from_another_ca_is_a_configuration_problem(rsa_am, tmp_path):
    other = TestCA.create(tmp_path, "another-ca")
    verdict = transport(**rsa_am.transport(ca_file=str(other.pem_file))).check_passcode("agent", AGENT_PASSCODE)
    assert isinstance(verdict, ConfigurationProblem) and "TLS verification failed" in verdict.reason
    assert rsa_am.requests == []


def test_without_ca_file_the_system_cas_do_not_know_the_test_ca(rsa_am):
    settings = rsa_am.transport()
    del settings["ca_file"]
    assert isinstance(transport(**settings).check_passcode("agent", AGENT_PASSCODE), ConfigurationProblem)


def test_an_answer_to_another_request_is_a_server_issue(rsa_am, monkeypatch):
    original = rsa_am.answer

    def misrouted(path, headers, body):
        status, answer = original(path, headers, body)
        return status, {**answer, "context": {**answer["context"], "inResponseTo": "someone-else"}}

    monkeypatch.setattr(rsa_am, "answer", misrouted)
    verdict = transport(**rsa_am.transport()).check_passcode("agent", AGENT_PASSCODE)
    assert isinstance(verdict, ServerProblem) and "inResponseTo" in verdict.reason
