"""``make bench`` (``python -m bench``): twostep under gunicorn with a real Redis and the
built-in directory on PostgreSQL, loaded from this machine over loopback, in one run:

1. full logins at concurrency 1, 4, 8 and 16;
2. the primitive floor of a login, and what the password hash alone allows;
3. refresh-token grants, code redemptions, discovery and JWKS requests;
4. Redis memory per completed login and per live SSO session.

Every phase is bounded in count and time, and the whole run stops by itself. The server gets
``--server-cpus`` CPUs (taskset), the load generator and Redis the others. ``--profile`` also
samples the workers with py-spy during logins at concurrency 1.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import report
from bench.client import Browser, UserPool, full_login, redeem, refresh, silent_code
from bench.floor import hash_rate, measure
from bench.harness import CLIENT, free_port, fresh_database, gunicorn, private_redis, seed, write_settings
from bench.load import Phase, run
from bench.profile import summarize

LEVELS = (1, 4, 8, 16)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus = set(cpus[-args.server_cpus:])
    client_cpus = set(cpus) - server_cpus or server_cpus
    os.sched_setaffinity(0, client_cpus)  # the load generator stays off the server's CPUs
    workers = args.workers or len(server_cpus)
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": len(cpus), "server_cpus": sorted(server_cpus), "client_cpus": sorted(client_cpus),
                    "load_before": round(os.getloadavg()[0], 2)},
        "server": {"workers": workers, "threads": args.threads},
        "bounds": {"seconds_per_phase": args.seconds, "logins_per_phase": args.max_logins},
    }
    workdir = Path(tempfile.mkdtemp(prefix="twostep-bench-"))
    try:
        with private_redis(workdir, client_cpus) as redis_server, fresh_database() as database:
            port = free_port()
            settings = write_settings(workdir, port, redis_server.url, database)
            print(f"seeding {args.users} users ...", flush=True)
            pool = UserPool(seed(settings, args.users))
            with gunicorn(settings, port, server_cpus, workers, args.threads, workdir) as server:
                _server_phases(args, server, pool, redis_server, database, result)
            print("measuring the floor ...", flush=True)
            floor = measure(settings, redis_server.url, server_cpus)
            floor["hash_alone_per_second"] = hash_rate(settings, server_cpus, threads=max(2, 2 * len(server_cpus)))
        _conclude(result, floor)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["machine"]["load_after"] = round(os.getloadavg()[0], 2)
    path, chart = report.save(result)
    print()
    print(report.table(result))
    print(f"\nresults: {path}\nchart:   {chart}")
    return 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-cpus", type=int, default=1, help="CPUs given to the server (default 1)")
    parser.add_argument("--workers", type=int, default=0, help="gunicorn workers (default: one per server CPU)")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker (default 2)")
    parser.add_argument("--seconds", type=float, default=12.0, help="longest time of one phase (default 12)")
    parser.add_argument("--max-logins", type=int, default=1500, help="most logins in one phase (default 1500)")
    parser.add_argument("--users", type=int, default=2000, help="users to seed (default 2000)")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="login concurrencies")
    parser.add_argument("--profile", action="store_true", help="sample the workers with py-spy at concurrency 1")
    parser.add_argument("--quick", action="store_true", help="short phases, to check the benchmark itself")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.max_logins, args.users = 3.0, 200, 300
    args.levels = [int(level) for level in args.levels.split(",")]
    return args


def _server_phases(args, server, pool: UserPool, redis_server, database: str, result: dict[str, Any]) -> None:
    client = CLIENT
    redis = redis_server.client()
    bounded = {"max_seconds": args.seconds, "database_url": database, "redis_pid": redis_server.process.pid}

    def login(browser: Browser, timings: dict[str, float]) -> None:
        full_login(browser, client, pool, timings)

    print("warming up ...", flush=True)
    run("warm-up", server, 4, login, max_count=200, max_seconds=min(5.0, args.seconds))

    print("Redis memory per login ...", flush=True)
    result["redis_memory"] = _memory(server, redis, login, args)

    result["redis_round_trips_per_login"] = _round_trips(redis_server.port, server, login)

    result["logins"] = []
    for level in args.levels:
        phase = run(f"logins c={level}", server, level, login, max_count=args.max_logins, **bounded)
        summary = phase.summary()
        result["logins"].append(summary)
        print(f"  c={level}: {phase.rate:.1f} logins/s, p50 {summary['latency_ms']['p50']:.0f} ms, "
              f"server CPU {summary['server_cpu_ms_per_op']:.1f} ms/login, errors {phase.errors}", flush=True)

    if args.profile:
        result["profile"] = _profile(server, login, args)

    result["operations"] = [phase.summary() for phase in _operations(server, pool, client, args)]
    for phase in result["operations"]:
        print(f"  {phase['name']}: {phase['per_second']:.0f}/s", flush=True)


def _round_trips(port: int, server, login, logins: int = 20) -> dict[str, float]:
    """Commands a login sends to Redis, by name, from MONITOR (commands run inside a Lua script
    are listed there too, marked "lua": they are not round trips)."""
    monitor = socket.create_connection(("127.0.0.1", port))
    monitor.sendall(b"MONITOR\r\n")
    lines: list[bytes] = []
    stopped = threading.Event()

    def read() -> None:
        buffer = b""
        monitor.settimeout(0.2)
        while not stopped.is_set():
            try:
                chunk = monitor.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            buffer += chunk
            *complete, buffer = buffer.split(b"\r\n")
            lines.extend(complete)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.2)
    phase = run("round trips", server, 1, login, max_count=logins, max_seconds=30)
    time.sleep(0.3)
    stopped.set()
    reader.join(2)
    monitor.close()
    calls: Counter[str] = Counter()
    for line in lines:
        if b"[0 lua]" in line or b'"' not in line:
            continue
        calls[line.split(b'"')[1].decode().upper()] += 1
    per_login = {name: round(count / max(phase.count, 1), 2) for name, count in calls.most_common()}
    per_login["total"] = round(sum(calls.values()) / max(phase.count, 1), 2)
    print(f"  Redis round trips per login: {per_login['total']}", flush=True)
    return per_login


def _memory(server, redis, login, args) -> dict[str, Any]:
    """FLUSHDB, then logins at concurrency 8: used_memory before and after, and what each key
    kind costs (MEMORY USAGE)."""
    redis.flushdb()
    time.sleep(0.2)
    before = redis.info("memory")["used_memory"]
    count = min(300, args.max_logins)
    phase = run("memory", server, 8, login, max_count=count, max_seconds=max(args.seconds, 20.0))
    after = redis.info("memory")["used_memory"]
    kinds: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    ttls: dict[str, int] = {}
    for key in redis.scan_iter(count=1000):
        kind = key.split(":")[1] if key.startswith("twostep:") else key.split(":")[0]
        kinds[kind] += 1
        sizes[kind] += redis.memory_usage(key, samples=0) or 0
        ttls.setdefault(kind, redis.ttl(key))
    logins = max(phase.count, 1)
    return {
        "logins": phase.count,
        "bytes_per_completed_login": (after - before) / logins,
        "bytes_per_sso_session": sizes["sso"] / max(kinds["sso"], 1),
        "keys_per_login": {kind: round(kinds[kind] / logins, 2) for kind in sorted(kinds)},
        "bytes_per_login_by_kind": {kind: round(sizes[kind] / logins) for kind in sorted(kinds)},
        "ttl_seconds_by_kind": ttls,
    }


def _operations(server, pool: UserPool, client, args) -> list[Phase]:
    """Refresh grants with a pool of refresh tokens (each thread rotates its own), redemptions of
    codes made beforehand from an SSO session, discovery and JWKS."""
    concurrency = 8
    browser = Browser(server.url)
    sessions = []
    for _ in range(concurrency):
        timings: dict[str, float] = {}
        tokens = full_login(browser, client, pool, timings)
        sessions.append((dict(browser.cookies), tokens["refresh_token"]))
    browser.close()
    phases = []

    chains = {}
    lock = threading.Lock()

    def refresh_grant(browser: Browser, timings: dict[str, float]) -> None:
        with lock:
            token = chains.setdefault(id(browser), sessions[len(chains) % len(sessions)][1])
        chains[id(browser)] = refresh(browser, client, token)

    phases.append(run("refresh-token grants", server, concurrency, refresh_grant, max_count=args.max_logins * 10,
                      max_seconds=args.seconds))

    codes: list[tuple[str, str]] = []

    def make_code(browser: Browser, timings: dict[str, float]) -> None:
        if not browser.cookies:
            browser.cookies.update(sessions[0][0])
        made = silent_code(browser, client)
        with lock:
            codes.append(made)

    phases.append(run("authorize with an SSO session (code issued)", server, concurrency, make_code,
                      max_count=min(3000, args.max_logins * 2), max_seconds=args.seconds))
    queue = list(codes)

    def redeem_code(browser: Browser, timings: dict[str, float]) -> None:
        with lock:
            code, verifier = queue.pop()
        redeem(browser, client, code, verifier)

    phases.append(run("authorization-code redemptions", server, concurrency, redeem_code, max_count=len(queue),
                      max_seconds=args.seconds))

    def get(path: str):
        def fetch(browser: Browser, timings: dict[str, float]) -> None:
            if browser.request("GET", path).status != 200:
                raise OSError(f"{path} failed")
        return fetch

    phases.append(run("discovery", server, concurrency, get("/.well-known/openid-configuration"),
                      max_count=args.max_logins * 20, max_seconds=min(args.seconds, 6.0)))
    phases.append(run("JWKS", server, concurrency, get("/jwks"), max_count=args.max_logins * 20,
                      max_seconds=min(args.seconds, 6.0)))
    return phases


def _profile(server, login, args) -> dict[str, Any]:
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    seconds = max(8, int(args.seconds))
    outputs = []
    recorders = []
    for pid in server.workers():
        out = Path(tempfile.mkstemp(prefix=f"pyspy-{pid}-", suffix=".txt")[1])
        outputs.append(out)
        command = [str(spy), "record", "--pid", str(pid), "--rate", "200", "--duration", str(seconds),
                   "--format", "raw", "--output", str(out), "--nonblocking"]
        recorders.append(subprocess.Popen(command, stdout=subprocess.DEVNULL,  # noqa: S603 (our py-spy)
                                          stderr=subprocess.DEVNULL))
    time.sleep(0.5)
    # One login at a time: a thread that py-spy sees running is then using the CPU, not waiting
    # for it, so the samples say where the CPU goes.
    run("profiled logins c=1", server, 1, login, max_count=args.max_logins, max_seconds=seconds - 1)
    for recorder in recorders:
        recorder.wait(timeout=seconds + 30)
    text = "".join(out.read_text() for out in outputs if out.exists())
    for out in outputs:
        out.unlink(missing_ok=True)
    summary = summarize(text)
    path = report.RESULTS / "profile.txt"
    report.RESULTS.mkdir(exist_ok=True)
    path.write_text(summary["text"])
    print(summary["text"], flush=True)
    return {k: v for k, v in summary.items() if k != "text"}


def _conclude(result: dict[str, Any], floor: dict[str, float]) -> None:
    logins = result["logins"]
    commands = result["redis_round_trips_per_login"]["total"]
    floor["redis_commands_per_login"] = commands
    floor["per_login_ms"] = (floor["argon2id_verify_ms"] + floor["id_token_signature_ms"] + floor["totp_check_ms"]
                             + floor["redis_round_trip_ms"] * commands)
    floor["argon2_parameters"] = "19456 KiB, t=2, p=1"
    result["floor"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in floor.items()}
    by_level = {phase["concurrency"]: phase for phase in logins}
    cpu = by_level.get(8, logins[-1])["server_cpu_ms_per_op"]
    argon2 = floor["argon2id_verify_ms"]
    rate8 = by_level.get(8, logins[-1])["per_second"]
    refresh = next((p for p in result["operations"] if p["name"].startswith("refresh")), {"per_second": 0})
    memory = result["redis_memory"]
    flows_left = memory["keys_per_login"].get("flow", 0)
    result["targets"] = [
        {"what": "server CPU per login / floor (c=8)", "measured": f"{cpu / floor['per_login_ms']:.3f}x",
         "target": "<= 1.15x", "met": cpu <= 1.15 * floor["per_login_ms"]},
        {"what": "everything but the password hash, share of it (c=8)",
         "measured": f"{(cpu - argon2) / argon2:.1%}", "target": "< 15%", "met": cpu - argon2 < 0.15 * argon2},
        {"what": "logins/s at c=8 / argon2id alone on the server's CPUs",
         "measured": f"{rate8 / floor['hash_alone_per_second']:.1%}", "target": ">= 90%",
         "met": rate8 >= 0.9 * floor["hash_alone_per_second"]},
        {"what": "refresh-token grants/s", "measured": f"{refresh['per_second']:.0f}", "target": ">= 1000",
         "met": refresh["per_second"] >= 1000},
        {"what": "Redis bytes per live SSO session", "measured": f"{memory['bytes_per_sso_session']:.0f}",
         "target": "< 2048", "met": memory["bytes_per_sso_session"] < 2048},
        {"what": "flow records left per completed login", "measured": f"{flows_left:.2f}", "target": "0",
         "met": flows_left == 0},
    ]


if __name__ == "__main__":
    sys.exit(main())
