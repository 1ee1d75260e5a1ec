"""The primitive floor of one login, measured in this run on this machine, on the CPUs given to
the server: one argon2id verification at the configured parameters, one ID-token signature with
the server's key, one TOTP check, and the client side of one Redis round trip (times the number
of Redis commands a login makes, counted by the server). Also what the password hash alone
allows per second on the server's CPUs, running as many hashes at once as the server has threads."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from provider.channels import totp_codes
from provider.directory.passwords import HashParameters, PasswordHasher
from provider.oidc.keys import SigningKeys
from provider.settings import load_settings
from provider.storage.memory import MemoryStateStore


@contextmanager
def on_cpus(cpus: set[int]):
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def cpu_per_call(call: Callable[[], Any], count: int) -> float:
    """CPU seconds of one call (this thread's CPU clock: other threads do not count)."""
    call()
    started = time.thread_time()
    for _ in range(count):
        call()
    return (time.thread_time() - started) / count


def measure(settings_path: Path, redis_url: str, cpus: set[int]) -> dict[str, float]:
    settings = load_settings(settings_path)
    p = settings.directory.password_hash
    hasher = PasswordHasher(HashParameters(p.memory_cost, p.time_cost, p.parallelism))
    stored = hasher.hash("correct horse battery staple")
    keys = SigningKeys.load(settings.resolve(settings.keys.path))
    now = int(time.time())
    claims = {"iss": settings.issuer, "sub": "2f1c7a52-0d3e-4a57-9d7e-0b7d3f3b2a11", "aud": "bench-rp",
              "iat": now, "exp": now + 300, "auth_time": now, "nonce": "n-0S6_WzA2Mj", "acr": "2",
              "amr": ["pwd", "otp", "mfa"], "sid": "Fj3N8xU2p0aQ"}
    params = totp_codes.TotpParameters()
    secret = totp_codes.new_secret(params)
    store = MemoryStateStore()
    steps = iter(range(10**9))

    def totp_check() -> None:
        # a fresh user each time, so the replay guard accepts, as it does for a real login
        user = next(steps)
        code = totp_codes.code_at(secret, params, totp_codes.step_at(params, time.time()))
        assert totp_codes.verify(secret, params, code, time.time(), totp_codes.ReplayGuard(store),
                                 f"totp:last:{user}:totp").ok

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.set("bench:floor", "x" * 600)
    password = "correct horse battery staple"  # noqa: S105 (the bench users' password)
    with on_cpus(cpus):
        return {
            "argon2id_verify_ms": cpu_per_call(lambda: hasher.verify(stored, password), 30) * 1000,
            "id_token_signature_ms": cpu_per_call(lambda: keys.sign(claims), 300) * 1000,
            "totp_check_ms": cpu_per_call(totp_check, 3000) * 1000,
            "redis_round_trip_ms": cpu_per_call(lambda: client.get("bench:floor"), 3000) * 1000,
        }


def hash_rate(settings_path: Path, cpus: set[int], threads: int, seconds: float = 4.0) -> float:
    """argon2id verifications per second on ``cpus`` with ``threads`` at once (argon2 releases
    the GIL, so threads use every CPU they are given)."""
    settings = load_settings(settings_path)
    p = settings.directory.password_hash
    hasher = PasswordHasher(HashParameters(p.memory_cost, p.time_cost, p.parallelism))
    stored = hasher.hash("correct horse battery staple")
    done = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def spin() -> None:
        os.sched_setaffinity(0, cpus)  # this thread only
        while time.perf_counter() < stop:
            hasher.verify(stored, "correct horse battery staple")
            with lock:
                done[0] += 1

    started = time.perf_counter()
    workers = [threading.Thread(target=spin) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return done[0] / (time.perf_counter() - started)
