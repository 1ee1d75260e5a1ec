"""What the benchmark runs against, all on this machine: a private redis-server, a fresh
PostgreSQL database on the local server, seeded users with an authenticator app each, and
twostep under gunicorn (provider.gunicorn_conf) pinned to the CPUs given to the server.
Everything is stopped and dropped at the end."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis
import yaml
from psycopg import sql as pgsql

from bench.client import Client, User
from provider.app import encryptor, open_enrollments
from provider.channels import totp_codes
from provider.directory.builtin import BuiltinDirectory, users
from provider.directory.passwords import HashParameters, PasswordHasher
from provider.enrollment import Enrollment
from provider.settings import load_settings
from provider.storage.sql import open_database

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"  # noqa: S105 (the bench users' password)
CLIENT = Client("bench-rp", "bench-rp-secret-0123456789abcdef", "https://rp.example.com/callback")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
POSTGRES_URL = os.environ.get("POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pinned(command: list[str], cpus: set[int]) -> list[str]:
    if shutil.which("taskset") and cpus:
        return ["taskset", "-c", ",".join(map(str, sorted(cpus))), *command]
    return command


def cpu_seconds(pids: list[int]) -> float:
    """user + system CPU of these processes (all their threads), from /proc/<pid>/stat."""
    return sum(cpu_split(pids))


def cpu_split(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of these processes."""
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone
        user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime: fields 14 and 15
    return user / CLOCK_TICKS, system / CLOCK_TICKS


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


@dataclass
class Redis:
    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)


@contextmanager
def private_redis(workdir: Path, cpus: set[int]) -> Iterator[Redis]:
    port = free_port()
    log = (workdir / "redis.log").open("wb")
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(workdir)]
    process = subprocess.Popen(pinned(command, cpus), stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        server = Redis(process, port)
        _wait(lambda: _pings(server), 10, "redis-server")
        yield server
    finally:
        _stop(process)
        log.close()


def _pings(server: Redis) -> bool:
    try:
        return bool(server.client().ping())
    except redis.RedisError:
        return False


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new PostgreSQL database on the local server, dropped at the end."""
    name = f"twostep_bench_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
                          " AND pid <> pg_backend_pid()", (name,))
            admin.execute(pgsql.SQL("DROP DATABASE IF EXISTS {}").format(pgsql.Identifier(name)))


def backend_pids(database_url: str) -> list[int]:
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as admin:
        return [row[0] for row in admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,))]


def write_settings(workdir: Path, port: int, state_url: str, database_url: str) -> Path:
    """Production-like: Redis, PostgreSQL, argon2id at the default parameters, the demo's flow
    (password, then enrol or challenge with the authenticator app)."""
    settings = {
        "issuer": f"http://127.0.0.1:{port}",
        "secret_key": secrets.token_urlsafe(32),
        "encryption_key": secrets.token_urlsafe(32),
        "state": {"url": state_url},
        "storage": {"url": database_url},
        "keys": {"path": str(workdir / "jwks.json")},
        "directory": {"type": "builtin"},
        "channels": {"totp": {"type": "totp", "issuer": "twostep bench"}},
        "flows": {"default": ["password", {"enroll": {"channels": ["totp"]}}, {"challenge": {"channels": ["totp"]}}]},
        "clients": [{"client_id": CLIENT.client_id, "client_secret": CLIENT.secret,
                     "redirect_uris": [CLIENT.redirect_uri], "flow": "default"}],
    }
    path = workdir / "settings.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def seed(settings_path: Path, count: int) -> list[User]:
    """Users with the same password, hashed once at the configured (default) parameters, and an
    authenticator app registered for each. Added with cheap hashes, then given the real one: the
    stored hash is what every login verifies, and hashing 2,000 times would take minutes."""
    settings = load_settings(settings_path)
    database = open_database(settings.storage.url, settings.base_dir)
    quick = BuiltinDirectory(database, PasswordHasher(HashParameters(memory_cost=8192, time_cost=1)))
    p = settings.directory.password_hash
    real_hash = PasswordHasher(HashParameters(p.memory_cost, p.time_cost, p.parallelism)).hash(PASSWORD)
    enrollments = open_enrollments(settings, database)
    assert encryptor(settings) is not None
    seeded = [User(f"bench{i:05d}", PASSWORD, totp_codes.new_secret(totp_codes.TotpParameters()))
              for i in range(count)]

    def add(user: User) -> None:
        added = quick.add_user(user.username, PASSWORD, email=f"{user.username}@example.com", name=user.username)
        enrollments.save(Enrollment(user_id=added.id, channel="totp", kind="totp", secret=user.secret, phone=None,
                                    created_at=time.time()))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(add, seeded))
    with database.begin() as connection:
        connection.execute(users.update().values(password_hash=real_hash))
    database.dispose()
    return seeded


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log: Path

    def pids(self) -> list[int]:
        return [self.process.pid, *children(self.process.pid)]

    def workers(self) -> list[int]:
        return children(self.process.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pids())

    def cpu_split(self) -> tuple[float, float]:
        return cpu_split(self.pids())


@contextmanager
def gunicorn(settings_path: Path, port: int, cpus: set[int], workers: int, threads: int,
             workdir: Path) -> Iterator[Server]:
    env = {**os.environ, "TWOSTEP_CONFIG": str(settings_path), "TWOSTEP_BIND": f"127.0.0.1:{port}",
           "TWOSTEP_WORKERS": str(workers), "TWOSTEP_THREADS": str(threads)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = workdir / "gunicorn.log"
    with log.open("wb") as output:
        command = [str(Path(sys.executable).with_name("gunicorn")), "-c", "python:provider.gunicorn_conf"]
        process = subprocess.Popen(pinned(command, cpus), env=env, stdout=output,  # noqa: S603
                                   stderr=subprocess.STDOUT, cwd=ROOT)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        _wait(lambda: _ready(server), 60, "gunicorn")
        _wait(lambda: len(server.workers()) >= workers, 30, "gunicorn workers")
        yield server
    finally:
        _stop(process, timeout=30)


def _ready(server: Server) -> bool:
    import http.client

    if server.process.poll() is not None:
        raise SystemExit(f"gunicorn exited:\n{server.log.read_text()[-3000:]}")
    try:
        connection = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=2)
        connection.request("GET", "/readyz")
        return connection.getresponse().status == 200
    except OSError:
        return False


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start within {timeout} s")
        time.sleep(0.1)


def _stop(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
