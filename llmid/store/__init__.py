"""Stores for LLM-ID documents; `open_store(url)` picks the backend from the URL's scheme."""

from __future__ import annotations

from llmid.errors import ConfigError
from llmid.store.base import Batch, Page, SearchQuery, Store

__all__ = ["Batch", "Page", "SearchQuery", "Store", "open_store"]


def open_store(url: str) -> Store:
    """`sqlite:///PATH` (embedded), `opensearch+http(s)://...`, `elasticsearch+http(s)://...`."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        from llmid.store.sqlite import SQLiteStore

        return SQLiteStore.from_url(url)
    if scheme.split("+")[0] == "opensearch":
        from llmid.store.opensearch import OpenSearchStore

        return OpenSearchStore.from_url(url)
    if scheme.split("+")[0] == "elasticsearch":
        from llmid.store.elasticsearch import ElasticsearchStore

        return ElasticsearchStore.from_url(url)
    raise ConfigError(
        f"Unknown store URL {url.split('@')[-1]!r}: expected sqlite:///PATH, opensearch+http(s)://HOST:PORT "
        "or elasticsearch+http(s)://HOST:PORT."
    )
