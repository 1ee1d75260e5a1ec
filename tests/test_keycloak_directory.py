"""The Keycloak directory beyond the Directory contract (which test_directory.py runs on it):
the error table of the password check, the session it must not leave behind, the service
account's token cache, timeouts, and how a Keycloak user becomes a twostep User. All over real
HTTP against the stand-in Keycloak (tests/fixtures/keycloak.py)."""
from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from provider.clock import FrozenClock
from provider.directory import User
from provider.directory.keycloak import KeycloakDirectory
from provider.directory.keycloak_api import TOKEN_RENEWAL_MARGIN
from provider.errors import (
    AccountDisabled,
    AccountLocked,
    AccountSetupIncomplete,
    ConfigurationError,
    InvalidCredentials,
    ServiceUnavailable,
)
from tests.fixtures.keycloak import CLIENT_SECRET, StandInKeycloak

PASSWORD = "correct horse battery staple"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def directory(keycloak: StandInKeycloak, clock: FrozenClock) -> KeycloakDirectory:
    return KeycloakDirectory(keycloak.api(clock))


@pytest.fixture
def alice(keycloak: StandInKeycloak):
    return keycloak.add_user("alice", PASSWORD, email="alice@example.org", name="Alice Liddell")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- the password check: Keycloak's answers, and what the user is told ------------------------


@pytest.mark.parametrize("version", [(26, 5, 4), (26, 6, 0)], ids=["401-before-26.6", "400-since-26.6"])
def test_wrong_password_whatever_the_status(keycloak, directory, alice, version) -> None:
    keycloak.version = version
    with pytest.raises(InvalidCredentials) as raised:
        directory.authenticate("alice", "wrong")
    assert raised.value.user_message == "Incorrect username or password."


@pytest.mark.parametrize("password", [PASSWORD, "wrong"])
def test_disabled_account_is_reported_whatever_the_password(keycloak, directory, alice, password) -> None:
    """Keycloak checks `enabled` before the password (ValidateUsername); twostep can only relay."""
    alice.enabled = False
    with pytest.raises(AccountDisabled) as raised:
        directory.authenticate("alice", password)
    assert "disabled" in raised.value.user_message


def test_pending_required_actions_mean_finish_the_setup_in_keycloak(keycloak, directory, alice) -> None:
    alice.required_actions = ["UPDATE_PASSWORD"]
    with pytest.raises(AccountSetupIncomplete) as raised:
        directory.authenticate("alice", PASSWORD)
    assert raised.value.user_message == "Finish setting up your account in Keycloak, then sign in here again."
    with pytest.raises(InvalidCredentials):  # only after the right password
        directory.authenticate("alice", "wrong")


def test_brute_force_lock_is_told_apart_through_the_admin_api(keycloak, directory, alice) -> None:
    keycloak.brute_force_max_failures = 3
    for _ in range(2):
        with pytest.raises(InvalidCredentials):
            directory.authenticate("alice", "wrong")
    with pytest.raises(AccountLocked):  # the third failure locks
        directory.authenticate("alice", "wrong")
    with pytest.raises(AccountLocked) as raised:  # Keycloak refuses even the right password now
        directory.authenticate("alice", PASSWORD)
    assert "locked" in raised.value.user_message
    with pytest.raises(InvalidCredentials):  # an unknown user is never "locked"
        directory.authenticate("nobody", "wrong")


def test_lock_found_for_a_login_by_email(keycloak, directory, alice) -> None:
    keycloak.brute_force_max_failures = 1
    with pytest.raises(AccountLocked):
        directory.authenticate("Alice@Example.org", "wrong")


def test_when_the_lock_cannot_be_checked_it_is_a_wrong_password(keycloak, directory, alice, caplog) -> None:
    keycloak.brute_force_max_failures = 1
    keycloak.clients["twostep"].roles = {"query-users"}  # may search, may not read brute-force status
    with pytest.raises(InvalidCredentials):
        directory.authenticate("alice", "wrong")
    assert "cannot ask Keycloak whether 'alice' is locked" in caplog.text


