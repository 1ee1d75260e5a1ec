"""gunicorn settings for twostep in production: ``gunicorn -c python:provider.gunicorn_conf``
(``make serve``). Every value can still be overridden on gunicorn's command line.

Read from the environment:

- ``TWOSTEP_CONFIG``: the settings file (default ``config/demo.yaml``); ``trusted_proxies``
  becomes gunicorn's ``forwarded_allow_ips``, ``metrics.listen`` a metrics port on the master.
- ``TWOSTEP_BIND`` (default ``127.0.0.1:8080``), ``TWOSTEP_WORKERS`` (default: the CPUs this
  process may use: a login is CPU-bound by the password hash), ``TWOSTEP_THREADS`` (default 2
  per worker: one computes while the other waits on Redis or the database; more threads run
  more argon2id hashes at once on the same CPU, and each of those 19 MiB hashes then evicts the
  others from the cache: measured 20 ms of CPU per hash alone, 29 ms with 8 at once), ``TWOSTEP_LOG_LEVEL``
  (default INFO), ``TWOSTEP_TIMEOUT`` (default 30 s: a worker silent this long is restarted, and
  a stopping worker gets this long to finish its requests).

Workers are independent processes: each opens its own Redis pool and database connections after
the fork (no ``preload_app``), and all state lives in Redis, so any worker of any instance can
serve any step. With ``memory://`` state there can only be one worker.
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from typing import Any

_MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def _metrics_directory() -> tuple[str, bool]:
    """Where the workers write their metrics: the operator's PROMETHEUS_MULTIPROC_DIR, or a new
    private folder. Set before anything imports prometheus_client (see its multiprocess docs)."""
    given = os.environ.get(_MULTIPROCESS_DIR)
    if given:
        os.makedirs(given, exist_ok=True)
        return given, False
    made = tempfile.mkdtemp(prefix="twostep-metrics-")
    os.environ[_MULTIPROCESS_DIR] = made
    return made, True


metrics_dir, _made_metrics_dir = _metrics_directory()


def _settings() -> Any:
    from provider.app import config_path
    from provider.settings import SettingsError, load_settings

    path = config_path()
    try:
        return load_settings(path)
    except SettingsError as error:
        sys.exit("twostep: the settings are not valid:\n  " + "\n  ".join(error.problems))


settings = _settings()
_single_process_state = settings.state.url.startswith("memory:")

wsgi_app = "provider.app:create_app()"
proc_name = "twostep"
bind = [os.environ.get("TWOSTEP_BIND", "127.0.0.1:8080")]
worker_class = "gthread"
workers = 1 if _single_process_state else int(os.environ.get("TWOSTEP_WORKERS") or len(os.sched_getaffinity(0)))
threads = int(os.environ.get("TWOSTEP_THREADS", "2"))
timeout = int(os.environ.get("TWOSTEP_TIMEOUT", "30"))
graceful_timeout = timeout  # SIGTERM: stop accepting, finish the requests in flight, then exit
keepalive = 5  # seconds an idle keep-alive connection from the proxy stays open
preload_app = False  # every worker connects to Redis and the database itself, after the fork
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 (heartbeat file, not data)
# X-Forwarded-Proto and friends only from the proxies the settings trust, as provider/proxies.py does
# for X-Forwarded-For: an empty list trusts nobody.
forwarded_allow_ips = ",".join(str(network) for network in settings.trusted_proxies)
accesslog = None  # twostep writes its own access line (JSON, without query strings)
control_socket_disable = True  # one per user by default: several instances on a host would share it


def _logging() -> dict[str, Any]:
    from provider.observability.logs import logging_config

    return logging_config(os.environ.get("TWOSTEP_LOG_LEVEL", "INFO").upper())


logconfig_dict = _logging()
if settings.metrics.listen:
    from provider.observability.metrics import SERVED_BY_MASTER

    os.environ[SERVED_BY_MASTER] = "1"  # the workers leave metrics.listen to the master


def on_starting(server: Any) -> None:
    log = logging.getLogger("gunicorn.error")
    for name in os.listdir(metrics_dir):  # counters of an earlier run would be added to ours
        if name.endswith(".db"):
            os.remove(os.path.join(metrics_dir, name))
    if _single_process_state:
        log.warning("state.url is memory://: one worker only; use Redis to run several workers or instances")
    if settings.state.pool_size < threads:
        log.warning("state.pool_size %d is less than the %d threads of a worker: requests will wait for a"
                    " Redis connection", settings.state.pool_size, threads)
    log.info("twostep %s: %d worker(s) x %d threads, forwarded_allow_ips=%s", settings.issuer, server.cfg.workers,
             threads, forwarded_allow_ips or "(none)")


def when_ready(server: Any) -> None:
    """Serve metrics.listen from the master, which outlives every worker and adds up their files."""
    if not settings.metrics.listen:
        return
    from provider.observability import metrics
    from provider.storage.state import open_state_store

    state = None if _single_process_state else open_state_store(
        settings.state.url, prefix=settings.state.prefix, timeout=settings.state.timeout, pool_size=2)
    metrics.serve(settings.metrics.listen, metrics.registry_for(state))


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _made_metrics_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)
