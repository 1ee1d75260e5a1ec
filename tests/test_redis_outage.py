"""Redis goes away in the middle of a login (a redis-server of this test's own, stopped and
restarted; it keeps nothing on disk, so it comes back empty). Every page and endpoint that needs
it answers 503 in words, never a stack trace; /readyz says which dependency failed; once Redis
is back, new logins work without restarting twostep, and durable data is untouched."""
from __future__ import annotations

import logging
import time

import pytest
import requests

from provider.channels import totp_codes
from tests.fixtures.app import PASSWORD
from tests.support.rp import Callback, Page
from tests.test_totp_login import enrol, totp_settings

pytestmark = pytest.mark.redis

UNAVAILABLE = "Sign-in is temporarily unavailable, try again shortly."
PARAMS = totp_codes.TotpParameters()


def assert_unavailable_page(response: requests.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert UNAVAILABLE in response.text and "Traceback" not in response.text
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Retry-After"] == "5"


def assert_unavailable_json(response: requests.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.json() == {"error": "temporarily_unavailable", "error_description": UNAVAILABLE}
    assert response.headers["Cache-Control"] == "no-store"


def test_a_redis_outage_mid_flow_is_a_503_and_twostep_recovers_by_itself(serve, tmp_path, own_redis, caplog):
    caplog.set_level(logging.INFO)
    served = serve(totp_settings(tmp_path, own_redis.url))
    secret, first = enrol(served, served.rp())
    tokens = served.rp().redeem(first.params["code"])  # another RP object: the same client
    tokens = tokens.json() if tokens.status_code == 200 else None
    rp = served.rp()
    challenge = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    assert isinstance(challenge, Page) and 'name="otp"' in challenge.html

    own_redis.stop()
    data = {**challenge.hidden(), "otp": "123456"}
    assert_unavailable_page(rp.browser.post(challenge.form_action, data=data, allow_redirects=False))
    assert_unavailable_page(rp.browser.get(challenge.url, allow_redirects=False))
    assert_unavailable_page(served.rp().browser.get(f"{served.url}/authorize", params=rp.authorize_params()))
    assert_unavailable_json(rp.token_request({"grant_type": "refresh_token", "refresh_token": "whatever"}))
    if tokens:
        assert_unavailable_json(rp.userinfo(tokens["access_token"]))
    ready = requests.get(f"{served.url}/readyz", timeout=10)
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["state_store"]["status"] == "unavailable"
    assert checks["directory"]["status"] == checks["enrollments"]["status"] == "ok"
    assert str(own_redis.port) not in ready.text  # where Redis is goes to the log, not to the world
    assert requests.get(f"{served.url}/healthz", timeout=5).status_code == 200  # the process is fine
    assert requests.get(f"{served.url}/.well-known/openid-configuration", timeout=5).status_code == 200

    own_redis.start()  # the same port, empty: every flow, session and token is gone
    assert requests.get(f"{served.url}/readyz", timeout=10).status_code == 200
    expired = rp.browser.get(challenge.url, allow_redirects=False)
    assert expired.status_code == 410 and "Your sign-in session expired." in expired.text
    rp = served.rp()
    challenge = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    assert isinstance(challenge, Page) and 'name="otp"' in challenge.html  # the enrolment is durable
    step = totp_codes.step_at(PARAMS, time.time()) + 1  # later than the one enrolment used
    callback = rp.submit(challenge, otp=totp_codes.code_at(secret, PARAMS, step))
    assert isinstance(callback, Callback), getattr(callback, "error", callback)
    assert rp.redeem(callback.params["code"]).status_code == 200

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Traceback" not in logged and not any(record.exc_info for record in caplog.records)
    assert "request failed: unavailable: Redis at 127.0.0.1" in logged


def test_a_hung_redis_answers_503_within_the_timeout(serve, tmp_path, own_redis):
    settings = totp_settings(tmp_path, own_redis.url)
    served = serve(settings)
    rp = served.rp()
    page = rp.authorize()
    own_redis.pause()  # connections stay open and nothing answers
    try:
        started = time.monotonic()
        response = rp.browser.get(page.url, allow_redirects=False)
        elapsed = time.monotonic() - started
    finally:
        own_redis.resume()
    assert_unavailable_page(response)
    timeout = served.services.settings.state.timeout
    assert elapsed < timeout + 2.0, elapsed
    assert rp.follow(rp.browser.get(page.url, allow_redirects=False)).status == 200  # the same flow, unharmed
