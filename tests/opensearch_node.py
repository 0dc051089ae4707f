"""The real OpenSearch node of the tests: `tests/opensearch/start-node PORT` (a 2.19 MockNode with the HTTP
transport and the common modules, built from Maven artifacts), started once per pytest process on a free
loopback port and stopped at exit. Not a test module; test modules import `node_url` / `cluster_store`.

`LLMID_TEST_OPENSEARCH_URL=http://127.0.0.1:PORT` uses a node that is already running instead. Without Java or
Maven the cluster tests skip, except under CI (CI=true), where a node that cannot start fails them."""

from __future__ import annotations

import atexit
import itertools
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
START_NODE = ROOT / "tests" / "opensearch" / "start-node"
START_TIMEOUT_S = 180.0
"""First start may build the launcher with Maven (a few seconds with ~/.m2 warm); the node itself takes ~10 s."""

_lock = threading.Lock()
_state: dict[str, Any] = {}
_names = itertools.count(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(method: str, url: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
    """A plain JSON request to the node (test set-up and checks, independent of the code under test)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode("utf-8", "replace")


def _start() -> str:
    if os.environ.get("LLMID_TEST_OPENSEARCH_URL"):
        return os.environ["LLMID_TEST_OPENSEARCH_URL"].rstrip("/")
    built = (START_NODE.parent / "target" / "classpath.txt").exists()
    if not (shutil.which("java") and (shutil.which("mvn") or built)):
        raise RuntimeError("Java 17 and Maven are needed to start the test OpenSearch node")
    port = _free_port()
    log = open(ROOT / "tests" / "opensearch" / "node.log", "w")  # noqa: SIM115 - kept open for the node's life
    proc = subprocess.Popen([str(START_NODE), str(port)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    _state["proc"] = proc

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()

    atexit.register(stop)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the test OpenSearch node exited with {proc.returncode}; see tests/opensearch/node.log")
        try:
            status, _ = http("GET", url + "/_cluster/health?wait_for_status=yellow&timeout=5s", timeout=10)
            if status == 200:
                _state["started_s"] = START_TIMEOUT_S - (deadline - time.monotonic())
                return url
        except OSError:
            pass
        time.sleep(0.5)
    stop()
    raise RuntimeError(f"the test OpenSearch node did not answer within {START_TIMEOUT_S:.0f} s")


def node_url() -> str:
    """http://127.0.0.1:PORT of the running node (started on first use), or skip/fail the test."""
    with _lock:
        if "url" not in _state and "error" not in _state:
            try:
                _state["url"] = _start()
            except (RuntimeError, OSError) as err:
                _state["error"] = str(err)
        if "error" in _state:
            if os.environ.get("CI"):
                pytest.fail(f"No OpenSearch test node: {_state['error']}.")
            pytest.skip(f"No OpenSearch test node: {_state['error']}.")
        return str(_state["url"])


def fresh_prefix(tag: str = "t") -> str:
    """An index prefix no other test uses (tests share the node, never their indices)."""
    return f"{tag}{os.getpid()}-{next(_names)}-"


def drop_prefix(url: str, prefix: str) -> None:
    """Delete every index, template and pipeline of one prefix (test clean-up)."""
    http("DELETE", f"{url}/{prefix}*?expand_wildcards=all")
    http("DELETE", f"{url}/_index_template/{prefix}*")
    http("DELETE", f"{url}/_component_template/{prefix}*")
    http("DELETE", f"{url}/_ingest/pipeline/{prefix}*")
