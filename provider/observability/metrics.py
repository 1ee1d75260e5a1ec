"""Prometheus metrics, in multi-process mode under gunicorn.

What happened in a sign-in is counted from the audit events (the ``twostep.audit`` logger): the
audit log is the one record of logins, factors and SMS, so a metric can never disagree with it,
and no step or channel carries metrics code. (Keycloak's metrics work the same way, from its
event listener.) What the audit log does not hold is measured here directly: request latency,
RSA calls with their latency, and the number of active flows, read from the state store when
the metrics are collected, so every instance reports the same cluster-wide figure.

Under gunicorn each worker writes its counters to files in ``PROMETHEUS_MULTIPROC_DIR`` (set by
``provider.gunicorn_conf``), and a scrape adds them up over all workers: on ``/metrics`` of the
main port, or on ``metrics.listen``, served by the gunicorn master.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, start_http_server

from provider.errors import ServiceUnavailable
from provider.login.state import ACTIVE_FLOWS
from provider.storage.state import StateStore

log = logging.getLogger(__name__)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
SERVED_BY_MASTER = "TWOSTEP_METRICS_SERVED_BY_MASTER"  # set by gunicorn_conf when metrics.listen is served there
LABEL_LIMIT = 100  # label values come from settings and code; clipped all the same

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

LOGINS_STARTED = Counter("twostep_logins_started", "Login flows started (authorization requests that need a login)",
                         ["client", "flow"])
LOGINS_COMPLETED = Counter("twostep_logins_completed", "Login flows completed: an authorization code was issued",
                           ["client", "flow"])
LOGINS_FAILED = Counter("twostep_logins_failed", "Failed sign-in attempts: a wrong password (reason from the"
                        " directory) or a failed second factor (reason second_factor)", ["client", "flow", "reason"])
FACTOR_VERIFICATIONS = Counter("twostep_factor_verifications", "Second-factor proofs, at enrolment and challenge;"
                               " outcome is success or why it failed", ["channel", "outcome"])
SMS_MESSAGES = Counter("twostep_sms_messages", "SMS messages by gateway; outcome sent, failed or throttled",
                       ["gateway", "outcome"])
RSA_REQUESTS = Counter("twostep_rsa_requests", "Calls to RSA Authentication Manager by transport and verdict",
                       ["transport", "outcome"])
RSA_LATENCY = Histogram("twostep_rsa_request_duration_seconds", "Time RSA Authentication Manager took to answer",
                        ["transport"], buckets=LATENCY_BUCKETS)
HTTP_REQUESTS = Counter("twostep_http_requests", "HTTP requests by route, method and status",
                        ["route", "method", "status"])
HTTP_LATENCY = Histogram("twostep_http_request_duration_seconds", "Time to answer an HTTP request, by route",
                         ["route", "method"], buckets=LATENCY_BUCKETS)
AUDIT_EVENTS = Counter("twostep_audit_events", "Audit events by name", ["event"])


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_LATENCY.labels(route, method).observe(seconds)


# -- from audit events ----------------------------------------------------------------------


def _label(event: Mapping[str, Any], field: str, default: str = "") -> str:
    value = event.get(field)
    return str(value)[:LABEL_LIMIT] if value is not None else default


def _login_started(event: Mapping[str, Any]) -> None:
    LOGINS_STARTED.labels(_label(event, "client_id"), _label(event, "flow")).inc()


def _login_succeeded(event: Mapping[str, Any]) -> None:
    LOGINS_COMPLETED.labels(_label(event, "client_id"), _label(event, "flow")).inc()


def _login_failed(event: Mapping[str, Any]) -> None:
    LOGINS_FAILED.labels(_label(event, "client_id"), _label(event, "flow"), _label(event, "reason", "unknown")).inc()


def _factor_verified(event: Mapping[str, Any]) -> None:
    FACTOR_VERIFICATIONS.labels(_label(event, "channel"), "success").inc()


def _factor_failed(event: Mapping[str, Any]) -> None:
    FACTOR_VERIFICATIONS.labels(_label(event, "channel"), _label(event, "reason", "failure")).inc()
    LOGINS_FAILED.labels(_label(event, "client_id"), _label(event, "flow"), "second_factor").inc()


def _sms(outcome: str) -> Callable[[Mapping[str, Any]], None]:
    def count(event: Mapping[str, Any]) -> None:
        SMS_MESSAGES.labels(_label(event, "gateway", "unknown"), outcome).inc()

    return count


EVENT_METRICS: dict[str, Callable[[Mapping[str, Any]], None]] = {
    "login.started": _login_started,
    "login.succeeded": _login_succeeded,
    "login.failed": _login_failed,
    "factor.verified": _factor_verified,
    "factor.challenge_failed": _factor_failed,
    "sms.sent": _sms("sent"),
    "sms.failed": _sms("failed"),
    "sms.throttled": _sms("throttled"),
}


class AuditMetrics(logging.Handler):
    """Counts each audit event (a JSON line on ``twostep.audit``) into the metrics above."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event = json.loads(record.getMessage())
            name = str(event["event"])[:LABEL_LIMIT]
        except (ValueError, KeyError, TypeError):
            return  # not an audit event: nothing to count
        AUDIT_EVENTS.labels(name).inc()
        count = EVENT_METRICS.get(name)
        if count is not None:
            count(event)


