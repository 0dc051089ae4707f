"""The cluster stores beyond the shared contract (tests/store_contract.py): the issue's "done when" end to end on
a real OpenSearch node, and the bad cases — cluster unreachable (before and in the middle of a run), 429 storms
(the node's own in-flight-requests circuit breaker), a mapping conflict in an existing index, a bulk with some
rejected items, wrong credentials, and credentials kept out of URLs and messages.

Where the real node cannot produce a case (it has no security plugin, so no 401; per-item 429s need a saturated
write queue), a loopback stub or a fake transport stands in, and the test says so.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opensearch_node import drop_prefix, fresh_prefix, http, node_url
from store_contract import rec, tpl

from llmid.errors import StoreError
from llmid.store import open_store
from llmid.store.base import Batch, SearchQuery
from llmid.store.cluster import ClusterHTTPError, ClusterOptions, ClusterStore, Transport
from llmid.store.opensearch import OpenSearchStore, _client_kwargs

ROOT = Path(__file__).resolve().parents[1]


def llmid(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmid", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LLMID_REASONER": "baseline", **(env or {})}, cwd=cwd)


@pytest.fixture()
def prefix() -> Iterator[tuple[str, str]]:
    base = node_url()
    p = fresh_prefix("s")
    yield base, p
    drop_prefix(base, p)


# ---------------------------------------------------------------- done when


def test_install_analyze_stats_equal_sqlite(prefix: tuple[str, str], tmp_path: Path) -> None:
    """`llmid install` then `llmid analyze FILE --store opensearch+...` leaves the four document kinds, the
    templates, pipelines (and, where the plugins exist, policies) in place, and stats equal the SQLite run."""
    base, p = prefix
    assert llmid("sim", "generate", "--seed", "7", "--out", str(tmp_path / "demo")).returncode == 0
    log = tmp_path / "demo" / "scenario.log"
    first = llmid("install", "--url", base, "--prefix", p, "--json")
    assert first.returncode == 0, first.stderr
    outcomes = json.loads(first.stdout)
    assert {o["result"] for o in outcomes} <= {"created", "skipped"}
    again = llmid("install", "--url", base, "--prefix", p, "--json")
    assert {o["result"] for o in json.loads(again.stdout)} <= {"unchanged", "skipped"}  # nothing changes

    url = f"opensearch+{base}/?prefix={p}"
    ran = llmid("analyze", str(log), "--store", url, "--json")
    assert ran.returncode == 0, ran.stderr
    stats = llmid("stats", "--json", "--store", url)
    db = f"sqlite:///{tmp_path / 'ref.db'}"
    assert llmid("analyze", str(log), "--store", db, "-q").returncode == 0
    ref = llmid("stats", "--json", "--store", db)
    assert json.loads(stats.stdout) == json.loads(ref.stdout)
    got = json.loads(stats.stdout)
    assert got["records"] > 4000 and got["incidents"] > 0 and got["recommendations"] > 0

    # the same documents: incidents with their ranking, and a sample of log records
    with open_store(url) as os_store, open_store(db) as sq_store:
        assert os_store.incidents(limit=100).hits == sq_store.incidents(limit=100).hits
        assert os_store.templates(limit=500).hits == sq_store.templates(limit=500).hits
        q = SearchQuery(level="ERROR", limit=50)
        assert os_store.search(q).total == sq_store.search(q).total
        assert os_store.facet("service") == sq_store.facet("service")
    # re-analysing changes no counts (deterministic ids)
    assert llmid("analyze", str(log), "--store", url, "-q").returncode == 0
    assert json.loads(llmid("stats", "--json", "--store", url).stdout) == got

    # what install left in the cluster
    status, tpls = http("GET", f"{base}/_index_template/{p}*")
    assert {t["name"] for t in tpls["index_templates"]} >= {f"{p}{k}" for k in
                                                             ("logs", "templates", "incidents", "recommendations")}
    status, pipes = http("GET", f"{base}/_ingest/pipeline/{p}parse*")
    assert status == 200 and f"{p}parse" in pipes and f"{p}parse-hdfs" in pipes
    status, cat = http("GET", f"{base}/_cat/indices/{p}*?format=json")
    names = {i["index"] for i in cat}
    assert {f"{p}templates", f"{p}incidents", f"{p}recommendations"} <= names
    assert any(n.startswith(f"{p}logs-2026.") or n.startswith(f"{p}logs-20") for n in names)
    skipped = {o["kind"]: o["detail"] for o in outcomes if o["result"] == "skipped"}
    assert "no Index State Management plugin" in skipped.get("ISM policy", "")  # the test node has no ISM
    assert "no Alerting plugin" in skipped.get("alert monitor", "")

    # uninstall removes exactly what install made; the data stays
    out = llmid("uninstall", "--url", base, "--prefix", p, "--json")
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert {o["result"] for o in results} <= {"deleted", "skipped"}
    assert http("GET", f"{base}/_index_template/{p}logs")[0] == 404
    assert http("GET", f"{base}/_ingest/pipeline/{p}parse")[0] == 404
    assert json.loads(llmid("stats", "--json", "--store", url).stdout) == got


# ---------------------------------------------------------------- unreachable


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_cluster_is_one_sentence() -> None:
    port = _closed_port()
    p = llmid("stats", "--json", "--store", f"opensearch+http://127.0.0.1:{port}/?retries=2&backoff_s=0.01")
    assert p.returncode == 3
    err = p.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"Cannot connect to the OpenSearch cluster at opensearch+http://127.0.0.1:{port}" in err
    assert "connection refused" in err and "after 2 attempts" in err


class Proxy:
    """A loopback TCP proxy to the node that a test can cut and restore (the cluster going away mid-run)."""

    def __init__(self, target: str) -> None:
        host, port = target.split("//")[1].split(":")
        self.target = (host, int(port))
        self.port = _closed_port()
        self.socks: list[socket.socket] = []
        self.listener: socket.socket | None = None

    def start(self) -> None:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(16)
        self.listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        if self.listener is not None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the other thread
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        for s in self.socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        self.socks = []


def test_cluster_lost_mid_run_loses_nothing_and_a_retry_completes(prefix: tuple[str, str]) -> None:
    base, p = prefix
    proxy = Proxy(base)
    proxy.start()
    try:
        st = open_store(f"opensearch+http://127.0.0.1:{proxy.port}/?prefix={p}&retries=3&backoff_s=0.05")
        first = Batch(records=[rec(i) for i in range(1, 51)], templates=[tpl("t1")], state={"cursor": 1})
        second = Batch(records=[rec(i) for i in range(51, 101)], state={"cursor": 2})
        st.write(first)
        proxy.cut()
        with pytest.raises(StoreError) as err:
            st.write(second)
        msg = str(err.value)
        assert "Cannot write to the OpenSearch cluster" in msg and "everything written before is kept" in msg
        assert "\n" not in msg
        http("POST", f"{base}/{p}*/_refresh")
        with open_store(f"opensearch+{base}/?prefix={p}") as direct:
            assert direct.stats()["records"] == 50 and direct.load_state("cursor") == 1  # nothing half-written
        proxy.start()  # the cluster is back: the same write goes through
        st.write(second)
        st.close()
        with open_store(f"opensearch+{base}/?prefix={p}") as direct:
            assert direct.stats()["records"] == 100 and direct.load_state("cursor") == 2
            assert {h["template_id"]: h["count"] for h in direct.templates().hits} == {"t1": 100}
    finally:
        proxy.cut()


# ---------------------------------------------------------------- 429 storms


def test_429_storm_from_the_node_is_retried_with_backoff(prefix: tuple[str, str]) -> None:
    """The node's in-flight-requests circuit breaker, lowered to 2 kB, answers every bulk with 429
    (circuit_breaking_exception) until it is restored; the write backs off, retries and succeeds."""
    base, p = prefix
    st = open_store(f"opensearch+{base}/?prefix={p}&retries=12&backoff_s=0.1")
    assert isinstance(st, ClusterStore)
    statuses: list[int] = []
    request = st._t.request

    def spy(*a: Any, **kw: Any) -> Any:
        try:
            return request(*a, **kw)
        except ClusterHTTPError as e:
            statuses.append(e.status)
            raise

    st._t.request = spy  # type: ignore[method-assign]
    setting = "network.breaker.inflight_requests.limit"
    assert http("PUT", f"{base}/_cluster/settings", {"transient": {setting: "2kb"}})[0] == 200
    restore = threading.Timer(1.5, lambda: http("PUT", f"{base}/_cluster/settings", {"transient": {setting: None}}))
    restore.start()
    try:
        started = time.monotonic()
        st.write(Batch(records=[rec(i) for i in range(1, 201)], templates=[tpl("t1")]))
        assert time.monotonic() - started >= 1.0
    finally:
        restore.join()
        http("PUT", f"{base}/_cluster/settings", {"transient": {setting: None}})
    assert statuses and set(statuses) == {429}
    assert st.stats()["records"] == 200
    assert {h["template_id"]: h["count"] for h in st.templates().hits} == {"t1": 200}
    st.recount()  # maintenance: the aggregation agrees with the increments
    assert {h["template_id"]: h["count"] for h in st.templates().hits} == {"t1": 200}
    st.close()


class FakeBulk(Transport):
    """Stand-in for per-item 429s (a saturated write thread pool, which one test node cannot be made to have
    on demand): the first bulk rejects every other item with 429, later ones accept everything."""

    def __init__(self) -> None:
        self.bulks: list[int] = []

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                ndjson: bool = False) -> Any:
        if path == "/":
            return {"version": {"distribution": "opensearch", "number": "2.19.6"}}
        if path == "/_bulk":
            metas = [json.loads(line) for line in body.splitlines()[::2]]
            self.bulks.append(len(metas))
            first = len(self.bulks) == 1
            items = [{"index": {"status": 429 if first and i % 2 else 201,
                                "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}}
                     for i in range(len(metas))]
            return {"errors": first, "items": items}
        if path == "/_mget":
            return {"docs": []}
        return {}


def test_bulk_items_rejected_with_429_are_retried_alone() -> None:
    t = FakeBulk()
    st = ClusterStore(ClusterOptions("opensearch", ["http://stub"], backoff_s=0.0), t, ensure=False)
    st.sleep = lambda s: None
    st.write(Batch(records=[rec(i) for i in range(10)]))
    assert t.bulks[:2] == [10, 5]  # the 5 rejected items, alone


# ---------------------------------------------------------------- mapping conflicts, rejected items


def test_mapping_conflict_in_an_existing_index_is_reported(prefix: tuple[str, str]) -> None:
    base, p = prefix
    status, _ = http("PUT", f"{base}/{p}incidents", {"mappings": {"properties": {
        "anomaly_score": {"type": "keyword"}, "incident_id": {"type": "text"}}}})
    assert status == 200
    with pytest.raises(StoreError) as err:
        open_store(f"opensearch+{base}/?prefix={p}")
    msg = str(err.value)
    assert f"The index {p}incidents" in msg and "conflicting mapping" in msg
    assert "incident_id is text, expected keyword" in msg and "anomaly_score is keyword, expected float" in msg
    out = llmid("install", "--url", base, "--prefix", p)
    assert out.returncode == 3 and "conflicting mapping" in out.stderr and "Traceback" not in out.stderr


def test_bulk_with_some_rejected_items_keeps_them(prefix: tuple[str, str]) -> None:
    """A partition created by hand maps labels.Pid as a number: records whose Pid is not one are rejected by the
    node, kept in the rejected index with the reason, and the rest is written with exact counts."""
    base, p = prefix
    with open_store(f"opensearch+{base}/?prefix={p}"):
        pass  # templates in place
    day = time.strftime("%Y.%m.%d", time.gmtime(1_700_000_000))
    assert http("PUT", f"{base}/{p}logs-{day}", {"mappings": {"properties": {"labels": {"properties": {
        "Pid": {"type": "long"}}}}}})[0] == 200
    records = [rec(i, fields={"Pid": "12" if i % 4 else "not-a-pid"}) for i in range(1, 21)]
    st = open_store(f"opensearch+{base}/?prefix={p}")
    with pytest.raises(StoreError) as err:
        st.write(Batch(records=records, templates=[tpl("t1")]))
    msg = str(err.value)
    assert "rejected 5 document(s)" in msg and "mapper_parsing_exception" in msg
    assert f"they are kept in {p}rejected" in msg
    assert st.stats()["records"] == 15
    assert {h["template_id"]: h["count"] for h in st.templates().hits} == {"t1": 15}
    st.refresh()
    status, res = http("POST", f"{base}/{p}rejected/_search", {"query": {"match_all": {}}})
    assert res["hits"]["total"]["value"] == 5
    kept = res["hits"]["hits"][0]["_source"]
    assert kept["doc"]["labels"]["Pid"] == "not-a-pid" and kept["index"] == f"{p}logs-{day}"
    st.close()


# ---------------------------------------------------------------- credentials


class Stub(BaseHTTPRequestHandler):
    """A loopback stand-in for a secured cluster (the test node has no security plugin): 401 unless the
    Authorization header matches; records what it saw."""

    seen: list[dict[str, str]] = []
    accept = "Basic dXNlcjpzM2NyZXQ="  # user:s3cret

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        Stub.seen.append({k.lower(): v for k, v in self.headers.items()})
        ok = self.headers.get("Authorization") == Stub.accept
        body = json.dumps({"version": {"distribution": "opensearch", "number": "2.19.6"}} if ok else
                          {"error": {"type": "security_exception", "reason": "missing authentication"}}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def stub() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    Stub.seen = []
    yield f"127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_wrong_credentials_are_one_sentence(stub: str, tmp_path: Path) -> None:
    env = {"LLMID_STORE_USERNAME": "user", "LLMID_STORE_PASSWORD": "wrong"}
    p = llmid("stats", "--store", f"opensearch+http://{stub}", env=env)
    assert p.returncode == 3 and len(p.stderr.strip().splitlines()) == 1
    assert "refused the credentials (401 unauthorized)" in p.stderr and "wrong" not in p.stderr
    # the right ones, from a credentials file: accepted (the stub answers only GET /, enough to connect)
    creds = tmp_path / "creds"
    creds.write_text("# LLM-ID\nusername = user\npassword = s3cret\n")
    opts = ClusterOptions.from_url(f"opensearch+http://{stub}", env={"LLMID_STORE_CREDENTIALS": str(creds)})
    from llmid.store.opensearch import OpenSearchTransport

    assert OpenSearchTransport(opts).request("GET", "/")["version"]["number"] == "2.19.6"
    assert Stub.seen[-1]["authorization"] == Stub.accept


def test_credentials_never_show_in_urls_or_messages() -> None:
    opts = ClusterOptions.from_url("opensearch+https://admin:hunter2@node1:9200,node2:9200/?prefix=x-",
                                   env={"LLMID_STORE_API_KEY": "k3y"})
    assert opts.username == "admin" and opts.password == "hunter2" and opts.prefix == "x-"
    assert opts.hosts == ["https://node1:9200", "https://node2:9200"]
    assert "hunter2" not in opts.display_url and "admin" not in opts.display_url
    kw = _client_kwargs(opts)
    assert kw["headers"] == {"Authorization": "ApiKey k3y"} and "http_auth" not in kw  # API key wins
    env_opts = ClusterOptions.from_url("opensearch+http://h:1", env={"LLMID_STORE_USERNAME": "u",
                                                                      "LLMID_STORE_PASSWORD": "p"})
    assert _client_kwargs(env_opts)["http_auth"] == ("u", "p")
    with pytest.raises(StoreError, match="TLS file /nope/ca.pem"):
        ClusterOptions.from_url("opensearch+https://h:1/?ca_certs=/nope/ca.pem", env={})
    with pytest.raises(StoreError) as err:
        ClusterOptions.from_url("opensearch+ftp://u:secret@h:1", env={})
    assert "secret" not in str(err.value)


def test_tls_settings_reach_the_client(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read here")
    opts = ClusterOptions.from_url("opensearch+https://h:9200", env={
        "LLMID_STORE_CA_CERTS": str(ca), "LLMID_STORE_CLIENT_CERT": str(ca), "LLMID_STORE_CLIENT_KEY": str(ca),
        "LLMID_STORE_VERIFY_CERTS": "true"})
    kw = _client_kwargs(opts)
    assert kw["ca_certs"] == kw["client_cert"] == kw["client_key"] == str(ca) and kw["verify_certs"] is True


def test_elasticsearch_store_refuses_an_opensearch_node() -> None:
    """The Elasticsearch client checks the product it talks to; pointed at the OpenSearch node it says so."""
    base = node_url()
    with pytest.raises(StoreError) as err:
        open_store(f"elasticsearch+{base}/?retries=1")
    assert "Elasticsearch" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(StoreError, match="not an OpenSearch cluster"):
        OpenSearchStore(ClusterOptions("opensearch", ["http://x"]), FakeEs(), ensure=False)


class FakeEs(Transport):
    def request(self, method: str, path: str, **kw: Any) -> Any:
        return {"version": {"number": "8.15.0", "build_flavor": "default"}, "tagline": "You Know, for Search"}
