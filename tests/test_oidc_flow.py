"""The authorization code flow end to end, over real HTTP, on memory and on Redis."""
from __future__ import annotations

import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.fixtures.app import PASSWORD
from tests.support.rp import Callback, Page


def verify_with_jwks(base: str, token: str) -> jwt.Token:
    keys = KeySet.import_key_set(requests.get(f"{base}/jwks", timeout=5).json())
    return jwt.decode(token, keys, algorithms=["RS256"])


def test_full_code_flow_with_pkce(twostep):
    rp = twostep.rp()
    callback = rp.sign_in("agent", PASSWORD)
    assert callback.url.startswith("https://desk.example.com/callback?")
    assert callback.params["state"] == rp.state
    assert callback.params["iss"] == twostep.url  # RFC 9207
    response = rp.redeem(callback.params["code"])
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    tokens = response.json()
    id_token = verify_with_jwks(twostep.url, tokens["id_token"])
    claims = id_token.claims
    assert id_token.header["kid"]
    assert claims["iss"] == twostep.url
    assert claims["aud"] == "agent-desk"
    assert claims["nonce"] == rp.nonce
    assert claims["amr"] == ["pwd"]
    assert claims["acr"] == "1"
    assert {"sub", "exp", "iat", "auth_time", "sid"} <= set(claims)
    user = twostep.services.directory.find("agent")
    assert claims["sub"] == user.id
    access = verify_with_jwks(twostep.url, tokens["access_token"])
    assert access.header["typ"] == "at+jwt"  # RFC 9068
    info = rp.userinfo(tokens["access_token"])
    assert info.status_code == 200
    assert info.json() == {"sub": user.id, "preferred_username": "agent", "name": "Agent",
                           "email": "agent@example.com", "email_verified": False}


def test_public_client_requires_pkce(twostep):
    rp = twostep.public_rp()
    result = rp.authorize(code_challenge=None, code_challenge_method=None)
    assert isinstance(result, Callback)
    assert result.params["error"] == "invalid_request"
    assert result.params["iss"] == twostep.url
    tokens = rp.login_tokens("agent", PASSWORD)
    assert "id_token" in tokens


def test_plain_pkce_is_refused(twostep):
    rp = twostep.rp()
    result = rp.authorize(code_challenge_method="plain")
    assert isinstance(result, Callback) and result.params["error"] == "invalid_request"


def test_pkce_mismatch_is_invalid_grant(twostep):
    rp = twostep.rp()
    callback = rp.sign_in("agent", PASSWORD)
    response = rp.redeem(callback.params["code"], verifier="x" * 50)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_verifier_without_challenge_is_refused(serve, tmp_path, state_url):
    from tests.fixtures.app import base_settings

    settings = base_settings(tmp_path, state_url)
    settings["clients"][0]["require_pkce"] = False
    served = serve(settings)
    rp = served.rp()
    callback = rp.sign_in("agent", PASSWORD, code_challenge=None, code_challenge_method=None)
    response = rp.redeem(callback.params["code"], verifier="v" * 50)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_code_reuse_is_refused_and_revokes_tokens(twostep):
    rp = twostep.rp()
    callback = rp.sign_in("agent", PASSWORD)
    first = rp.redeem(callback.params["code"])
    assert first.status_code == 200
    second = rp.redeem(callback.params["code"])
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"
    assert rp.userinfo(first.json()["access_token"]).status_code == 401
    assert rp.refresh(first.json()["refresh_token"]).json()["error"] == "invalid_grant"


