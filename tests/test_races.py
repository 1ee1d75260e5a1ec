"""Races on a real Redis: what two requests could both win, exactly one does."""
from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fixtures.app import PASSWORD, base_settings
from tests.support.rp import Callback, Page
from tests.test_totp_login import code, enrol, totp_settings

pytestmark = pytest.mark.redis
RACERS = 20


def race(function, arguments):
    with ThreadPoolExecutor(max_workers=RACERS) as pool:
        return list(pool.map(function, arguments))


def test_one_authorization_code_redeemed_at_once_yields_one_token_response(serve, tmp_path, redis_url):
    served = serve(base_settings(tmp_path, redis_url))
    rp = served.rp()
    callback = rp.sign_in("agent", PASSWORD)
    statuses = race(lambda _: rp.redeem(callback.params["code"]).status_code, range(RACERS))
    assert sorted(statuses) == [200] + [400] * (RACERS - 1)


def test_one_totp_code_submitted_at_once_is_accepted_once(serve, tmp_path, redis_url):
    served = serve(totp_settings(tmp_path, redis_url))
    secret, _ = enrol(served, served.rp())
    served.clock.advance(30)
    browsers = []
    for _ in range(RACERS):
        rp = served.rp()
        page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
        assert isinstance(page, Page) and ">Send</button>" in page.html
        browsers.append((rp, page))
    typed = code(served, secret)
    results = race(lambda pair: pair[0].submit(pair[1], otp=typed), browsers)
    assert sum(isinstance(r, Callback) for r in results) == 1


def test_two_browsers_racing_on_one_flow_cannot_both_complete(serve, tmp_path, redis_url):
    served = serve(base_settings(tmp_path, redis_url))
    rp = served.rp()
    page = rp.authorize()
    clones = []
    for _ in range(RACERS):
        clone = served.rp()
        clone.browser.cookies = copy.deepcopy(rp.browser.cookies)  # the same flow cookie, stolen or copied
        clones.append(clone)
    results = race(lambda clone: clone.submit(page, username="agent", password=PASSWORD), clones)
    assert sum(isinstance(r, Callback) for r in results) == 1


def test_one_sms_code_submitted_at_once_is_accepted_once(serve, tmp_path, redis_url, sms_gateway):
    from tests.test_sms_login import GB, enrol, sms_settings, twilio_gateway

    served = serve(sms_settings(tmp_path, redis_url, twilio_gateway(sms_gateway)))
    enrol(served, sms_gateway, served.rp())
    served.clock.advance(30)
    rp = served.rp()
    page = rp.submit(rp.authorize(), username="agent", password=PASSWORD)
    assert isinstance(page, Page) and 'name="otp"' in page.html
    code = sms_gateway.code_for(GB)
    clones = []
    for _ in range(RACERS):
        clone = served.rp()
        clone.browser.cookies = copy.deepcopy(rp.browser.cookies)
        clones.append(clone)
    results = race(lambda clone: clone.submit(page, otp=code), clones)
    assert sum(isinstance(r, Callback) for r in results) == 1, [getattr(r, "error", r) for r in results][:3]
