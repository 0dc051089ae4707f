"""`llmid install` / `uninstall`: the dry run (every request, nothing sent), the ingest pipelines on the real node
(each preset's pipeline parses a line as the Python reader does), idempotence on the real node, and the saved
objects and Kibana rule through a loopback stand-in of the Dashboards / Kibana HTTP API (no Dashboards or Kibana
server runs here; the stand-in checks the xsrf header, the multipart NDJSON import and answers like the real API).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opensearch_node import drop_prefix, fresh_prefix, http, node_url

from llmid.ingest_pipelines.cluster_pipelines import pipelines
from llmid.ingest_pipelines.presets import loghub_format
from llmid.kibana_vis import specs
from llmid.plugin.install import Dashboards, Installer
from llmid.plugin.monitors import kibana_rule_id

ROOT = Path(__file__).resolve().parents[1]


def llmid(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "llmid", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ})


def test_dry_run_prints_every_request_and_sends_nothing() -> None:
    p = llmid("install", "--url", "http://127.0.0.1:9", "--dry-run", "--dashboards-url", "http://127.0.0.1:9")
    assert p.returncode == 0, p.stderr
    heads = [line for line in p.stdout.splitlines() if line.split(" ")[0] in ("PUT", "POST")]
    assert f"{len(heads)} requests; nothing was sent" in p.stderr
    assert "PUT cluster:/_index_template/llmid-logs" in heads
    assert "PUT cluster:/_plugins/_ism/policies/llmid-retention" in heads
    assert "PUT cluster:/_ingest/pipeline/llmid-parse-hdfs" in heads
    assert "POST cluster:/_plugins/_alerting/monitors" in heads
    assert heads.count("POST dashboards:/api/saved_objects/_import?overwrite=true") == 6 + len(specs.CLUSTER_DASHBOARD)
    assert '"index_patterns": [' in p.stdout  # bodies are printed too
    es = llmid("install", "--url", "elasticsearch+http://127.0.0.1:9", "--dry-run", "--kibana-url", "http://x:9")
    assert "PUT cluster:/_ilm/policy/llmid-retention" in es.stdout
    assert f"POST dashboards:/api/alerting/rule/{kibana_rule_id(0.8)}" in es.stdout
    assert '"index.lifecycle.name"' in es.stdout or '"lifecycle": {' in es.stdout


SAMPLES = {
    "HDFS": "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_3886 terminating",
    "Hadoop": "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster",
    "Spark": "17/06/09 20:10:40 INFO executor.CoarseGrainedExecutorBackend: Registered signal handlers for [TERM]",
    "Zookeeper": "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - "
                 "Notification time out: 3200",
    "BGL": "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL "
           "INFO instruction cache parity error corrected",
    "Windows": "2016-09-28 04:30:30, Info                  CBS    Loaded Servicing Stack v6.1.7601.23505",
    "OpenStack": "nova-api.log.1.2017-05-16_13:53:08 2017-05-16 00:00:00.008 25746 INFO nova.osapi_compute.wsgi."
                 "server [req-38101a0b - - -] 10.11.10.1 \"GET /v2/servers/detail HTTP/1.1\" status: 200",
    "Thunderbird": "- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: session closed "
                   "for user root",
    "Apache": "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/httpd/conf/workers2.properties",
    "HPC": "134681 node-246 unix.hw state_change.unavailable 1077804742 1 Component State Change: Component",
}


def test_preset_pipelines_parse_like_the_python_reader() -> None:
    """Each preset's ingest pipeline, run by the node's _simulate API, gives the content, level, service, host and
    timestamp the Python reader gives for the same line."""
    base = node_url()
    defs = pipelines("llmid-")
    for name, line in SAMPLES.items():
        status, out = http("POST", f"{base}/_ingest/pipeline/_simulate",
                           {"pipeline": defs[f"llmid-parse-{name.lower()}"], "docs": [{"_source": {"message": line}}]})
        assert status == 200, (name, out)
        src = out["docs"][0]["doc"]["_source"]
        py = loghub_format(name).parse_line(line)
        assert py is not None, name
        assert src["llmid"]["content"] == py.content and src["llmid"]["format"] == name, name
        assert (src.get("log") or {}).get("level") == py.level, name
        assert (src.get("service") or {}).get("name") == py.service, name
        assert (src.get("host") or {}).get("name") == py.host, name
        assert "error" not in src, (name, src.get("error"))
        if py.timestamp is not None:
            ts = datetime.fromisoformat(src["@timestamp"].replace("Z", "+00:00")).timestamp()
            assert abs(ts - py.timestamp) < 0.001, (name, src["@timestamp"], datetime.fromtimestamp(py.timestamp, UTC))
    status, out = http("POST", f"{base}/_ingest/pipeline/_simulate", {"pipeline": defs["llmid-parse"], "docs": [
        {"_source": {"message": "2024-01-02T03:04:05.123Z [error] db.pool: connection refused"}},
        {"_source": {"message": "binary junk \u0001 without header"}}]})
    first, second = (d["doc"]["_source"] for d in out["docs"])
    assert first["@timestamp"] == "2024-01-02T03:04:05.123Z" and first["log"]["level"] == "ERROR"
    assert first["service"]["name"] == "db.pool" and first["llmid"]["content"] == "connection refused"
    assert second["llmid"]["content"] == "binary junk \u0001 without header" and "@timestamp" not in second


# ---------------------------------------------------------------- the Dashboards / Kibana stand-in


class FakeDashboards(BaseHTTPRequestHandler):
    objects: dict[str, dict[str, Any]] = {}
    rules: dict[str, dict[str, Any]] = {}
    calls: list[str] = []
    xsrf = "osd-xsrf"

    def _send(self, code: int, body: Any) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _handle(self) -> None:
        FakeDashboards.calls.append(f"{self.command} {self.path}")
        if self.command != "GET" and self.headers.get(FakeDashboards.xsrf) != "true":
            return self._send(400, {"message": f"Request must contain a {FakeDashboards.xsrf} header."})
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts[:3] == ["api", "saved_objects", "_import"]:
            msg = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + raw)
            part = next(p for p in msg.iter_parts() if p.get_param("name", header="content-disposition") == "file")
            lines = part.get_payload(decode=True).decode().splitlines()
            for line in lines:
                obj = json.loads(line)
                FakeDashboards.objects[f"{obj['type']}/{obj['id']}"] = obj
            return self._send(200, {"success": True, "successCount": len(lines)})
        if parts[:2] == ["api", "saved_objects"] and len(parts) == 4:
            key = f"{parts[2]}/{parts[3]}"
            if self.command == "GET":
                obj = FakeDashboards.objects.get(key)
                return self._send(200, obj) if obj else self._send(404, {"message": "Not Found"})
            if self.command == "DELETE":
                return self._send(200, {}) if FakeDashboards.objects.pop(key, None) else self._send(404, {})
        if parts[:3] == ["api", "alerting", "rule"] and len(parts) == 4:
            rid = parts[3]
            if self.command == "GET":
                r = FakeDashboards.rules.get(rid)
                return self._send(200, r) if r else self._send(404, {"message": "Not Found"})
            if self.command in ("POST", "PUT"):
                body = json.loads(raw)
                if self.command == "POST" and rid in FakeDashboards.rules:
                    return self._send(409, {"message": "exists"})
                if self.command == "PUT":
                    body = {**FakeDashboards.rules[rid], **body}
                FakeDashboards.rules[rid] = body
                return self._send(200, {"id": rid, **body})
            if self.command == "DELETE":
                return self._send(204, {}) if FakeDashboards.rules.pop(rid, None) else self._send(404, {})
        return self._send(404, {"message": "unknown API"})

    do_GET = do_POST = do_PUT = do_DELETE = _handle  # noqa: N815 - http.server API

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def dashboards() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeDashboards)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    FakeDashboards.objects, FakeDashboards.rules, FakeDashboards.calls = {}, {}, []
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_install_twice_with_dashboards_then_uninstall(dashboards: str) -> None:
    base = node_url()
    p = fresh_prefix("i")
    FakeDashboards.xsrf = "osd-xsrf"
    try:
        first = llmid("install", "--url", base, "--prefix", p, "--dashboards-url", dashboards, "--json")
        assert first.returncode == 0, first.stderr
        done = json.loads(first.stdout)
        saved = [o for o in done if o["kind"].startswith("saved ")]
        assert len(saved) == 6 + len(specs.CLUSTER_DASHBOARD) and {o["result"] for o in saved} == {"created"}
        assert f"dashboard/{'llmid-overview'}" in FakeDashboards.objects
        vis = FakeDashboards.objects["visualization/llmid-vis-anomaly-heatmap"]
        spec = json.loads(json.loads(vis["attributes"]["visState"])["params"]["spec"])
        assert spec["data"]["url"]["index"] == f"{p}logs-*"  # the panels read this prefix's indices

        FakeDashboards.calls = []
        second = llmid("install", "--url", base, "--prefix", p, "--dashboards-url", dashboards, "--json")
        assert {o["result"] for o in json.loads(second.stdout)} <= {"unchanged", "skipped"}
        assert not [c for c in FakeDashboards.calls if not c.startswith("GET")]  # no write the second time

        # a changed object (someone edited it) is updated, the rest stays
        FakeDashboards.objects["search/llmid-annotated-logs"]["attributes"]["description"] = "edited"
        third = json.loads(llmid("install", "--url", base, "--prefix", p, "--dashboards-url", dashboards,
                                 "--json").stdout)
        assert [o["name"] for o in third if o["result"] == "updated"] == ["llmid-annotated-logs"]

        gone = llmid("uninstall", "--url", base, "--prefix", p, "--dashboards-url", dashboards, "--json")
        assert gone.returncode == 0, gone.stderr
        assert FakeDashboards.objects == {}
        assert http("GET", f"{base}/_component_template/{p}logs-mappings")[0] == 404
        again = json.loads(llmid("uninstall", "--url", base, "--prefix", p, "--json").stdout)
        assert {o["result"] for o in again} <= {"absent", "skipped"}
    finally:
        drop_prefix(base, p)


def test_kibana_saved_objects_and_rule_through_the_kibana_api(dashboards: str) -> None:
    """The Elasticsearch flavour of the dashboards side: Kibana saved objects and the Elasticsearch-query rule
    (created with a fixed id, updated in place, deleted), idempotent."""
    FakeDashboards.xsrf = "kbn-xsrf"
    inst = Installer("elasticsearch", "llmid-", dashboards=Dashboards(dashboards, "kibana"), channel_id="conn-1")
    first = inst.install(targets=("dashboards",))
    assert {o.result for o in first} == {"created"}
    rule = FakeDashboards.rules[kibana_rule_id(0.8)]
    assert rule["rule_type_id"] == ".es-query" and rule["actions"][0]["id"] == "conn-1"
    assert all(o.get("coreMigrationVersion") for o in FakeDashboards.objects.values())
    assert {o.result for o in inst.install(targets=("dashboards",))} == {"unchanged"}
    changed = Installer("elasticsearch", "llmid-", dashboards=Dashboards(dashboards, "kibana"), threshold=0.8,
                        channel_id="conn-2")
    assert [o.kind for o in changed.install(targets=("dashboards",)) if o.result == "updated"] == ["Kibana alert rule"]
    assert FakeDashboards.rules[kibana_rule_id(0.8)]["actions"][0]["id"] == "conn-2"
    assert {o.result for o in changed.uninstall(targets=("dashboards",))} == {"deleted"}
    assert FakeDashboards.rules == {} and FakeDashboards.objects == {}


def test_dashboards_errors_are_one_sentence(dashboards: str) -> None:
    FakeDashboards.xsrf = "kbn-xsrf"  # an OSD client sends osd-xsrf: the stand-in refuses like Kibana would
    inst = Installer("opensearch", "llmid-", dashboards=Dashboards(dashboards, "osd"))
    with pytest.raises(Exception) as err:
        inst.install(targets=("dashboards",))
    assert "answered 400" in str(err.value) and "kbn-xsrf" in str(err.value)
    down = Installer("opensearch", "llmid-", dashboards=Dashboards("http://127.0.0.1:9", "osd"))
    with pytest.raises(Exception, match="Cannot reach OpenSearch Dashboards at http://127.0.0.1:9"):
        down.install(targets=("dashboards",))


def test_retention_policies_as_documents() -> None:
    """ISM and ILM cannot run on the test node (no ISM plugin; ILM is Elasticsearch's): their documents are
    checked here, and install reports them as skipped there."""
    from llmid.store import index_templates as it

    ism = it.ism_policy("llmid-", 14)["policy"]
    states = {s["name"]: s for s in ism["states"]}
    assert ism["default_state"] == "hot" and set(states) == {"hot", "warm", "delete"}
    assert states["warm"]["transitions"][0]["conditions"]["min_index_age"] == "14d"
    assert states["delete"]["actions"] == [{"delete": {}}]
    assert ism["ism_template"][0]["index_patterns"] == ["llmid-logs-*"]
    ilm = it.ilm_policy(14)["policy"]["phases"]
    assert ilm["delete"] == {"min_age": "14d", "actions": {"delete": {}}} and "readonly" in ilm["warm"]["actions"]
    es_logs = it.component_templates("llmid-", "elasticsearch")["llmid-logs-settings"]["template"]["settings"]
    assert es_logs["index"]["lifecycle"] == {"name": "llmid-retention"}
    os_logs = it.component_templates("llmid-", "opensearch")["llmid-logs-settings"]["template"]["settings"]
    assert "lifecycle" not in os_logs["index"]
