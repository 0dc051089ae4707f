"""Per-client rate limiting: a token bucket in memory, so a runaway script cannot starve everyone else.

In memory is enough for the built-in server (one process, many threads); behind a load balancer with several
processes each process limits on its own, which still bounds the total.
"""

from __future__ import annotations

import threading
import time

MAX_CLIENTS = 10_000
"""Buckets kept at most; the least recently used are dropped (a full bucket is the state of a new client)."""


class RateLimiter:
    """`allow(key)` spends one token of the key's bucket; refills at `per_minute / 60` tokens a second."""

    def __init__(self, per_minute: float, burst: int) -> None:
        self.rate = max(0.0, per_minute) / 60.0
        self.burst = max(1, int(burst))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def allow(self, key: str, now: float | None = None) -> tuple[bool, float]:
        """(allowed, seconds until the next token) for one request of `key`."""
        if not self.enabled:
            return True, 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)  # re-inserted: dicts keep insertion order, oldest first
            if len(self._buckets) > MAX_CLIENTS:
                del self._buckets[next(iter(self._buckets))]
        return allowed, 0.0 if allowed else (1.0 - tokens) / self.rate
