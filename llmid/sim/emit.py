"""Render simulated log records in the mixed formats real platforms write into one stream.

A real incident log is never one clean format: hosts write RFC 3164 syslog, Go/Java services ISO-8601 text,
cloud-native services ECS JSON lines, Python jobs the `logging` default, and crashes add multi-line stack
traces. The analyser must cope with all of them interleaved, so the simulator writes exactly that.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from random import Random

_SEVERITY = {"DEBUG": 7, "INFO": 6, "WARN": 4, "ERROR": 3, "FATAL": 2}
"""Canonical level -> syslog severity (RFC 5424 table, used by RFC 3164's PRI)."""
_FACILITY = {"kernel": 0, "CRON": 9, "sshd": 10}
"""Syslog facility per program (kern, cron, authpriv); anything else is daemon (3)."""
_PYLEVEL = {"WARN": "WARNING", "FATAL": "CRITICAL"}
SEVERITY_RANK = {"DEBUG": 0, "INFO": 1, "WARN": 2, "ERROR": 3, "FATAL": 4}
"""Order of the canonical levels, for "most severe" comparisons."""


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def iso_z(ts: float) -> str:
    """ISO-8601 UTC with milliseconds and a Z (the `@timestamp` spelling)."""
    return _dt(ts).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def render(fmt: str, ts: float, level: str, service: str, host: str, message: str, *,
           program: str = "", pid: int = 0, logger: str = "", trace: list[str] | None = None) -> list[str]:
    """Physical lines of one record; a stack trace becomes continuation lines after the head line."""
    trace = trace or []
    if fmt == "syslog":
        prog = program or service
        pri = _FACILITY.get(prog, 3) * 8 + _SEVERITY[level]
        tag = prog if prog == "kernel" else f"{prog}[{pid}]"
        stamp = _dt(ts).strftime("%b %e %H:%M:%S")
        return [f"<{pri}>{stamp} {host} {tag}: {message}"]
    if fmt == "json":
        doc = {"@timestamp": iso_z(ts), "log.level": level.lower(), "service.name": service,
               "host.name": host, "message": message}
        if trace:
            doc["error.stack_trace"] = "\n".join(trace)
        return [json.dumps(doc, separators=(",", ":"))]
    if fmt == "pylog":
        d = _dt(ts)
        stamp = d.strftime("%Y-%m-%d %H:%M:%S") + f",{d.microsecond // 1000:03d}"
        return [f"{stamp} - {logger or service} - {_PYLEVEL.get(level, level)} - {message}", *trace]
    if fmt == "iso":
        return [f"{iso_z(ts)} {level} [{service}] {message}", *trace]
    raise ValueError(f"unknown log format {fmt!r}")


def python_traceback(rng: Random, exc: str, frames: list[tuple[str, str, str]]) -> list[str]:
    """A CPython traceback: `frames` are (file, function, source line); `exc` is the last line."""
    out = ["Traceback (most recent call last):"]
    for path, func, code in frames:
        out.append(f'  File "{path}", line {rng.randint(20, 900)}, in {func}')
        out.append(f"    {code}")
    out.append(exc)
    return out


def java_trace(rng: Random, exc: str, frames: list[str], cause: str | None = None) -> list[str]:
    """A JVM stack trace (the head line is the log message; this is what follows it)."""
    out = [exc]
    out += [f"\tat {f}(" + f.rsplit(".", 2)[-2] + f".java:{rng.randint(30, 700)})" for f in frames]
    if cause:
        out.append(f"Caused by: {cause}")
        out.append(f"\tat {frames[-1]}(" + frames[-1].rsplit(".", 2)[-2] + f".java:{rng.randint(30, 700)})")
        out.append(f"\t... {rng.randint(8, 40)} more")
    return out
