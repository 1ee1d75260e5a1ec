"""Scale-out: two gunicorn instances on their own loopback ports share one real Redis and one real
PostgreSQL. A login's steps alternate between them, and a flow outlives the instance it was
started on: all its state is in Redis, and both sign with the same keys."""
from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import requests
import yaml
from joserfc import jwt
from joserfc.jwk import KeySet
from prometheus_client.parser import text_string_to_metric_families

from provider.app import open_directory
from provider.channels import totp_codes
from provider.settings import load_settings
from tests.fixtures.app import PASSWORD, SECRET
from tests.support.processes import Gunicorn, free_port
from tests.support.rp import Callback, Page, RelyingParty
from tests.test_totp_login import secret_on, totp_settings

pytestmark = pytest.mark.redis
PARAMS = totp_codes.TotpParameters()


class Authenticator:
    """The user's phone: the code of the earliest time step the server still accepts and has not
    seen yet (each step is accepted once per user, RFC 6238 5.2)."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.last = -1

    def code(self) -> str:
        import time

        step = max(totp_codes.step_at(PARAMS, time.time()) - PARAMS.valid_window, self.last + 1)
        self.last = step
        return totp_codes.code_at(self.secret, PARAMS, step)


def on(page: Page, instance: Gunicorn) -> Page:
    """The same page, as if served by `instance`: its form is then posted there."""
    path = "/" + page.url.split("/", 3)[3]
    return Page(instance.url + path, page.status, page.html)


def rp_on(rp: RelyingParty, instance: Gunicorn) -> RelyingParty:
    """The same browser and relying party (cookies, PKCE verifier), talking to `instance`."""
    return replace(rp, base=instance.url)


def metric(instance_url: str, name: str, **labels: str) -> float:
    text = requests.get(instance_url, timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


@pytest.fixture
def cluster(tmp_path: Path, redis_url: str, postgres_url: str, gunicorn) -> tuple[Gunicorn, Gunicorn, str]:
    """Instances A and B, one issuer (A's URL: what relying parties are configured with), and a
    user enrolled for nothing yet. B serves its metrics on a port of their own."""
    a_port, b_port, metrics_port = free_port(), free_port(), free_port()
    settings = totp_settings(tmp_path, redis_url)
    settings.update(issuer=f"http://127.0.0.1:{a_port}", storage={"url": postgres_url},
                    trusted_proxies=["127.0.0.0/8"])
    a_path, b_path = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a_path.write_text(yaml.safe_dump(settings))
    b_path.write_text(yaml.safe_dump({**settings, "metrics": {"listen": f"127.0.0.1:{metrics_port}"}}))
    username = f"agent-{uuid.uuid4().hex[:10]}"
    open_directory(load_settings(a_path)).add_user(username, PASSWORD)  # and the schema, before any worker
    a = gunicorn(a_path, port=a_port)  # first: it creates the signing keys B then reads
    b = gunicorn(b_path, port=b_port, workers=1)
    return a, b, username


def new_browser(instance: Gunicorn) -> RelyingParty:
    return RelyingParty(instance.url, client_id="agent-desk", client_secret=SECRET,
                        redirect_uri="https://desk.example.com/callback")


@pytest.mark.postgres
def test_steps_alternate_between_instances_and_a_flow_survives_its_instance(cluster, tmp_path: Path) -> None:
    a, b, username = cluster
    metrics_b = f"http://127.0.0.1:{load_settings(tmp_path / 'b.yaml').metrics.listen.split(':')[1]}/metrics"

    # 1. First login enrols the app: authorize on A, password on B, first code on A, token on B.
    rp = new_browser(a)
    page = rp.authorize()
    assert isinstance(page, Page) and 'name="password"' in page.html
    enrolment = rp_on(rp, b).submit(on(page, b), username=username, password=PASSWORD)
    assert isinstance(enrolment, Page) and "Register" in enrolment.html
    phone = Authenticator(secret_on(enrolment))
    callback = rp.submit(on(enrolment, a), otp=phone.code())
    assert isinstance(callback, Callback), getattr(callback, "error", callback)
    assert callback.params["iss"] == a.url
    assert rp_on(rp, b).redeem(callback.params["code"]).status_code == 200

    # 2. Second login, a challenge: authorize on A, password on B, code on A, token on B,
    #    userinfo on A, refresh on B; the ID token verifies with the keys either one publishes.
    rp = new_browser(a)
    page = rp.authorize()
    challenge = rp_on(rp, b).submit(on(page, b), username=username, password=PASSWORD)
    assert isinstance(challenge, Page) and 'name="otp"' in challenge.html and "qr" not in challenge.html
    callback = rp.submit(on(challenge, a), otp=phone.code())
    assert isinstance(callback, Callback), getattr(callback, "error", callback)
    tokens = rp_on(rp, b).redeem(callback.params["code"]).json()
    claims = jwt.decode(tokens["id_token"], KeySet.import_key_set(requests.get(f"{a.url}/jwks", timeout=5).json()),
                        algorithms=["RS256"]).claims
    assert claims["iss"] == a.url and claims["amr"] == ["pwd", "otp", "mfa"]
    assert requests.get(f"{b.url}/jwks", timeout=5).json() == requests.get(f"{a.url}/jwks", timeout=5).json()
    assert rp.userinfo(tokens["access_token"]).json()["preferred_username"] == username
    refreshed = rp_on(rp, b).refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert isinstance(rp_on(rp, b).authorize(prompt="none"), Callback)  # the SSO session, on B

    # 3. A third login gets as far as the challenge on A; A is stopped (SIGTERM: graceful); B
    #    finishes the flow A started, and B's metrics count the flow in progress cluster-wide.
    rp = new_browser(a)
    challenge = rp.submit(rp.authorize(), username=username, password=PASSWORD)
    assert isinstance(challenge, Page) and 'name="otp"' in challenge.html
    assert metric(f"{a.url}/metrics", "twostep_logins_completed_total", client="agent-desk", flow="default") == 2
    assert metric(f"{a.url}/metrics", "twostep_factor_verifications_total", channel="totp", outcome="success") == 2
    assert metric(metrics_b, "twostep_active_flows") == 1
    assert a.stop() == 0
    callback = rp_on(rp, b).submit(on(challenge, b), otp=phone.code())
    assert isinstance(callback, Callback), getattr(callback, "error", callback)
    response = rp_on(rp, b).redeem(callback.params["code"])
    assert response.status_code == 200
    assert rp_on(rp, b).userinfo(response.json()["access_token"]).json()["preferred_username"] == username
    assert metric(metrics_b, "twostep_logins_completed_total", client="agent-desk", flow="default") == 1
    assert metric(metrics_b, "twostep_active_flows") == 0
    assert requests.get(f"{b.url}/metrics", timeout=5).status_code == 404  # metrics.listen only

    # Graceful: A's workers said goodbye, and nothing anywhere logged a stack trace.
    assert any("Worker exiting" in line for line in a.log_lines())
    assert not any("Traceback" in line for line in a.log_lines() + b.log_lines())


def test_logs_are_json_lines_with_the_request_id_and_the_client_address_from_trusted_proxies(
    tmp_path: Path, redis_url: str, gunicorn
) -> None:
    port = free_port()
    settings = {**totp_settings(tmp_path, redis_url), "issuer": f"http://127.0.0.1:{port}",
                "trusted_proxies": ["127.0.0.0/8"]}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(settings))
    a = gunicorn(tmp_path / "a.yaml", port=port, workers=1)
    response = requests.get(f"{a.url}/authorize", params={"client_id": "nobody"},
                            headers={"X-Request-Id": "lb-4f2a9c1e77", "X-Forwarded-For": "203.0.113.9"}, timeout=5)
    assert response.status_code == 400 and response.headers["X-Request-Id"] == "lb-4f2a9c1e77"
    generated = requests.get(f"{a.url}/healthz", timeout=5).headers["X-Request-Id"]
    assert len(generated) == 32
    lines = [json.loads(line) for line in a.log_lines()]  # every line is JSON, gunicorn's too
    access = [line for line in lines
              if line.get("request_id") == "lb-4f2a9c1e77" and line["logger"] == "twostep.access"]
    assert access and access[0]["route"] == "/authorize" and access[0]["status"] == 400
    assert access[0]["ip"] == "203.0.113.9"  # X-Forwarded-For believed: 127.0.0.1 is a trusted proxy
    assert "nobody" not in json.dumps(access)  # no query strings in the log
    assert any(line.get("message", "").startswith("twostep http://") and "forwarded_allow_ips=127.0.0.0/8"
               in line["message"] for line in lines)
