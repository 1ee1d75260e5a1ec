"""What operators watch: /healthz and /readyz, /metrics (counted from the audit events), request
ids, JSON log lines, the metrics port, the RSA call instrumentation and the gunicorn settings."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from provider.observability import metrics
from provider.observability.logs import JsonFormatter
from provider.settings import SettingsError, load_settings
from tests.fixtures.app import PASSWORD, base_settings
from tests.support.processes import free_port
from tests.support.rp import Callback
from tests.test_totp_login import code, enrol, totp_settings


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    response = requests.get(url, timeout=5)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def served(serve, tmp_path, state_url):
    return serve(totp_settings(tmp_path, state_url))


# -- health -----------------------------------------------------------------------------------


def test_healthz_and_readyz(served):
    assert requests.get(f"{served.url}/healthz", timeout=5).json() == {"status": "ok"}
    response = requests.get(f"{served.url}/readyz", timeout=5)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"state_store", "directory", "enrollments"}
    assert {check["status"] for check in body["checks"].values()} == {"ok"}
    assert body["checks"]["directory"]["backend"] == "sqlite"


def test_readyz_names_the_dependency_that_fails(serve, tmp_path):
    closed = free_port()
    served = serve(base_settings(tmp_path, f"redis://:hunter2@127.0.0.1:{closed}/0"))
    response = requests.get(f"{served.url}/readyz", timeout=10)
    assert response.status_code == 503
    assert response.json()["checks"]["state_store"] == {**response.json()["checks"]["state_store"],
                                                         "status": "unavailable", "backend": "redis"}
    assert response.json()["checks"]["directory"]["status"] == "ok"
    assert str(closed) not in response.text and "hunter2" not in response.text
    assert requests.get(f"{served.url}/healthz", timeout=5).status_code == 200


# -- request ids and logs ---------------------------------------------------------------------


def test_every_response_carries_a_request_id(served):
    fresh = requests.get(f"{served.url}/.well-known/openid-configuration", timeout=5).headers["X-Request-Id"]
    again = requests.get(f"{served.url}/.well-known/openid-configuration", timeout=5).headers["X-Request-Id"]
    assert len(fresh) == 32 and fresh != again
    offered = requests.get(f"{served.url}/nowhere", headers={"X-Request-Id": "proxy-1234-abcd"}, timeout=5)
    assert offered.status_code == 404 and offered.headers["X-Request-Id"] == "proxy-1234-abcd"
    for junk in ("short", "a b c d e f g h", "x" * 200, "évènement-1234"):
        replaced = requests.post(f"{served.url}/token", headers={"X-Request-Id": junk}, timeout=5)
        assert replaced.status_code in (400, 401) and len(replaced.headers["X-Request-Id"]) == 32


def test_log_lines_are_json_with_the_request_id(served, caplog):
    caplog.set_level(logging.INFO)
    rp = served.rp()
    page = rp.browser.get(f"{served.url}/authorize", params=rp.authorize_params(),
                          headers={"X-Request-Id": "req-000111222"}, allow_redirects=False)
    assert page.status_code == 302
    lines = [json.loads(JsonFormatter().format(record)) for record in caplog.records
             if getattr(record, "request_id", None) == "req-000111222"]
    started = next(line for line in lines if line.get("event") == "login.started")
    assert started["logger"] == "twostep.audit" and started["client_id"] == "agent-desk"
    assert started["flow"] == "default" and started["ip"] == "127.0.0.1"
    access = next(line for line in lines if line["logger"] == "twostep.access")
    assert access["route"] == "/authorize" and access["status"] == 302 and access["method"] == "GET"
    assert "code_challenge" not in json.dumps(lines)  # never the query string
    assert access["time"].endswith("Z") and access["level"] == "INFO"


def test_an_exception_is_one_json_line():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("twostep", logging.ERROR, __file__, 1, "failed: %s", ("x",), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "failed: x" and "ValueError: boom" in parsed["exception"]


# -- metrics ----------------------------------------------------------------------------------


def test_metrics_count_logins_factors_requests_and_active_flows(served):
    before = scrape(f"{served.url}/metrics")
    secret, _ = enrol(served, served.rp())
    served.clock.advance(30)
    rp = served.rp()
    page = rp.submit(rp.authorize(), username="agent", password="not the password")
    page = rp.submit(page, username="agent", password=PASSWORD)
    page = rp.submit(page, otp=f"{(int(code(served, secret)) + 1) % 1_000_000:06d}")
    during = scrape(f"{served.url}/metrics")
    callback = rp.submit(page, otp=code(served, secret))
    assert isinstance(callback, Callback)
    rp.redeem(callback.params["code"])
    after = scrape(f"{served.url}/metrics")

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    login = {"client": "agent-desk", "flow": "default"}
    assert grew("twostep_logins_started_total", **login) == 2
    assert grew("twostep_logins_completed_total", **login) == 2
    assert grew("twostep_logins_failed_total", **login, reason="invalid_credentials") == 1
    assert grew("twostep_logins_failed_total", **login, reason="second_factor") == 1
    assert grew("twostep_factor_verifications_total", channel="totp", outcome="success") == 2
    assert grew("twostep_factor_verifications_total", channel="totp", outcome="wrong") == 1
    assert grew("twostep_audit_events_total", event="factor.enrolled") == 1
    assert grew("twostep_http_requests_total", route="/token", method="POST", status="200") == 1
    assert grew("twostep_http_request_duration_seconds_count", route="/login/<flow_id>", method="POST") == 6
    assert value(during, "twostep_active_flows") == 1
    assert value(after, "twostep_active_flows") == 0


def test_sms_events_are_counted_by_gateway():
    before = value_of(metrics.SMS_MESSAGES, "twilio", "sent")
    logging.getLogger("twostep.audit").info(json.dumps({"event": "sms.sent", "gateway": "twilio", "channel": "sms"}))
    metrics.count_audit_events()
    logging.getLogger("twostep.audit").info(json.dumps({"event": "sms.sent", "gateway": "twilio", "channel": "sms"}))
    assert value_of(metrics.SMS_MESSAGES, "twilio", "sent") - before >= 1


def value_of(counter, *labels: str) -> float:
    return counter.labels(*labels)._value.get()


def test_metrics_listen_serves_the_metrics_on_their_own_port(serve, tmp_path):
    port = free_port()
    served = serve({**base_settings(tmp_path, "memory://"), "metrics": {"listen": f"127.0.0.1:{port}"}})
    requests.get(f"{served.url}/healthz", timeout=5)
    samples = scrape(f"http://127.0.0.1:{port}/metrics")
    assert value(samples, "twostep_http_requests_total", route="/healthz", method="GET", status="200") >= 1
    assert ("twostep_active_flows", frozenset()) in samples
    assert requests.get(f"{served.url}/metrics", timeout=5).status_code == 404


@pytest.mark.parametrize("listen", ["9100", "localhost", "host:0", "host:99999", ":9100"])
def test_metrics_listen_must_be_host_and_port(tmp_path: Path, listen: str):
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump({**base_settings(tmp_path, "memory://"), "issuer": "http://127.0.0.1:8080",
                                    "metrics": {"listen": listen}}))
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    assert any(": metrics.listen: host:port" in problem for problem in caught.value.problems)


def test_state_timeout_and_pool_size_are_settings(tmp_path: Path):
    path = tmp_path / "settings.yaml"
    settings = {**base_settings(tmp_path, "redis://127.0.0.1:6379/0"), "issuer": "http://127.0.0.1:8080"}
    settings["state"] = {**settings["state"], "timeout": 0.5, "pool_size": 64}
    path.write_text(yaml.safe_dump(settings))
    assert (load_settings(path).state.timeout, load_settings(path).state.pool_size) == (0.5, 64)
    settings["state"] = {**settings["state"], "timeout": 0, "pool_size": 0}
    path.write_text(yaml.safe_dump(settings))
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    assert [p.split(": ")[1] for p in caught.value.problems] == ["state.timeout", "state.pool_size"]


# -- RSA calls --------------------------------------------------------------------------------


class Accepted:
    pass


class ServerProblem:
    pass


class StubTransport:
    type_name = "radius"

    def __init__(self, verdicts: list) -> None:
        self.verdicts = verdicts

    def check_passcode(self, username: str, passcode: str, client_ip: str | None = None):
        return self.verdicts.pop(0)

    def check_next_tokencode(self, username, tokencode, attempt, client_ip=None):
        raise TimeoutError("the server went away")

    def describe(self) -> str:
        return "radius 127.0.0.1:1812"


def test_rsa_calls_are_counted_by_verdict_and_timed():
    class Channel:
        transport = StubTransport([Accepted(), ServerProblem()])

    channels = {"rsa": Channel()}
    metrics.instrument_rsa(channels)
    metrics.instrument_rsa(channels)  # once only
    transport = channels["rsa"].transport
    assert isinstance(transport, metrics.InstrumentedTransport)
    assert not isinstance(transport._transport, metrics.InstrumentedTransport)
    before = {outcome: value_of(metrics.RSA_REQUESTS, "radius", outcome)
              for outcome in ("accepted", "server_problem", "exception")}
    timed = metrics.RSA_LATENCY.labels("radius")._sum.get()
    assert isinstance(transport.check_passcode("alice", "12345678123456"), Accepted)
    assert isinstance(transport.check_passcode("alice", "12345678123456"), ServerProblem)
    with pytest.raises(TimeoutError):
        transport.check_next_tokencode("alice", "123456", {})
    assert transport.describe() == "radius 127.0.0.1:1812"  # everything else passes through
    for outcome in before:
        assert value_of(metrics.RSA_REQUESTS, "radius", outcome) - before[outcome] == 1
    assert metrics.RSA_LATENCY.labels("radius")._sum.get() > timed


# -- the gunicorn settings --------------------------------------------------------------------


def test_gunicorn_settings_follow_the_twostep_settings(tmp_path: Path):
    path = tmp_path / "settings.yaml"
    settings = {**base_settings(tmp_path, "redis://127.0.0.1:6379/0"), "issuer": "http://127.0.0.1:8080",
                "trusted_proxies": ["10.0.0.0/8", "2001:db8::/32"]}
    path.write_text(yaml.safe_dump(settings))
    memory = tmp_path / "memory.yaml"
    memory.write_text(yaml.safe_dump({**settings, "state": {"url": "memory://"}}))
    probe = ("import importlib, json, os, sys\n"
             "for path in sys.argv[1:]:\n"
             "    os.environ['TWOSTEP_CONFIG'] = path\n"
             "    import provider.gunicorn_conf as c\n"
             "    c = importlib.reload(c)\n"
             "    print(json.dumps([c.forwarded_allow_ips, c.workers, c.threads, c.worker_class, c.graceful_timeout,"
             " c.wsgi_app, c.preload_app]))\n")
    env = {**os.environ, "TWOSTEP_WORKERS": "3", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    out = subprocess.run([sys.executable, "-c", probe, str(path), str(memory)], env=env, capture_output=True,
                         text=True, check=True, cwd=Path(__file__).parents[1])
    redis_state, memory_state = (json.loads(line) for line in out.stdout.strip().splitlines()[-2:])
    assert redis_state == ["10.0.0.0/8,2001:db8::/32", 3, 2, "gthread", 30, "provider.app:create_app()", False]
    assert memory_state[1] == 1  # memory:// state lives in one process
