"""Health endpoints for load balancers and orchestrators.

- ``/healthz``: the process is up and serving (liveness). Checks nothing else, so a Redis
  outage never gets healthy instances restarted.
- ``/readyz``: this instance can serve sign-ins (readiness): the state store, the directory
  and the enrolment store answer. With the built-in directory and SQL enrolments, the last two
  are the database. Each dependency is checked at the same time, within ``DEADLINE`` seconds;
  the JSON says which failed. The reasons go to the log, not to the response, which may be
  reachable from outside.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Blueprint, Flask, current_app, jsonify

from provider.errors import TwostepError

log = logging.getLogger(__name__)

DEADLINE = 3.0  # seconds for all checks together
NO_STORE = {"Cache-Control": "no-store"}

_checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="twostep-readyz")

bp = Blueprint("health", __name__)


@dataclass(frozen=True)
class Dependency:
    name: str
    backend: str  # what it is, for the operator reading the JSON: redis, postgresql, keycloak...
    ping: Callable[[], None]


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok"), 200, NO_STORE


@bp.get("/readyz")
def readyz():
    results = {dependency.name: result for dependency, result in check(dependencies(current_app))}
    ready = all(result["status"] == "ok" for result in results.values())
    return jsonify(status="ready" if ready else "unavailable", checks=results), 200 if ready else 503, NO_STORE


def dependencies(app: Flask) -> list[Dependency]:
    twostep = app.extensions["twostep"]
    settings = twostep.settings
    enrollments = getattr(getattr(settings, "enrollments", None), "type", "sql")
    database = urlsplit(settings.storage.url).scheme
    return [
        Dependency("state_store", urlsplit(settings.state.url).scheme, twostep.state.ping),
        Dependency("directory", database if settings.directory.type == "builtin" else settings.directory.type,
                   twostep.directory.ping),
        Dependency("enrollments", database if enrollments == "sql" else enrollments, twostep.enrollments.ping),
    ]


def check(dependencies: list[Dependency], deadline: float = DEADLINE) -> list[tuple[Dependency, dict]]:
    """Ping every dependency at once; each result is ok, unavailable or timeout, with its time."""
    started = time.monotonic()
    futures = [(dependency, _checks.submit(_ping, dependency)) for dependency in dependencies]
    results = []
    for dependency, future in futures:
        try:
            status, seconds = future.result(timeout=max(0.0, started + deadline - time.monotonic()))
        except FutureTimeout:
            log.warning("readiness: %s did not answer within %.1f s", dependency.name, deadline)
            status, seconds = "timeout", deadline
        results.append((dependency, {"status": status, "backend": dependency.backend,
                                     "duration_ms": round(seconds * 1000, 1)}))
    return results


def _ping(dependency: Dependency) -> tuple[str, float]:
    started = time.perf_counter()
    try:
        dependency.ping()
    except TwostepError as error:
        log.warning("readiness: %s is unavailable: %s", dependency.name, error.detail or error.code)
        return "unavailable", time.perf_counter() - started
    except Exception:
        log.exception("readiness: checking %s failed", dependency.name)
        return "unavailable", time.perf_counter() - started
    return "ok", time.perf_counter() - started


def install(app: Flask) -> None:
    app.register_blueprint(bp)