def test_refresh_rotates_and_reuse_revokes_the_family(twostep):
    rp = twostep.rp()
    tokens = rp.login_tokens("agent", PASSWORD)
    rotated = rp.refresh(tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert rp.userinfo(new["access_token"]).status_code == 200
    replay = rp.refresh(tokens["refresh_token"])
    assert replay.json()["error"] == "invalid_grant"
    assert rp.userinfo(new["access_token"]).status_code == 401
    assert rp.refresh(new["refresh_token"]).json()["error"] == "invalid_grant"


def test_refresh_token_is_bound_to_its_client(twostep):
    tokens = twostep.rp().login_tokens("agent", PASSWORD)
    response = twostep.public_rp().refresh(tokens["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(twostep):
    rp = twostep.rp()
    response = rp.browser.get(f"{twostep.url}/authorize",
                              params=rp.authorize_params(redirect_uri="https://evil.example.com/callback"),
                              allow_redirects=False)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "invalid sign-in request" in response.text


def test_redirect_uri_is_matched_exactly(twostep):
    rp = twostep.rp()
    response = rp.browser.get(f"{twostep.url}/authorize",
                              params=rp.authorize_params(redirect_uri="https://desk.example.com/callback/x"),
                              allow_redirects=False)
    assert response.status_code == 400


def test_unknown_client_gets_an_error_page(twostep):
    rp = twostep.rp()
    response = rp.browser.get(f"{twostep.url}/authorize", params=rp.authorize_params(client_id="nobody"),
                              allow_redirects=False)
    assert response.status_code == 400 and "Location" not in response.headers


def test_prompt_none_without_session_is_login_required(twostep):
    rp = twostep.rp()
    result = rp.authorize(prompt="none")
    assert isinstance(result, Callback)
    assert result.params["error"] == "login_required"
    assert result.params["state"] == rp.state
    assert result.params["iss"] == twostep.url


def test_sso_session_is_reused_and_prompt_login_forces_a_password(twostep):
    rp = twostep.rp()
    first = rp.login_tokens("agent", PASSWORD)
    silent = rp.authorize(prompt="none")
    assert isinstance(silent, Callback) and "code" in silent.params
    again = rp.redeem(silent.params["code"]).json()
    first_claims = verify_with_jwks(twostep.url, first["id_token"]).claims
    again_claims = verify_with_jwks(twostep.url, again["id_token"]).claims
    assert again_claims["sid"] == first_claims["sid"]
    assert again_claims["auth_time"] == first_claims["auth_time"]
    forced = rp.authorize(prompt="login")
    assert isinstance(forced, Page) and 'name="password"' in forced.html


def test_max_age_forces_reauthentication(twostep):
    rp = twostep.rp()
    rp.login_tokens("agent", PASSWORD)
    assert isinstance(rp.authorize(max_age="300"), Callback)
    twostep.clock.advance(301)
    page = rp.authorize(max_age="300")
    assert isinstance(page, Page) and 'name="password"' in page.html
    result = rp.authorize(max_age="300", prompt="none")
    assert isinstance(result, Callback) and result.params["error"] == "login_required"


def test_login_hint_prefills_the_username(twostep):
    page = twostep.rp().authorize(login_hint="agent")
    assert isinstance(page, Page)
    assert page.field_value("username") == "agent"


def test_wrong_password_and_unknown_user_look_the_same(twostep):
    rp = twostep.rp()
    page = rp.authorize()
    wrong = rp.submit(page, username="agent", password="nope")
    assert isinstance(wrong, Page)
    unknown = rp.submit(wrong, username="nobody", password="nope")
    assert isinstance(unknown, Page)
    assert wrong.error == unknown.error == "Incorrect username or password."


def test_request_objects_are_not_supported(twostep):
    rp = twostep.rp()
    result = rp.authorize(request="eyJhbGciOiJub25lIn0.e30.")
    assert isinstance(result, Callback) and result.params["error"] == "request_not_supported"
    result = rp.authorize(request_uri="https://desk.example.com/req")
    assert isinstance(result, Callback) and result.params["error"] == "request_uri_not_supported"


def test_unknown_and_optional_parameters_are_accepted(twostep):
    rp = twostep.rp()
    page = rp.authorize(display="page", ui_locales="fr", claims_locales="fr", acr_values="1",
                        claims='{"id_token":{}}', foo="bar")
    assert isinstance(page, Page) and page.status == 200


def test_post_authorization_request(twostep):
    rp = twostep.rp()
    response = rp.browser.post(f"{twostep.url}/authorize", data=rp.authorize_params(), allow_redirects=False)
    page = rp.follow(response)
    assert isinstance(page, Page) and 'name="username"' in page.html


def test_flow_is_bound_to_its_browser(twostep):
    rp = twostep.rp()
    page = rp.authorize()
    stranger = twostep.rp()
    response = stranger.browser.get(page.url)
    assert response.status_code == 410
    assert "expired" in response.text


def test_expired_flow_offers_to_start_again(twostep):
    rp = twostep.rp()
    page = rp.authorize()
    twostep.clock.advance(601)
    result = rp.submit(page, username="agent", password=PASSWORD)
    assert isinstance(result, Page) and result.status == 410
    assert "Your sign-in session expired." in result.html
    assert 'href="/authorize?' in result.html


def test_login_post_without_csrf_token_is_refused(twostep):
    rp = twostep.rp()
    page = rp.authorize()
    fields = {**page.hidden(), "username": "agent", "password": PASSWORD}
    del fields["csrf_token"]
    response = rp.browser.post(page.form_action, data=fields, allow_redirects=False)
    assert response.status_code == 400


def test_double_submit_lands_on_the_current_step(twostep):
    rp = twostep.rp()
    page = rp.authorize()
    wrong = rp.submit(page, username="agent", password="nope")
    assert wrong.error
    # The first page's form again (its version is stale): nothing happens, even with the right password.
    stale = rp.submit(page, username="agent", password=PASSWORD)
    assert isinstance(stale, Page) and 'name="password"' in stale.html


def test_logout_ends_the_session_and_returns_to_the_client(twostep):
    rp = twostep.rp()
    tokens = rp.login_tokens("agent", PASSWORD)
    response = rp.browser.get(f"{twostep.url}/logout", params={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://desk.example.com/bye",
        "state": "s1"}, allow_redirects=False)
    assert response.status_code == 303
    assert response.headers["Location"] == "https://desk.example.com/bye?state=s1"
    result = rp.authorize(prompt="none")
    assert isinstance(result, Callback) and result.params["error"] == "login_required"


def test_logout_refuses_an_unregistered_return_address(twostep):
    rp = twostep.rp()
    tokens = rp.login_tokens("agent", PASSWORD)
    response = rp.browser.get(f"{twostep.url}/logout", params={
        "id_token_hint": tokens["id_token"], "post_logout_redirect_uri": "https://evil.example.com/"},
        allow_redirects=False)
    assert response.status_code == 400 and "Location" not in response.headers


def test_logout_without_hint_asks_for_confirmation(twostep):
    rp = twostep.rp()
    rp.login_tokens("agent", PASSWORD)
    page = rp.follow(rp.browser.get(f"{twostep.url}/logout", allow_redirects=False))
    assert isinstance(page, Page) and "Sign out?" in page.html
    assert isinstance(rp.authorize(prompt="none"), Callback)  # still signed in
    done = rp.browser.post(page.form_action, data=page.hidden(), allow_redirects=False)
    assert done.status_code == 200 and "You are signed out" in done.text
    result = rp.authorize(prompt="none")
    assert result.params["error"] == "login_required"


def test_introspection_and_revocation(twostep):
    rp = twostep.rp()
    tokens = rp.login_tokens("agent", PASSWORD)
    auth = ("agent-desk", rp.client_secret)
    active = requests.post(f"{twostep.url}/introspect", data={"token": tokens["access_token"]}, auth=auth).json()
    assert active["active"] is True and active["client_id"] == "agent-desk"
    assert requests.post(f"{twostep.url}/introspect", data={"token": tokens["access_token"]}).status_code == 401
    revoked = requests.post(f"{twostep.url}/revoke", data={"token": tokens["refresh_token"]}, auth=auth)
    assert revoked.status_code == 200
    assert rp.userinfo(tokens["access_token"]).status_code == 401
    gone = requests.post(f"{twostep.url}/introspect", data={"token": tokens["access_token"]}, auth=auth).json()
    assert gone == {"active": False}


def test_discovery_document(twostep):
    doc = requests.get(f"{twostep.url}/.well-known/openid-configuration", timeout=5).json()
    assert doc["issuer"] == twostep.url
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["response_types_supported"] == ["code"]