def test_login_by_email_gives_the_keycloak_user(directory, alice) -> None:
    assert directory.authenticate("alice@example.org", PASSWORD).id == alice.id


@pytest.mark.parametrize(("change", "expected"), [
    ({"client_secret": "not-the-secret"}, "invalid_client"),
    ({"client_id": "someone-else"}, "invalid_client"),
    ({"realm": "no-such-realm"}, "Realm does not exist"),
])
def test_refused_client_is_a_configuration_error(keycloak, alice, clock, caplog, change, expected) -> None:
    directory = KeycloakDirectory(keycloak.api(clock, **change))
    with caplog.at_level(logging.ERROR), pytest.raises(ConfigurationError) as raised:
        directory.authenticate("alice", PASSWORD)
    assert expected in raised.value.detail and expected in caplog.text
    assert raised.value.user_message == "Sign-in is not configured correctly. Please contact your administrator."
    assert CLIENT_SECRET not in caplog.text and "not-the-secret" not in caplog.text


def test_client_without_direct_access_grants(keycloak, directory, alice) -> None:
    keycloak.clients["twostep"].direct_access_grants = False
    with pytest.raises(ConfigurationError, match=r"unauthorized_client.*Direct access grants"):
        directory.authenticate("alice", PASSWORD)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_keycloak_failing_is_temporarily_unavailable(keycloak, directory, alice, status) -> None:
    keycloak.faults["token"] = status
    with pytest.raises(ServiceUnavailable) as raised:
        directory.authenticate("alice", PASSWORD)
    assert raised.value.user_message == "Sign-in is temporarily unavailable, try again shortly."


def test_keycloak_unreachable_is_temporarily_unavailable(keycloak, clock) -> None:
    directory = KeycloakDirectory(keycloak.api(clock, url=f"http://127.0.0.1:{closed_port()}"))
    for call in (lambda: directory.authenticate("alice", PASSWORD), lambda: directory.get("x"), directory.ping):
        with pytest.raises(ServiceUnavailable, match="cannot reach Keycloak realm 'acme'"):
            call()


def test_slow_keycloak_times_out(keycloak, alice, clock) -> None:
    directory = KeycloakDirectory(keycloak.api(clock, timeout=0.2))
    keycloak.delay = 0.6
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match=r"did not answer within 0\.2 s"):
        directory.authenticate("alice", PASSWORD)
    assert time.monotonic() - started < 0.55
    keycloak.delay = 0.0
    assert directory.authenticate("alice", PASSWORD).id == alice.id


def test_a_proxy_page_instead_of_json_is_unavailable(keycloak, directory, alice) -> None:
    keycloak.faults["user"] = 200  # an HTML page with status 200
    with pytest.raises(ServiceUnavailable, match="not JSON"):
        directory.get(alice.id)


# -- no Keycloak session left behind -----------------------------------------------------------


def test_each_password_check_ends_its_keycloak_session(keycloak, directory, alice) -> None:
    for _ in range(3):
        directory.authenticate("alice", PASSWORD)
    assert keycloak.count("token", "password") == 3
    assert keycloak.count("logout") == 3
    assert keycloak.sessions == {}


def test_a_failed_logout_does_not_fail_the_login(keycloak, directory, alice, caplog) -> None:
    keycloak.faults["logout"] = 503
    assert directory.authenticate("alice", PASSWORD).id == alice.id
    assert "Keycloak session not ended after the password check: HTTP 503" in caplog.text


# -- the service account's token --------------------------------------------------------------


