"""The benchmark's outputs: a table on standard output, JSON and a PNG chart in bench/results/."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def table(result: dict[str, Any]) -> str:
    floor, targets = result["floor"], result["targets"]
    lines = [
        f"twostep benchmark {result['started']}  ({result['machine']['cpus']} CPUs; server on CPU "
        f"{','.join(map(str, result['machine']['server_cpus']))}: {result['server']['workers']} worker(s) x "
        f"{result['server']['threads']} threads; load average {result['machine']['load_before']})",
        "",
        "| full login (authorize, password, TOTP, token, userinfo) | logins/s | p50 ms | p95 ms | p99 ms "
        "| server CPU ms/login | logins/s that CPU cost allows | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    cpus = len(result["machine"]["server_cpus"])
    for phase in result["logins"]:
        latency = phase["latency_ms"]
        lines.append(f"| concurrency {phase['concurrency']} | {phase['per_second']:.1f} | {latency['p50']:.0f} "
                     f"| {latency['p95']:.0f} | {latency['p99']:.0f} "
                     f"| {phase['server_cpu_ms_per_op']:.1f} | {capacity(phase, cpus):.1f} | {phase['errors']} |")
    lines += [
        "",
        "| primitive floor (CPU, on the server's CPU) | ms |",
        "|---|---:|",
        f"| argon2id verify (m={floor['argon2_parameters']}) | {floor['argon2id_verify_ms']:.2f} |",
        f"| ID-token signature (RS256) | {floor['id_token_signature_ms']:.3f} |",
        f"| TOTP check | {floor['totp_check_ms']:.3f} |",
        f"| Redis round trip x {floor['redis_commands_per_login']:.1f} round trips per login "
        f"| {floor['redis_round_trip_ms'] * floor['redis_commands_per_login']:.2f} |",
        f"| **floor per login** | **{floor['per_login_ms']:.2f}** |",
        "",
        "| other operations (concurrency 8) | per second | p50 ms | p99 ms | server CPU ms/op |",
        "|---|---:|---:|---:|---:|",
    ]
    for phase in result["operations"]:
        lines.append(f"| {phase['name']} | {phase['per_second']:.0f} | {phase['latency_ms']['p50']:.1f} "
                     f"| {phase['latency_ms']['p99']:.1f} | {phase['server_cpu_ms_per_op']:.2f} |")
    memory = result["redis_memory"]
    lines += [
        "",
        f"Redis memory: {memory['bytes_per_completed_login']:.0f} B per completed login, "
        f"{memory['bytes_per_sso_session']:.0f} B per live SSO session; keys left per completed login: "
        + ", ".join(f"{kind} {count:.2f}" for kind, count in memory["keys_per_login"].items()),
        "",
        "| target | measured | target | met |",
        "|---|---:|---:|:---:|",
    ]
    for target in targets:
        lines.append(f"| {target['what']} | {target['measured']} | {target['target']} | "
                     f"{'yes' if target['met'] else 'no'} |")
    return "\n".join(lines)


def capacity(phase: dict[str, Any], cpus: int) -> float:
    """Logins per second the server's CPUs would do at this CPU cost per login, busy all the time
    (what the measured rate approaches when nothing else on the machine takes the server's CPU)."""
    return cpus * 1000 / phase["server_cpu_ms_per_op"] if phase["server_cpu_ms_per_op"] else 0.0


def save(result: dict[str, Any]) -> tuple[Path, Path]:
    RESULTS.mkdir(exist_ok=True)
    stamp = result["started"].replace(":", "").replace("-", "")
    path = RESULTS / f"bench-{stamp}.json"
    text = json.dumps(result, indent=2)
    path.write_text(text)
    (RESULTS / "latest.json").write_text(text)
    chart = RESULTS / "bench.png"
    draw(result, chart)
    return path, chart


def draw(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logins = result["logins"]
    levels = [phase["concurrency"] for phase in logins]
    figure, (rate, latency) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    rate.plot(levels, [phase["per_second"] for phase in logins], "o-", label="full logins/s, measured")
    cpus = len(result["machine"]["server_cpus"])
    rate.plot(levels, [capacity(phase, cpus) for phase in logins], "x--", color="tab:blue", alpha=0.6,
              label="what the server's CPU cost per login allows")
    hash_alone = result["floor"]["hash_alone_per_second"]
    rate.axhline(hash_alone, color="grey", linestyle="--", label=f"argon2id alone ({hash_alone:.1f}/s)")
    rate.axhline(0.9 * hash_alone, color="grey", linestyle=":", label="90 % of that (target)")
    rate.set(xlabel="concurrency", ylabel="logins per second", xticks=levels, ylim=(0, hash_alone * 1.15),
             title="Throughput")
    rate.legend(loc="lower right", fontsize=8)
    for key, style in (("p50", "o-"), ("p95", "s--"), ("p99", "^:")):
        latency.plot(levels, [phase["latency_ms"][key] for phase in logins], style, label=key)
    latency.set(xlabel="concurrency", ylabel="ms per full login", xticks=levels, title="Latency", ylim=(0, None))
    latency.legend(fontsize=8)
    figure.suptitle(f"twostep full logins, server on {len(result['machine']['server_cpus'])} CPU "
                    f"({result['started']})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
