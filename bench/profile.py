"""What a py-spy profile of the workers says: samples by the library they were in (the innermost
frame outside the standard library), the hottest functions, and twostep's own functions."""
from __future__ import annotations

import re
from collections import Counter
from typing import Any

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]+?)(?::\d+)?\)$")
# py-spy names files relative to their sys.path entry: the first part is the package.
LIBRARIES = {
    "argon2": "argon2id (password hash)",
    "_argon2_cffi_bindings": "argon2id (password hash)",
    "cryptography": "RSA and AES (cryptography)",
    "joserfc": "JOSE (joserfc)",
    "authlib": "Authlib (OAuth/OIDC)",
    "redis": "Redis client (redis-py)",
    "sqlalchemy": "SQL (SQLAlchemy)",
    "psycopg": "SQL (psycopg)",
    "psycopg_binary": "SQL (psycopg)",
    "jinja2": "templates (Jinja2)",
    "markupsafe": "templates (Jinja2)",
    "itsdangerous": "Flask session cookie (itsdangerous)",
    "werkzeug": "Flask / Werkzeug",
    "flask": "Flask / Werkzeug",
    "gunicorn": "gunicorn (HTTP)",
    "prometheus_client": "metrics (prometheus-client)",
    "pydantic": "pydantic",
    "qrcode": "QR codes",
}


# Leaf functions where a sampled thread is waiting (for a request, for Redis or PostgreSQL to
# answer), not computing: py-spy cannot always tell these from running threads.
WAITING = frozenset({"_worker", "EpollSelector.select", "Connection.wait", "SocketBuffer._read_from_socket",
                     "Condition.wait", "Queue.get", "Event.wait", "Thread.join", "_wait_for_tstate_lock"})


def category(path: str) -> str | None:
    top = path.split("/", 1)[0].removesuffix(".py")
    if top == "provider":
        return "twostep observability" if path.startswith("provider/observability/") else "twostep code"
    return LIBRARIES.get(top)


def summarize(raw: str, top: int = 25) -> dict[str, Any]:
    by_library: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [FRAME.match(frame) for frame in stack.split(";")]
        frames = [f for f in frames if f]
        if not frames:
            continue
        total += count
        leaf = frames[-1]
        leaves[f"{leaf['function']} ({_short(leaf['file'])})"] += count
        if leaf["function"] in WAITING:
            by_library["(waiting for I/O, not CPU)"] += count
            continue
        owner = next((category(f["file"]) for f in reversed(frames) if category(f["file"])), None)
        stdlib = _stdlib_module(leaf["file"])
        by_library[owner if owner and not stdlib else f"{owner or 'stdlib'}: {stdlib}" if stdlib else "other"] += count
        seen = set()
        for frame in frames:
            if frame["file"].startswith("provider/"):
                name = f"{frame['function']} ({_short(frame['file'])})"
                if name not in seen:
                    inclusive[name] += count
                    seen.add(name)
    libraries = _merge_stdlib(by_library)
    lines = [f"py-spy samples of the gunicorn workers: {total}", "", "by library (innermost frame outside the"
             " standard library; stdlib time goes to its caller):"]
    lines += [f"  {share(count, total):>6}  {name}" for name, count in libraries.most_common()]
    lines += ["", f"hottest functions (self time, top {top}):"]
    lines += [f"  {share(count, total):>6}  {name}" for name, count in leaves.most_common(top)]
    lines += ["", f"twostep functions (inclusive, top {top}):"]
    lines += [f"  {share(count, total):>6}  {name}" for name, count in inclusive.most_common(top)]
    busy = total - libraries["(waiting for I/O, not CPU)"]
    cpu = {k: round(v / busy, 4) for k, v in libraries.most_common() if not k.startswith("(")} if busy else {}
    lines += ["", "by library, share of the samples that were computing:"]
    lines += [f"  {share:>6.1%}  {name}" for name, share in cpu.items()]
    return {"samples": total, "by_library": {k: round(v / total, 4) for k, v in libraries.most_common()} if total
            else {}, "by_library_computing": cpu, "text": "\n".join(lines) + "\n"}


def share(count: int, total: int) -> str:
    return f"{count / total:.1%}" if total else "-"


def _merge_stdlib(counts: Counter[str]) -> Counter[str]:
    """Standard-library time counts for the library that called it."""
    merged: Counter[str] = Counter()
    for name, count in counts.items():
        merged[name.split(": ", 1)[0] if ": " in name else name] += count
    return merged


def _stdlib_module(path: str) -> str | None:
    if category(path) is not None:
        return None
    return path.removesuffix(".py") or None


def _short(path: str) -> str:
    return path