def test_service_token_is_cached_until_shortly_before_it_expires(keycloak, directory, alice, clock) -> None:
    directory.get(alice.id)
    directory.find("alice")
    assert keycloak.count("token", "client_credentials") == 1
    clock.advance(keycloak.access_token_lifespan - TOKEN_RENEWAL_MARGIN - 1)
    directory.get(alice.id)
    assert keycloak.count("token", "client_credentials") == 1
    clock.advance(2)
    directory.get(alice.id)
    assert keycloak.count("token", "client_credentials") == 2


def test_short_lived_tokens_are_renewed_at_half_life(keycloak, directory, alice, clock) -> None:
    keycloak.access_token_lifespan = 20
    directory.get(alice.id)
    clock.advance(9)
    directory.get(alice.id)
    assert keycloak.count("token", "client_credentials") == 1
    clock.advance(2)
    directory.get(alice.id)
    assert keycloak.count("token", "client_credentials") == 2


def test_a_refused_token_is_renewed_once(keycloak, directory, alice) -> None:
    directory.get(alice.id)
    keycloak.revoke_service_tokens()  # Keycloak restarted, or the token was revoked
    assert directory.get(alice.id) == alice.as_twostep()
    assert keycloak.count("token", "client_credentials") == 2


def test_missing_admin_role_names_the_roles(keycloak, directory, alice) -> None:
    keycloak.clients["twostep"].roles = set()
    with pytest.raises(ConfigurationError, match="view-users and query-users"):
        directory.get(alice.id)


def test_client_without_service_account(keycloak, directory, alice) -> None:
    keycloak.clients["twostep"].service_account = False
    with pytest.raises(ConfigurationError, match="unauthorized_client Client not enabled to retrieve service"):
        directory.find("alice")


# -- a Keycloak user as a twostep User ---------------------------------------------------------


def test_profile_groups_and_phone(keycloak, directory) -> None:
    user = keycloak.add_user("Carol", PASSWORD, email="carol@example.org", name="Carol Ann Smith",
                             groups=("staff", "ops/on-call"), phone="+4915112345678", email_verified=True)
    assert directory.authenticate("carol", PASSWORD) == User(
        id=user.id, username="carol", email="carol@example.org", email_verified=True, name="Carol Ann Smith",
        phone="+4915112345678", groups=("staff", "ops/on-call"))


def test_sub_is_the_keycloak_id_even_for_federated_users(keycloak, directory) -> None:
    user = keycloak.add_user("dave", PASSWORD, id="f:ldap-provider:7c1a")
    assert directory.authenticate("dave", PASSWORD).id == "f:ldap-provider:7c1a"
    assert directory.get("f:ldap-provider:7c1a") == user.as_twostep()


def test_bare_user_and_disabled_user(keycloak, directory) -> None:
    user = keycloak.add_user("erin", PASSWORD, enabled=False)
    assert directory.get(user.id) == User(id=user.id, username="erin", disabled=True)


def test_ping_checks_realm_and_rights(keycloak, directory, clock) -> None:
    directory.ping()
    with pytest.raises(ConfigurationError, match="Realm does not exist"):
        KeycloakDirectory(keycloak.api(clock, realm="other")).ping()


def test_a_token_refused_even_when_fresh_is_a_configuration_error(keycloak, directory, alice) -> None:
    keycloak.faults["user"] = 401
    with pytest.raises(ConfigurationError, match="refused the service account's fresh token"):
        directory.get(alice.id)
    assert keycloak.count("token", "client_credentials") == 2


def test_a_hanging_keycloak_times_out_every_caller_at_once(keycloak, alice, clock) -> None:
    directory = KeycloakDirectory(keycloak.api(clock, timeout=0.3))
    keycloak.delay = 1.0
    failures: list[Exception] = []

    def get() -> None:
        try:
            directory.get(alice.id)
        except ServiceUnavailable as error:
            failures.append(error)

    started = time.monotonic()
    threads = [threading.Thread(target=get) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(failures) == 4
    assert time.monotonic() - started < 0.9  # side by side, not 4 x 0.3 s one after the other
