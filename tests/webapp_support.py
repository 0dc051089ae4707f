"""Shared set-up of the web-app and alert tests: a store analysed from a simulator scenario, tokens, a live
server. Not a test module (no `test_` prefix); the test modules import it from this folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from llmid.config import Settings
from llmid.plugin.webapp import tokens
from llmid.runner import run_source
from llmid.sim.scenario import generate
from llmid.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


def analysed_store(tmp: Path, seed: int = 7) -> tuple[str, Path]:
    """`llmid sim generate --seed SEED` + `llmid analyze` done in-process: (store URL, log path)."""
    log = generate(seed).write(tmp / f"sim{seed}")
    url = f"sqlite:///{tmp / f'sim{seed}' / 'llmid.db'}"
    settings = Settings(store=url, quiet=True)
    with SQLiteStore.from_url(url) as st:
        run_source(str(log), settings, st)
    return url, log


def make_tokens(url: str) -> dict[str, str]:
    """One token per role."""
    with SQLiteStore.from_url(url) as st:
        return {role: tokens.create_token(st, role, f"test {role}")[0] for role in tokens.ROLES}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    """Poll until the server answers (bounded), else raise."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError as e:
            last = e
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s ({last})")


def start_server(url: str, port: int, *extra: str) -> subprocess.Popen[Any]:
    """`llmid serve` as a user runs it (waitress), on loopback; the caller terminates it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmid", "serve", "--store", url, "--host", "127.0.0.1", "--port", str(port),
         "--workers", "4", "--alert-interval", "0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v1/health")
    except TimeoutError:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        raise RuntimeError(f"llmid serve did not start: {err[-2000:]}") from None
    return proc


def stop_server(proc: subprocess.Popen[Any]) -> str:
    """Terminate and return stderr (bounded wait, then kill)."""
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=10)
    return err or ""