_AUDIT_METRICS = AuditMetrics()


def count_audit_events() -> None:
    """Attach the counter to the audit logger, once per process whatever the number of apps,
    and let INFO through: audit events are INFO, and a logger left at the root's WARNING
    would drop them before any handler sees them."""
    logger = logging.getLogger("twostep.audit")
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    if _AUDIT_METRICS not in logger.handlers:
        logger.addHandler(_AUDIT_METRICS)


# -- RSA calls ------------------------------------------------------------------------------


VERDICT_OUTCOMES = {"Accepted": "accepted", "Rejected": "rejected", "NextTokencode": "next_tokencode",
                    "NewPinRequired": "new_pin_required", "ConfigurationProblem": "configuration_problem",
                    "ServerProblem": "server_problem"}


class InstrumentedTransport:
    """An RSA transport whose checks are counted by verdict and timed. Everything else is the
    wrapped transport's own."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._label = str(getattr(transport, "type_name", type(transport).__name__))[:LABEL_LIMIT]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def check_passcode(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed(self._transport.check_passcode, *args, **kwargs)

    def check_next_tokencode(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed(self._transport.check_next_tokencode, *args, **kwargs)

    def _timed(self, check: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        outcome = "exception"
        try:
            verdict = check(*args, **kwargs)
            outcome = VERDICT_OUTCOMES.get(type(verdict).__name__, "other")
            return verdict
        finally:
            RSA_LATENCY.labels(self._label).observe(time.perf_counter() - started)
            RSA_REQUESTS.labels(self._label, outcome).inc()


def instrument_rsa(channels: Mapping[str, Any]) -> None:
    """Time and count the calls of every RSA channel's transport (its ``transport``, which
    has ``check_passcode``). Once: an instrumented transport is left as it is."""
    for channel in channels.values():
        transport = getattr(channel, "transport", None)
        if hasattr(transport, "check_passcode") and not isinstance(transport, InstrumentedTransport):
            channel.transport = InstrumentedTransport(transport)


# -- active flows and exposition ------------------------------------------------------------


class ActiveFlows:
    """The number of login flows started and neither finished nor expired, cluster-wide: read
    from the state store at collection time (one small command), never counted per process."""

    def __init__(self, state: StateStore) -> None:
        self._state = state

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            count = self._state.tracked(ACTIVE_FLOWS)
        except ServiceUnavailable as error:
            log.warning("active flows not reported: %s", error.detail)
            return
        yield GaugeMetricFamily("twostep_active_flows", "Login flows in progress (all instances)", value=count)


class _ThisProcess:
    """The metrics of this process (no gunicorn: one process serves everything)."""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def is_multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROCESS_DIR))


def registry_for(state: StateStore | None) -> CollectorRegistry:
    """What a scrape reports: every worker's metrics (multi-process mode) or this process's,
    and the active flows when a state store is given."""
    registry = CollectorRegistry(auto_describe=False)
    if is_multiprocess():
        prometheus_multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    if state is not None:
        registry.register(ActiveFlows(state))
    return registry


def serve(listen: str, registry: CollectorRegistry) -> None:
    """Serve the metrics on their own ``host:port`` (a daemon thread)."""
    host, _, port = listen.rpartition(":")
    start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=registry)
    log.info("metrics served on http://%s/metrics", listen)


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    registry = current_app.extensions["twostep.metrics"]
    return Response(generate_latest(registry), 200, {"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


def install(app: Flask) -> None:
    """Count audit events, instrument RSA transports, and expose the metrics: on ``/metrics``,
    or, with ``metrics.listen`` set, only there (served by the gunicorn master under gunicorn,
    by a thread of this process otherwise)."""
    twostep = app.extensions["twostep"]
    count_audit_events()
    instrument_rsa(twostep.settings.parsed_channels)
    registry = registry_for(twostep.state)
    listen = twostep.settings.metrics.listen
    if listen is None:
        app.extensions["twostep.metrics"] = registry
        app.register_blueprint(bp)
    elif not os.environ.get(SERVED_BY_MASTER):
        serve(listen, registry)
