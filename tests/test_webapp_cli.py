"""`llmid serve`, `llmid token` and the alert loop of `serve`, run as a user runs them (subprocesses, waitress on
loopback, a local webhook receiver)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from webapp_support import analysed_store, free_port, start_server, stop_server, wait_http

from llmid.store.sqlite import SQLiteStore


def llmid(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmid", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ})


def get(url: str, token: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return analysed_store(tmp_path_factory.mktemp("cli"))[0]


def test_help() -> None:
    for cmd in (["serve"], ["token", "create"], ["token", "list"], ["alerts", "add"], ["alerts", "list"],
                ["alerts", "test"], ["alerts", "check"]):
        p = llmid(*cmd, "--help")
        assert p.returncode == 0 and "usage:" in p.stdout, cmd


def test_tokens_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    p = llmid("token", "create", "--role", "read", "--name", "ci reader", "--store", url)
    assert p.returncode == 0, p.stderr
    secret = p.stdout.strip()
    assert secret.startswith("llmid_") and "not shown again" in p.stderr
    listed = json.loads(llmid("token", "list", "--json", "--store", url).stdout)
    assert [(t["name"], t["role"]) for t in listed] == [("ci reader", "read")]
    assert secret not in json.dumps(listed)
    p = llmid("token", "create", "--role", "root", "--store", url)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    p = llmid("token", "revoke", "ffffffffffff", "--store", url)
    assert p.returncode != 0 and "No token" in p.stderr and "Traceback" not in p.stderr
    assert llmid("token", "revoke", listed[0]["token_id"], "--store", url).returncode == 0
    assert json.loads(llmid("token", "list", "--json", "--store", url).stdout) == []


def test_serve_bootstraps_an_admin_token_and_refuses_bad_options(store_url: str, tmp_path: Path) -> None:
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    port = free_port()
    proc = start_server(fresh, port)
    try:
        status, body = get(f"http://127.0.0.1:{port}/api/v1/stats")
        assert status == 401
    finally:
        err = stop_server(proc)
    token = next(w for w in err.split() if w.startswith("llmid_"))
    assert "created an admin token" in err
    proc = start_server(fresh, port)
    try:
        status, body = get(f"http://127.0.0.1:{port}/api/v1/tokens", token)
        assert status == 200 and body["tokens"][0]["role"] == "admin"
    finally:
        err = stop_server(proc)
    assert "created an admin token" not in err  # only when the store has none
    for bad in (["--port", "70000"], ["--workers", "0"], ["--max-body", "10"]):
        p = llmid("serve", "--store", fresh, *bad)
        assert p.returncode != 0 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        p = llmid("serve", "--store", fresh, "--port", str(busy.getsockname()[1]), timeout=30)
    assert p.returncode != 0 and "Cannot listen" in p.stderr and "Traceback" not in p.stderr


def test_serve_checks_alert_rules(store_url: str, tmp_path: Path) -> None:
    got: list[dict[str, Any]] = []
    done = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            done.set()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=hook.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    try:
        p = llmid("alerts", "add", "--name", "any incident", "--metric", "anomaly_score", "--threshold", "0.5",
                  "--cooldown", "3600", "--webhook", f"http://127.0.0.1:{hook.server_address[1]}/h",
                  "--store", store_url)
        assert p.returncode == 0, p.stderr
        port = free_port()
        proc = start_server(store_url, port, "--alert-interval", "0.5")
        try:
            assert done.wait(20), "serve did not evaluate the alert rule"
            with SQLiteStore.from_url(store_url) as st:  # the firing is recorded right after it is sent
                for _ in range(100):
                    if any(a["action"] == "alert.sent" for a in st.audit(limit=50)):
                        break
                    time.sleep(0.1)
                else:
                    raise AssertionError("no alert.sent in the audit trail")
            wait_http(f"http://127.0.0.1:{port}/api/v1/health")
        finally:
            stop_server(proc)
        assert got[0]["rule"]["name"] == "any incident" and got[0]["incident"]["root_cause"]["template"]
    finally:
        hook.shutdown()
        hook.server_close()
