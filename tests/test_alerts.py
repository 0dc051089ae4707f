"""Alert rules end to end with real receivers: a local HTTP server gets the webhook, a local SMTP server
(aiosmtpd) gets the e-mail. Also: threshold and service filters, de-duplication, cooldown, the CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from webapp_support import analysed_store, free_port

from llmid.errors import ConfigError
from llmid.plugin import alerts
from llmid.store.sqlite import SQLiteStore


class Hook:
    """A webhook receiver on loopback that records each JSON body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.got = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                n = int(self.headers.get("Content-Length", "0"))
                outer.bodies.append({"headers": dict(self.headers), "json": json.loads(self.rfile.read(n))})
                outer.got.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


@pytest.fixture()
def smtp() -> Iterator[Any]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    class Inbox(Message):
        def __init__(self) -> None:
            super().__init__()
            self.messages: list[Any] = []

        def handle_message(self, message: Any) -> None:
            self.messages.append(message)

        def prepare_message(self, session: Any, envelope: Any) -> Any:
            msg = message_from_bytes(envelope.content)
            msg["X-Rcpt"] = ", ".join(envelope.rcpt_tos)
            return msg

    inbox = Inbox()
    port = free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, ready_timeout=10)
    ctl.start()
    inbox.port = port  # type: ignore[attr-defined]
    yield inbox
    ctl.stop()


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return analysed_store(tmp_path_factory.mktemp("alerts"))[0]


@pytest.fixture()
def st(store_url: str, tmp_path: Path) -> Iterator[SQLiteStore]:
    """A private copy of the analysed store per test (rules and firings do not leak between tests)."""
    dst = tmp_path / "copy.db"
    src, out = sqlite3.connect(store_url.removeprefix("sqlite:///")), sqlite3.connect(dst)
    src.backup(out)  # a consistent snapshot
    src.close()
    out.close()
    s = SQLiteStore(str(dst))
    yield s
    s.close()


def rule(**kw: Any) -> alerts.AlertRule:
    doc = {"name": "rc", "metric": "root_cause_score", "threshold": 0.9, "cooldown_s": 0,
           "channels": [{"type": "webhook", "url": "http://127.0.0.1:9/none"}], **kw}
    return alerts.AlertRule.from_doc(doc)


def test_webhook_received(st: SQLiteStore, hook: Hook) -> None:
    alerts.add_rule(st, rule(channels=[{"type": "webhook", "url": hook.url}]))
    firings = alerts.evaluate(st, base_url="http://llmid.local")
    matching = [i for i in st.incidents(limit=100).hits if i["root_cause"]["score"] >= 0.9]
    assert matching and len(firings) == len(matching)
    assert all(f["status"] == "sent" for f in firings)
    assert hook.got.wait(5) and len(hook.bodies) == len(matching)
    body = hook.bodies[0]["json"]
    assert hook.bodies[0]["headers"]["Content-Type"] == "application/json"
    assert body["rule"]["name"] == "rc" and body["value"] >= 0.9 and body["test"] is False
    inc = body["incident"]
    assert inc["root_cause"]["template"] and inc["chain"] and inc["recommendations"][0]["action"]
    assert body["url"] == f"http://llmid.local/incidents/{inc['incident_id']}"
    # de-duplication: evaluating again sends nothing new
    assert alerts.evaluate(st) == []
    assert len(hook.bodies) == len(matching)
    actions = [a["action"] for a in st.audit(limit=50)]
    assert actions.count("alert.sent") == len(matching)


def test_email_received(st: SQLiteStore, smtp: Any) -> None:
    ch = {"type": "email", "to": ["oncall@example.com", "sre@example.com"], "smtp": f"smtp://127.0.0.1:{smtp.port}",
          "from": "llmid@example.com"}
    r = rule(metric="anomaly_score", threshold=0.0, channels=[ch], cooldown_s=3600)
    alerts.add_rule(st, r)
    top = st.incidents(limit=1).hits[0]
    firings = alerts.evaluate(st, incidents=[top])
    assert [f["status"] for f in firings] == ["sent"]
    assert len(smtp.messages) == 1
    msg = smtp.messages[0]
    assert msg["From"] == "llmid@example.com" and msg["X-Rcpt"] == "oncall@example.com, sre@example.com"
    assert msg["Subject"].startswith("[LLM-ID] rc: root cause in ")
    text = msg.get_payload(decode=True).decode()
    assert top["incident_id"] in text and top["root_cause"]["template"] in text and "Fault chain:" in text


