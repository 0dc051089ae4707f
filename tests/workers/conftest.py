"""Fixtures of the worker tests: a real Redis server (Debian's redis-server) on a free loopback port, one Redis
database per test (so queues never mix), and generated log files with many chunks, windows and incidents."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from workers_support import RedisServer

_dbs = itertools.count(1)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing: .ci/run installs Debian's redis-server")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def broker(redis_server: RedisServer) -> str:
    """A Redis database of its own for this test (16 per server; the session server has plenty)."""
    db = next(_dbs) % 16
    redis_server.client(db).flushdb()
    return redis_server.url(db)


@pytest.fixture(scope="session")
def sim_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated incident log: ~12k mixed-format lines, a dozen chunks, many windows, some incidents."""
    out = tmp_path_factory.mktemp("sim")
    subprocess.run([sys.executable, "-m", "llmid", "sim", "generate", "--seed", "11", "--out", str(out),
                    "--lines", "12000"], check=True, capture_output=True, timeout=120)
    return out / "scenario.log"


@pytest.fixture(scope="session")
def tricky_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stack traces, container partial lines, blank lines, CRLF, invalid UTF-8, long lines, no final newline:
    everything that makes cutting a file into chunks hard."""
    import random

    rnd = random.Random(1)
    path = tmp_path_factory.mktemp("tricky") / "tricky.log"
    with path.open("wb") as f:
        for i in range(4000):
            r = rnd.random()
            m, s = (i // 60) % 60, i % 60
            if r < 0.05:
                f.write(b"2026-05-01T12:%02d:%02d.000Z ERROR [api] boom %d\nTraceback (most recent call last):\n"
                        b"  File \"x.py\", line 3, in f\n    g()\nValueError: bad\n" % (m, s, i))
            elif r < 0.08:
                f.write(b"2026-05-01T12:%02d:%02d.123456789Z stdout P part one %d \n"
                        b"2026-05-01T12:%02d:%02d.123456789Z stdout F part two\n" % (m, s, i, m, s))
            elif r < 0.10:
                f.write(b'{"log":"partial %d ","stream":"stdout","time":"2026-05-01T12:00:00Z"}\n'
                        b'{"log":"rest\\n","stream":"stdout","time":"2026-05-01T12:00:00Z"}\n' % i)
            elif r < 0.12:
                f.write(b"\n   \n")
            elif r < 0.14:
                f.write(b"May  1 12:%02d:%02d host sshd[12]: Accepted publickey for u%d\r\n" % (m, s, i))
            elif r < 0.15:
                f.write(b"2026-05-01 12:%02d:%02d,123 WARN bad bytes \xff\xfe here %d\n" % (m, s, i))
            elif r < 0.16:
                f.write(b"2026-05-01 12:%02d:%02d,123 INFO long " % (m, s) + b"x" * 3000 + b"\n")
            else:
                f.write(b"2026-05-01T12:%02d:%02d.000Z INFO [api] request %d served in %d ms\n" % (m, s, i, i % 97))
        f.write(b"2026-05-01T12:59:59.000Z ERROR [db] no newline at the end")
    return path
