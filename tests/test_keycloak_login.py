"""twostep as the two-step sidecar of a Keycloak realm, end to end over real HTTP: the password
is checked by the stand-in Keycloak, the authenticator app is the second factor, registrations
are kept as Keycloak user attributes, and the ID token's `sub` is the Keycloak user id."""
from __future__ import annotations

import json

import pytest

from tests.fixtures.app import PASSWORD
from tests.support.rp import Callback, Page
from tests.test_totp_login import claims_of, code, secret_on, totp_settings


@pytest.fixture
def agent(keycloak):
    return keycloak.add_user("agent", PASSWORD, email="agent@example.com", name="Agent Smith", groups=("support",))


@pytest.fixture
def served(serve, tmp_path, keycloak, agent):
    settings = totp_settings(tmp_path, "memory://")
    settings["directory"] = keycloak.directory_settings()
    settings["enrollments"] = {"type": "keycloak"}
    return serve(settings, users=())


def enrol(served, rp) -> tuple[bytes, Callback]:
    page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    assert isinstance(page, Page) and "Register" in page.html, getattr(page, "error", page)
    secret = secret_on(page)
    result = rp.submit(page, otp=code(served, secret))
    assert isinstance(result, Callback), getattr(result, "error", result)
    return secret, result


def test_first_login_enrols_into_keycloak_and_sub_is_the_keycloak_id(served, keycloak, agent) -> None:
    rp = served.rp()
    secret, callback = enrol(served, rp)
    claims = claims_of(served, rp, callback)
    assert claims["sub"] == agent.id
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    record = json.loads(agent.attributes["twostep.totp"][0])
    assert record["kind"] == "totp" and record["secret"].startswith("v1.")
    [registered] = served.services.enrollments.list(agent.id)
    assert (registered.channel, registered.secret) == ("totp", secret)
    assert keycloak.sessions == {}  # the password check left no session in Keycloak


def test_next_login_is_a_challenge_with_the_secret_kept_in_keycloak(served, keycloak, agent) -> None:
    secret, _ = enrol(served, served.rp())
    served.clock.advance(30)
    rp = served.rp()  # another browser: no SSO session
    page = rp.submit(rp.authorize(), username="AGENT", password=PASSWORD)
    assert isinstance(page, Page) and "qr" not in page.html and 'name="otp"' in page.html
    result = rp.submit(page, otp=code(served, secret))
    assert isinstance(result, Callback), getattr(result, "error", result)
    tokens = rp.redeem(result.params["code"]).json()
    userinfo = rp.userinfo(tokens["access_token"]).json()
    assert userinfo["sub"] == agent.id
    assert (userinfo["preferred_username"], userinfo["name"], userinfo["email"]) == (
        "agent", "Agent Smith", "agent@example.com")
    last_used = json.loads(agent.attributes["twostep.totp"][0])["last_used_at"]
    assert last_used == pytest.approx(served.clock.now(), abs=5)
    assert keycloak.sessions == {}


def test_registrations_reset_in_keycloak_mean_enrol_again(served, keycloak, agent) -> None:
    enrol(served, served.rp())
    del agent.attributes["twostep.totp"]  # an administrator removed it (lost phone)
    rp = served.rp()
    page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    assert "Register" in page.html


@pytest.mark.parametrize(("arrange", "password", "message"), [
    (lambda kc, u: None, "wrong", "Incorrect username or password."),
    (lambda kc, u: setattr(u, "enabled", False), PASSWORD,
     "Your account is disabled. Please contact your administrator."),
    (lambda kc, u: setattr(u, "required_actions", ["UPDATE_PASSWORD"]), PASSWORD,
     "Finish setting up your account in Keycloak, then sign in here again."),
    (lambda kc, u: (setattr(kc, "brute_force_max_failures", 1), setattr(u, "failures", 1)), PASSWORD,
     "Your account is temporarily locked after too many failed sign-in attempts."
     " Try again later, or contact your administrator."),
    (lambda kc, u: kc.faults.update(token=503), PASSWORD, "Sign-in is temporarily unavailable, try again shortly."),
], ids=["wrong-password", "disabled", "not-fully-set-up", "locked", "keycloak-down"])
def test_what_the_user_reads_on_the_login_page(served, keycloak, agent, arrange, password, message) -> None:
    arrange(keycloak, agent)
    rp = served.rp()
    page = rp.submit(rp.authorize(), username="agent", password=password)
    assert isinstance(page, Page) and 'name="password"' in page.html
    assert page.error == message


def test_a_refused_client_is_a_generic_page_and_a_log_line(served, keycloak, agent, caplog) -> None:
    keycloak.clients["twostep"].secret = "rotated-in-keycloak-but-not-in-twostep"
    rp = served.rp()
    page = rp.authorize()
    response = rp.browser.post(page.form_action, data={**page.hidden(), "username": "agent", "password": PASSWORD},
                               allow_redirects=False)
    assert response.status_code == 500
    assert "Sign-in is not configured correctly. Please contact your administrator." in response.text
    assert "invalid_client" in caplog.text and "Traceback" not in response.text


def test_groups_claim_releases_the_keycloak_groups(serve, tmp_path, keycloak, agent) -> None:
    settings = totp_settings(tmp_path, "memory://", {"default": ["password"]})
    settings["directory"] = {**keycloak.directory_settings(), "groups_claim": "groups"}
    served = serve(settings, users=())
    rp = served.rp()
    tokens = rp.login_tokens("agent", PASSWORD)
    from joserfc import jwt

    claims = jwt.decode(tokens["id_token"], served.services.keys.current, algorithms=["RS256"]).claims
    assert claims["groups"] == ["support"]
    assert rp.userinfo(tokens["access_token"]).json()["groups"] == ["support"]
