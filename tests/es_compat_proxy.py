"""A loopback HTTP proxy that lets the official Elasticsearch client talk to the OpenSearch test node, so the
Elasticsearch store (llmid/store/elasticsearch.py: the elasticsearch-py transport, its headers, errors and bulk
encoding, over the shared cluster code) runs the Store contract against a real search engine.

It is a stand-in, not an Elasticsearch: it rewrites the client's `application/vnd.elasticsearch+json;
compatible-with=8` media types to plain JSON / NDJSON, adds the `X-Elastic-Product: Elasticsearch` header the
client checks, hides OpenSearch's `distribution` in `GET /`, and drops `index.lifecycle.name` (ILM) from
component templates. APIs that differ between the engines (point in
time, ILM, Kibana) are not exercised through it. Not a test module.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def start(target: str) -> tuple[str, ThreadingHTTPServer]:
    """Serve on a free loopback port; returns (http://127.0.0.1:PORT, server)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            ctype = self.headers.get("Content-Type", "")
            if body and self.path.startswith("/_component_template/"):
                doc = json.loads(body)  # OpenSearch has no ILM: drop the template's index.lifecycle setting
                (((doc.get("template") or {}).get("settings") or {}).get("index") or {}).pop("lifecycle", None)
                body = json.dumps(doc).encode()
            headers = {}
            if body is not None:
                headers["Content-Type"] = "application/x-ndjson" if "ndjson" in ctype else "application/json"
            req = urllib.request.Request(target + self.path, data=body, method=self.command, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    status, raw = r.status, r.read()
            except urllib.error.HTTPError as e:
                status, raw = e.code, e.read()
            if self.path == "/" and self.command == "GET" and status == 200:
                info: dict[str, Any] = json.loads(raw)
                info["version"].pop("distribution", None)
                info["version"]["number"] = "8.15.0"
                info["tagline"] = "You Know, for Search"
                raw = json.dumps(info).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.elasticsearch+json;compatible-with=8")
            self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward  # noqa: N815 - http.server API

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{srv.server_address[1]}", srv
