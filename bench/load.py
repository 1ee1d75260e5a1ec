"""Closed-loop load: ``concurrency`` threads, each repeating one operation on its own keep-alive
connection until ``max_count`` operations are done or ``max_seconds`` have passed, whichever is
first. Reports throughput, latency percentiles and the server's CPU for the phase."""
from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.client import BenchError, Browser
from bench.harness import Server, backend_pids, cpu_seconds


@dataclass
class Phase:
    name: str
    concurrency: int
    count: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    server_system_cpu: float = 0.0
    database_cpu: float = 0.0
    redis_cpu: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)  # summed seconds per step of the operation
    first_error: str | None = None

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    def summary(self) -> dict[str, Any]:
        per = self.count or 1
        return {
            "name": self.name, "concurrency": self.concurrency, "count": self.count, "errors": self.errors,
            "seconds": round(self.seconds, 3), "per_second": round(self.rate, 2),
            "latency_ms": {"p50": _ms(self.percentile(50)), "p95": _ms(self.percentile(95)),
                           "p99": _ms(self.percentile(99)),
                           "mean": _ms(statistics.fmean(self.latencies)) if self.latencies else 0.0},
            "server_cpu_ms_per_op": round(self.server_cpu / per * 1000, 3),
            "server_system_cpu_ms_per_op": round(self.server_system_cpu / per * 1000, 3),
            "server_cpu_utilisation": round(self.server_cpu / self.seconds, 3) if self.seconds else 0.0,
            "database_cpu_ms_per_op": round(self.database_cpu / per * 1000, 3),
            "redis_cpu_ms_per_op": round(self.redis_cpu / per * 1000, 3),
            "step_ms_mean": {step: _ms(total / per) for step, total in self.steps.items()},
            "first_error": self.first_error,
        }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def run(name: str, server: Server, concurrency: int, operation: Callable[[Browser, dict[str, float]], Any],
        *, max_count: int, max_seconds: float, database_url: str | None = None,
        redis_pid: int | None = None) -> Phase:
    """Run ``operation(browser, step_timings)`` in a closed loop on ``concurrency`` threads."""
    phase = Phase(name, concurrency)
    lock = threading.Lock()
    browsers = [Browser(server.url) for _ in range(concurrency)]
    database = backend_pids(database_url) if database_url else []
    start_gate = threading.Barrier(concurrency + 1)
    deadline_holder: dict[str, float] = {}
    issued = [0]

    def worker(browser: Browser) -> None:
        timings: dict[str, float] = {}
        start_gate.wait()
        while True:
            with lock:
                if issued[0] >= max_count or time.perf_counter() >= deadline_holder["deadline"]:
                    break
                issued[0] += 1
            started = time.perf_counter()
            try:
                operation(browser, timings)
            except (BenchError, OSError) as error:
                with lock:
                    phase.errors += 1
                    phase.first_error = phase.first_error or str(error)[:300]
                browser.close()
                continue
            elapsed = time.perf_counter() - started
            with lock:
                phase.count += 1
                phase.latencies.append(elapsed)
        with lock:
            for step, seconds in timings.items():
                phase.steps[step] = phase.steps.get(step, 0.0) + seconds

    threads = [threading.Thread(target=worker, args=(browser,), daemon=True) for browser in browsers]
    for thread in threads:
        thread.start()
    (user_before, system_before), db_before = server.cpu_split(), cpu_seconds(database)
    redis_before = cpu_seconds([redis_pid]) if redis_pid else 0.0
    started = time.perf_counter()
    deadline_holder["deadline"] = started + max_seconds
    start_gate.wait()
    for thread in threads:
        thread.join(max_seconds + 60)
    phase.seconds = time.perf_counter() - started
    user_after, system_after = server.cpu_split()
    phase.server_cpu = user_after + system_after - user_before - system_before
    phase.server_system_cpu = system_after - system_before
    phase.database_cpu = cpu_seconds(database) - db_before
    phase.redis_cpu = (cpu_seconds([redis_pid]) - redis_before) if redis_pid else 0.0
    for browser in browsers:
        browser.close()
    return phase
