"""Helpers of the worker tests: real `llmid` processes, a real Redis server, and the store compared document by
document (no mocks: what is checked is what a user running workers gets)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _engine() -> dict[str, str]:
    """Settings that make the default engine runnable here: the learned reasoner needs its model file
    (models/reasoner.onnx); where it is not installed these tests use the baseline reasoner."""
    import dataclasses

    from llmid.config import Settings

    if "reasoner" not in {f.name for f in dataclasses.fields(Settings)}:
        return {}
    try:
        from llmid.engine.reasoner import make_reasoner  # type: ignore[attr-defined]

        make_reasoner(Settings())
    except Exception:  # noqa: BLE001 - no model (or no learned reasoner at all): use the baseline
        return {"reasoner": "baseline"}
    return {}


ENGINE = _engine()
"""Settings overrides of every run in these tests (in-process ones get them as Settings fields)."""
FAST = {"LLMID_BROKER_STALL_SECONDS": "3", **{f"LLMID_{k.upper()}": v for k, v in ENGINE.items()}}
"""The ingesting side re-sends after 3 s without progress (30 s by default), so recovery tests stay short."""


def settings(**kw: Any) -> Any:
    """Settings of an in-process run in these tests."""
    from llmid.config import Settings

    return Settings(**{**ENGINE, **kw})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """Debian's redis-server on a free loopback port, without persistence (a restart loses every message)."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.dir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> RedisServer:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed (apt-get install redis-server)"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.client().ping():
                return self
            time.sleep(0.05)
        raise AssertionError(f"redis-server did not answer on port {self.port}")

    def client(self, db: int = 0) -> Any:
        import redis

        class _Quiet:
            def __init__(self, r: Any) -> None:
                self.r = r

            def ping(self) -> bool:
                try:
                    return bool(self.r.ping())
                except redis.exceptions.ConnectionError:
                    return False

            def __getattr__(self, name: str) -> Any:
                return getattr(self.r, name)

        return _Quiet(redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=5))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def llmid(*args: str, env: dict[str, str] | None = None, timeout: float = 180,
          input_bytes: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmid", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **FAST, **(env or {})},
                          input=None if input_bytes is None else input_bytes.decode("latin-1"))


class Worker:
    """One `llmid worker` process (its own process group, so a SIGKILL takes its pool children too)."""

    def __init__(self, broker: str, store: str, log: Path, *, concurrency: int = 1, pool: str = "solo",
                 queues: str = "structure,reason,plan", env: dict[str, str] | None = None) -> None:
        self.log = log
        self.fh = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmid", "worker", "--broker", broker, "--store", store, "--pool", pool,
             "--concurrency", str(concurrency), "--queues", queues, "--loglevel", "info"],
            stdout=self.fh, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **FAST, **(env or {})})

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        try:
            return [int(x) for x in path.read_text().split()]
        except OSError:
            return []

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b" ready." in self.log.read_bytes():
                return
            assert self.proc.poll() is None, self.log.read_text(errors="replace")[-3000:]
            time.sleep(0.05)
        raise AssertionError("the worker did not start: " + self.log.read_text(errors="replace")[-3000:])

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once: no cleanup, no acknowledgement."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.fh.close()


def dump(db: Path) -> dict[str, Any]:
    """Every document of a SQLite store, by id, and the engine state (what must equal the in-process run's)."""
    with sqlite3.connect(db) as c:
        return {
            "logs": {i: json.loads(d) for i, d in c.execute("SELECT id, doc FROM logs")},
            "templates": {i: json.loads(d) for i, d in c.execute("SELECT template_id, doc FROM templates")},
            "incidents": {i: json.loads(d) for i, d in c.execute("SELECT incident_id, doc FROM incidents")},
            "recommendations": {i: json.loads(d) for i, d in
                                c.execute("SELECT recommendation_id, doc FROM recommendations")},
            "state": {k: json.loads(v) for k, v in c.execute("SELECT key, value FROM state")},
        }


def line_ids(db: Path) -> list[int]:
    with sqlite3.connect(db) as c:
        return [r[0] for r in c.execute("SELECT line_id FROM logs ORDER BY line_id")]


def assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    for kind in ("logs", "templates", "incidents", "recommendations", "state"):
        a, b = got[kind], want[kind]
        bad = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        assert not bad, f"{kind}: {len(bad)} differ, e.g. {bad[0]}: {a.get(bad[0])} != {b.get(bad[0])}"


def stats(store: str) -> dict[str, int]:
    p = llmid("stats", "--json", "--store", store)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def structured_chunks(db: Path) -> int:
    """How far the structure stage of the (only) run in the store is."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as c:
            rows = c.execute("SELECT value FROM state WHERE key LIKE 'workers.run.%.structure.next'").fetchall()
    except sqlite3.Error:
        return 0
    return max((json.loads(v) for (v,) in rows), default=0)
