"""Real server processes a test owns and may stop, restart or freeze: a private redis-server
(or Sentinel), and twostep under gunicorn. All on loopback, all stopped by the test's fixtures."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

from tests.fixtures.services import service_missing

START_TIMEOUT = 20.0
GUNICORN = Path(sys.executable).with_name("gunicorn")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)


def answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@dataclass
class RedisServer:
    """A redis-server of the test's own, keeping nothing on disk: a restart starts empty,
    like a Redis that lost its data. ``extra`` arguments make it a replica or a sentinel."""

    workdir: Path
    port: int = field(default_factory=free_port)
    extra: tuple[str, ...] = ()
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            service_missing("redis-server", "not on PATH (make services installs it)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / f"redis-{self.port}.log").open("ab")
        command = [binary, *self.extra, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(self.workdir)]
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(lambda: answers(self.url) or self.process.poll() is not None, START_TIMEOUT,
                   f"redis-server on port {self.port}")
        assert self.process.poll() is None, (self.workdir / f"redis-{self.port}.log").read_text()[-2000:]
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            stop(self.process)
            self.process = None

    def kill(self) -> None:
        """Crash it (SIGKILL): no goodbye to clients or replicas."""
        if self.process is not None:
            stop(self.process, signal.SIGKILL)
            self.process = None

    def pause(self) -> None:
        """Freeze it (SIGSTOP): connections stay open and nothing answers, like a hung server."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@dataclass
class Gunicorn:
    """twostep served by gunicorn (``provider.gunicorn_conf``) on its own loopback port."""

    settings_path: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    workers: int = 2
    environment: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Gunicorn:
        if not GUNICORN.exists():
            service_missing("gunicorn", f"{GUNICORN} is missing (make install)")
        env = {**os.environ, "TWOSTEP_CONFIG": str(self.settings_path), "TWOSTEP_BIND": f"127.0.0.1:{self.port}",
               "TWOSTEP_WORKERS": str(self.workers), "TWOSTEP_THREADS": "2", "TWOSTEP_TIMEOUT": "10",
               **self.environment}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each instance its own
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([str(GUNICORN), "-c", "python:provider.gunicorn_conf"], env=env,
                                            stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2])
        wait_until(self._ready, START_TIMEOUT, f"gunicorn on port {self.port}", interval=0.1)
        return self

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"gunicorn exited at start:\n{self.log_path.read_text()[-3000:]}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop it (SIGTERM: graceful, the requests in flight are finished); its exit status."""
        if self.process is None:
            return 0
        status = stop(self.process, sig, timeout=20)
        self.process = None
        return status

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()