def test_threshold_service_and_cooldown(st: SQLiteStore, hook: Hook) -> None:
    incs = st.incidents(limit=100).hits
    services = {i["root_cause"]["service"]["name"] for i in incs}
    svc = max(services, key=lambda s: sum(i["root_cause"]["service"]["name"] == s for i in incs))
    of_svc = [i for i in incs if i["root_cause"]["service"]["name"] == svc]
    assert len(of_svc) >= 2, "the scenario should give one service several incidents"
    alerts.add_rule(st, rule(metric="anomaly_score", threshold=0.0, service=svc, cooldown_s=3600,
                             channels=[{"type": "webhook", "url": hook.url}]))
    firings = alerts.evaluate(st)
    assert {f["service"] for f in firings} == {svc} and len(firings) == len(of_svc)
    assert [f["status"] for f in firings].count("sent") == 1  # the cooldown holds back the others
    assert all(f["status"] == "suppressed" for f in firings if f["status"] != "sent")
    assert len(hook.bodies) == 1
    alerts.add_rule(st, rule(metric="anomaly_score", threshold=1.0,
                             channels=[{"type": "webhook", "url": hook.url}]))
    assert alerts.evaluate(st) == []  # no incident scores a perfect 1.0 anomaly


def test_failed_channel_does_not_stop_others(st: SQLiteStore, hook: Hook) -> None:
    dead = f"http://127.0.0.1:{free_port()}/nobody"
    alerts.add_rule(st, rule(threshold=0.0, channels=[{"type": "webhook", "url": dead},
                                                      {"type": "webhook", "url": hook.url}]))
    firings = alerts.evaluate(st, incidents=st.incidents(limit=1).hits)
    assert firings[0]["status"] == "failed"
    assert [r["ok"] for r in firings[0]["results"]] == [False, True]
    assert "unreachable" in firings[0]["results"][0]["error"]
    assert len(hook.bodies) == 1


def test_rule_validation() -> None:
    ok = rule().to_doc()
    assert alerts.AlertRule.from_doc(ok).rule_id == ok["rule_id"]
    for bad in ({"threshold": True}, {"threshold": -0.1}, {"metric": "p99"}, {"cooldown_s": -1},
                {"channels": []}, {"channels": [{"type": "webhook", "url": "file:///etc/passwd"}]},
                {"channels": [{"type": "email", "to": ["a@b.c"], "smtp": "http://x"}]},
                {"surprise": 1}, {"rule_id": "../../etc"}):
        with pytest.raises(ConfigError):
            alerts.AlertRule.from_doc({**ok, **bad})


def llmid(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmid", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ})


def test_cli_add_list_test(st: SQLiteStore, hook: Hook, smtp: Any) -> None:
    url = f"sqlite:///{st.path}"
    p = llmid("alerts", "add", "--name", "cli rule", "--threshold", "0.8", "--webhook", hook.url,
              "--email", "oncall@example.com", "--smtp", f"smtp://127.0.0.1:{smtp.port}", "--store", url)
    assert p.returncode == 0, p.stderr
    rid = p.stdout.strip()
    p = llmid("alerts", "list", "--json", "--store", url)
    listed = json.loads(p.stdout)
    assert [r["rule_id"] for r in listed] == [rid] and listed[0]["threshold"] == 0.8
    p = llmid("alerts", "test", rid, "--store", url)
    assert p.returncode == 0, p.stderr
    assert "webhook: sent" in p.stdout and "email: sent" in p.stdout
    assert hook.got.wait(5) and hook.bodies[0]["json"]["test"] is True
    assert len(smtp.messages) == 1 and "TEST" in smtp.messages[0]["Subject"]
    p = llmid("alerts", "test", "000000000000", "--store", url)
    assert p.returncode != 0 and "Traceback" not in p.stderr and "No alert rule" in p.stderr
    p = llmid("alerts", "add", "--name", "x", "--threshold", "3", "--webhook", hook.url, "--store", url)
    assert p.returncode != 0 and "threshold" in p.stderr and "Traceback" not in p.stderr
    p = llmid("alerts", "check", "--json", "--store", url)
    assert p.returncode == 0 and json.loads(p.stdout)
    p = llmid("alerts", "delete", rid, "--store", url)
    assert p.returncode == 0 and json.loads(llmid("alerts", "list", "--json", "--store", url).stdout) == []
