"""Filling message phrasings with parameters, so one template yields many distinct but related lines.

Phrasings are `str.format` strings. Names a fault fixes for the whole scenario (the broken version, the sick
node) come from its parameters; any other name is drawn fresh for every line from GENERIC (request ids,
latencies), which is what makes the background look like real traffic rather than copies of one line.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from random import Random

Gen = Callable[[Random], object]

GENERIC: dict[str, Gen] = {
    "rid": lambda r: f"{r.getrandbits(32):08x}",
    "trace_id": lambda r: f"{r.getrandbits(64):016x}",
    "ms": lambda r: r.randint(3, 480),
    "slow_ms": lambda r: r.randint(1500, 9000),
    "n": lambda r: r.randint(2, 64),
    "big": lambda r: r.randint(1200, 48000),
    "pid": lambda r: r.randint(1000, 65000),
    "rank": lambda r: r.randint(0, 31),
    "step": lambda r: r.randint(1000, 250000),
    "shard": lambda r: f"{r.randint(0, 4095):05d}",
    "port": lambda r: r.randint(32768, 60999),
    "rows": lambda r: r.randint(1, 500),
    "user": lambda r: r.choice(["alice", "bob", "carol", "dmitri", "erin", "farah", "svc-ci", "svc-eval"]),
    "ip": lambda r: f"10.{r.randint(0, 3)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
    "path": lambda r: r.choice(["/v1/completions", "/v1/embeddings", "/v1/jobs", "/v1/models", "/healthz",
                                "/v1/jobs/status", "/v1/datasets"]),
    "method": lambda r: r.choice(["GET", "GET", "GET", "POST", "POST", "DELETE"]),
    "status": lambda r: r.choice([200, 200, 200, 200, 201, 204, 304]),
    "model": lambda r: r.choice(["llama-8b-chat", "mistral-7b", "embed-small", "code-13b"]),
    "job": lambda r: f"job-{r.randint(1000, 9999)}",
    "key": lambda r: r.choice(["sess", "tok", "feat", "emb", "ckpt-meta"]) + f":{r.getrandbits(24):06x}",
    "loss": lambda r: f"{r.uniform(0.8, 3.2):.4f}",
    "lr": lambda r: f"{r.choice([1, 2, 3, 5])}e-{r.choice([4, 5])}",
    "pct": lambda r: r.randint(40, 78),
    "gb": lambda r: r.randint(12, 70),
    "gpus": lambda r: r.choice([1, 2, 4, 8, 8, 16, 32]),
    "cache_gb": lambda r: f"{r.uniform(4, 12):.1f}",
    "table": lambda r: r.choice(["jobs", "runs", "checkpoints", "sessions", "models", "datasets"]),
    "node": lambda r: f"gpu-node-{r.randint(1, 4):02d}",
    "svc": lambda r: r.choice(["gateway", "cache", "scheduler", "object-storage", "job-controller"]),
    "ver": lambda r: f"{r.randint(1, 4)}.{r.randint(0, 12)}.{r.randint(0, 9)}",
}
"""Per-line parameter generators, shared by background traffic and fault symptoms."""

_FORMATTER = string.Formatter()


def names(text: str) -> list[str]:
    """The placeholder names of a phrasing, in order."""
    return [f for _, f, _, _ in _FORMATTER.parse(text) if f]


def fill(text: str, rng: Random, fixed: Mapping[str, object] | None = None) -> str:
    """Format `text`: fixed names from `fixed`, every other name drawn from GENERIC for this line."""
    fixed = fixed or {}
    values: dict[str, object] = {}
    for name in names(text):
        if name in values:
            continue
        if name in fixed:
            values[name] = fixed[name]
        elif name in GENERIC:
            values[name] = GENERIC[name](rng)
        else:
            raise KeyError(f"phrasing {text!r} uses unknown parameter {name!r}")
    return text.format(**values)
