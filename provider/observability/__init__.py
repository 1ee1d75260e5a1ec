"""What operators watch: ``/healthz`` and ``/readyz`` (``health``), Prometheus metrics
(``metrics``), and JSON log lines with a request id (``logs``). ``install`` adds them to the app;
``provider.gunicorn_conf`` sets up the process side (logging, multi-process metrics)."""
from __future__ import annotations

from flask import Flask

from provider.observability import health, logs, metrics


def install(app: Flask) -> None:
    """After create_app has built the services (``app.extensions["twostep"]``)."""
    logs.install(app)
    health.install(app)
    metrics.install(app)
