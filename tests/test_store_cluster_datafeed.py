"""The index datafeed on a real OpenSearch node: an existing index of raw lines (as shippers write it) is read with
a point in time + search_after, analysed, written to the store and annotated in place; a crash part-way and a
restart resume from the checkpoint with no gap and no duplicate, also when many documents share one timestamp
across page and checkpoint boundaries; new documents are picked up by the next round."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opensearch_node import drop_prefix, fresh_prefix, http, node_url

from llmid.config import Settings
from llmid.documents import iso
from llmid.errors import ConfigError, StoreError
from llmid.ingest_pipelines.datafeed import checkpoint_key
from llmid.plugin.datafeed import Datafeed
from llmid.store import open_store
from llmid.store.base import SearchQuery

T0 = 1_700_000_000.0
LINES = ["user {} logged in from 10.0.0.{}", "disk /dev/sd{} is {}% full", "request {} took {} ms",
         "connection to db-{} refused after {} retries"]


def source_docs(start: int, n: int) -> list[dict[str, Any]]:
    """Raw documents as a shipper writes them; three share each timestamp (ties across page boundaries)."""
    docs = []
    for i in range(start, start + n):
        text = LINES[i % 4].format(i % 7, i % 97)
        level = "ERROR" if i % 4 == 3 else "INFO"
        docs.append({"@timestamp": iso(T0 + i // 3), "message": f"{level} {text}", "log": {"level": level},
                     "service": {"name": ("api", "db")[i % 2]}})
    return docs


def index_docs(base: str, index: str, docs: list[dict[str, Any]], first_id: int) -> None:
    lines = []
    for k, d in enumerate(docs):
        lines.append(json.dumps({"index": {"_index": index, "_id": f"d{first_id + k}"}}))
        lines.append(json.dumps(d))
    status, res = http("POST", f"{base}/_bulk?refresh=true", ("\n".join(lines) + "\n").encode())
    assert status == 200 and not res["errors"]


@pytest.fixture()
def feed_env() -> Iterator[dict[str, Any]]:
    base = node_url()
    p = fresh_prefix("f")
    src = f"raw{p}logs-app"
    http("PUT", f"{base}/{src}", {"mappings": {"properties": {"@timestamp": {"type": "date"},
                                                              "message": {"type": "text"}}}})
    yield {"base": base, "prefix": p, "src": src, "url": f"opensearch+{base}/?prefix={p}"}
    drop_prefix(base, p)
    http("DELETE", f"{base}/{src}")


def settings(url: str) -> Settings:
    return Settings(store=url, reasoner="baseline", window_seconds=60, quiet=True)  # type: ignore[call-arg]


def annotated(base: str, src: str) -> int:
    http("POST", f"{base}/{src}/_refresh")
    status, res = http("POST", f"{base}/{src}/_count", {"query": {"exists": {"field": "llmid.template_id"}}})
    return int(res["count"])


def test_feed_crash_resume_without_gaps_or_duplicates(feed_env: dict[str, Any]) -> None:
    base, src, url = feed_env["base"], feed_env["src"], feed_env["url"]
    index_docs(base, src, source_docs(0, 900), 0)

    # first run: crashes on its 4th store write, after some checkpoints
    store = open_store(url)
    feed = Datafeed(store, src, settings(url), page=100, checkpoint_pages=2)
    writes = {"n": 0}
    real = store.write

    def flaky(batch: Any) -> None:
        writes["n"] += 1
        if writes["n"] == 4:
            raise StoreError("simulated crash")
        real(batch)

    store.write = flaky  # type: ignore[method-assign]
    with pytest.raises(StoreError, match="simulated crash"):
        feed.run()
    store.close()
    with open_store(url) as st:
        ck = st.load_state(checkpoint_key(src))
        assert ck is not None and 0 < ck["lines"] < 900  # part-way

    # restart: resumes from the checkpoint
    with open_store(url) as st:
        summary = Datafeed(st, src, settings(url), page=100, checkpoint_pages=2).run()
        assert summary.records == 900 - ck["lines"]
    with open_store(url) as st:
        stats = st.stats()
        assert stats["records"] == 900  # no gap, no duplicate
        assert st.load_state(checkpoint_key(src))["lines"] == 900
        hits = st.search(SearchQuery(limit=1000)).hits
        assert len({h["_id"] for h in hits}) == 900
        assert sum(1 for h in hits if h["llmid"]["template_id"]) == 900
        assert st.search(SearchQuery(level="error")).total == 225
    assert annotated(base, src) == 900  # the annotations are on the source documents too

    # new documents (some with the checkpoint's own timestamp) are read by the next round, once
    index_docs(base, src, source_docs(897, 63), 900)  # the first 3 at the checkpoint's own timestamp
    p = subprocess.run([sys.executable, "-m", "llmid", "datafeed", "--source-index", src, "--store", url, "--json"],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "LLMID_REASONER": "baseline"})
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["records"] == 63
    with open_store(url) as st:
        assert st.stats()["records"] == 963
    assert annotated(base, src) == 963
    again = subprocess.run([sys.executable, "-m", "llmid", "datafeed", "--source-index", src, "--store", url,
                            "--json"], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "LLMID_REASONER": "baseline"})
    assert json.loads(again.stdout)["records"] == 0


def test_feed_needs_a_cluster_store_and_a_foreign_index(tmp_path: Any, feed_env: dict[str, Any]) -> None:
    with open_store(f"sqlite:///{tmp_path}/x.db") as st, pytest.raises(ConfigError, match="cluster"):
        Datafeed(st, "logs-*", Settings())
    with open_store(feed_env["url"]) as st, pytest.raises(ConfigError, match="one of LLM-ID's own"):
        Datafeed(st, f"{feed_env['prefix']}logs-*", Settings())
