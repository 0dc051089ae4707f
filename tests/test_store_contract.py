"""Every case of tests/store_contract.py on every backend: the embedded SQLite store, a real OpenSearch node
(tests/opensearch/start-node, started once per session by tests/opensearch_node.py), and the Elasticsearch store
(the official elasticsearch client) over that same node through tests/es_compat_proxy.py — a header-translating
stand-in, since no Elasticsearch node runs here: it checks the client wiring and the shared REST code, not
Elasticsearch itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import es_compat_proxy
import pytest
from opensearch_node import drop_prefix, fresh_prefix, http, node_url
from store_contract import *  # noqa: F403 - the contract's test_* functions run here, once per backend

from llmid.store import open_store
from llmid.store.base import Store

BACKENDS = ["sqlite", "opensearch", "elasticsearch-client"]


@pytest.fixture(scope="module")
def cluster_prefix() -> Iterator[tuple[str, str]]:
    """One prefix for the module: its templates are installed once; each test starts with no indices."""
    base = node_url()
    prefix = fresh_prefix("c")
    yield base, prefix
    drop_prefix(base, prefix)


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/s.db"
        return
    base, prefix = request.getfixturevalue("cluster_prefix")
    if request.param == "opensearch":
        yield f"opensearch+{base}/?prefix={prefix}"
    else:
        yield f"elasticsearch+{request.getfixturevalue('es_proxy')}/?prefix=es{prefix}"
    http("DELETE", f"{base}/{prefix}*,es{prefix}*?expand_wildcards=all")


@pytest.fixture(scope="module")
def es_proxy(cluster_prefix: tuple[str, str]) -> Iterator[str]:
    url, srv = es_compat_proxy.start(cluster_prefix[0])
    yield url
    srv.shutdown()
    drop_prefix(cluster_prefix[0], f"es{cluster_prefix[1]}")


@pytest.fixture()
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture()
def reopen(store_url: str) -> Reopen:  # noqa: F405
    return lambda: open_store(store_url)
