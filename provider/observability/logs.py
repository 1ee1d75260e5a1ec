"""Logs as JSON lines, each request with an id.

Every request gets an id: the caller's ``X-Request-Id`` when it is a plausible one (a proxy or
load balancer that made one), a new random one otherwise. It is returned as ``X-Request-Id``,
and every log line written while the request is served carries it, audit events included, so
one sign-in can be followed from the proxy's log to twostep's.

One access line per request names the route (``/login/<flow_id>``), never the query string or
the form: authorization requests, codes and tokens stay out of the logs.
"""
from __future__ import annotations

import json
import logging
import re
import secrets
import time
from typing import Any

from flask import Flask, Response, g, has_request_context, request

from provider.observability import metrics

ACCESS = logging.getLogger("twostep.access")
HEADER = "X-Request-Id"
_PLAUSIBLE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{8,128}")
QUIET = frozenset({"/healthz", "/readyz", "/metrics"})  # probes and scrapes: access lines at DEBUG
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "request_id"}


def request_id() -> str | None:
    """The id of the request being served on this thread, if any."""
    return g.get("request_id") if has_request_context() else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request_id, message, and the fields the
    caller passed with ``extra=``. An audit event (already a JSON object) is merged in as its
    own fields, so `event`, `user_id`, `outcome`... are searchable like any other field."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
        }
        rid = getattr(record, "request_id", None)
        if rid:
            line["request_id"] = rid
        message = record.getMessage()
        audit = _as_object(message) if record.name == "twostep.audit" else None
        if audit is not None:
            line.update({key: value for key, value in audit.items() if key != "time"})
        else:
            line["message"] = message
        line.update({key: value for key, value in vars(record).items() if key not in _RESERVED})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` that writes JSON lines to standard error: twostep's own
    loggers, the audit events and gunicorn's logs alike (gunicorn's ``logconfig_dict``)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": ["stderr"], "propagate": False},
            "twostep.audit": {"level": "INFO"},
            "authlib": {"level": "INFO"},  # Authlib logs issued tokens at DEBUG
        },
    }


def install(app: Flask) -> None:
    """Give every request an id and a duration; on the way out, set ``X-Request-Id``, count the
    request in the metrics and write its access line. Registered to run first on the way in
    and last on the way out, so the id covers everything else the request logs."""
    stamp_request_ids()
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)
    app.after_request_funcs.setdefault(None, []).insert(0, _end)


def stamp_request_ids() -> None:
    """Every log record made while a request is served carries ``request_id``, set when the
    record is made (so whatever handler formats it later, on any thread, still has it)."""
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "stamps_request_ids", False):
        return

    def make_stamped_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        if not hasattr(record, "request_id"):
            record.request_id = request_id()
        return record

    make_stamped_record.stamps_request_ids = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make_stamped_record)


def _begin() -> None:
    g.request_started = time.perf_counter()
    offered = request.headers.get(HEADER, "")
    g.request_id = offered if _PLAUSIBLE_ID.fullmatch(offered) else secrets.token_hex(16)


def _end(response: Response) -> Response:
    rid = g.get("request_id") or secrets.token_hex(16)
    response.headers[HEADER] = rid
    seconds = time.perf_counter() - g.get("request_started", time.perf_counter())
    route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
    metrics.observe_request(route, request.method, response.status_code, seconds)
    level = logging.DEBUG if route in QUIET and response.status_code < 400 else logging.INFO
    if ACCESS.isEnabledFor(level):
        path = request.path if request.url_rule is None else route
        ACCESS.log(level, "%s %s %d", request.method, path[:200], response.status_code,
                   extra={"method": request.method, "route": route, "status": response.status_code,
                          "duration_ms": round(seconds * 1000, 2), "ip": request.remote_addr})
    return response


def _as_object(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
