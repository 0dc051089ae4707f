"""The OpenSearch store: opensearch-py's transport under the shared cluster store (llmid/store/cluster.py), plus
OpenSearch's own point-in-time API. `opensearch+http(s)://HOST:PORT`; credentials and TLS as cluster.py says."""

from __future__ import annotations

import logging
from typing import Any

from llmid.errors import StoreError
from llmid.store.cluster import ClusterHTTPError, ClusterOptions, ClusterStore, ClusterUnreachable, Transport


def _client_kwargs(opts: ClusterOptions) -> dict[str, Any]:
    kw: dict[str, Any] = {"hosts": opts.hosts, "timeout": opts.timeout_s, "max_retries": 0,
                          "retry_on_timeout": False, "verify_certs": opts.verify_certs, "ssl_show_warn": False}
    if opts.api_key:
        kw["headers"] = {"Authorization": f"ApiKey {opts.api_key}"}
    elif opts.username is not None:
        kw["http_auth"] = (opts.username, opts.password or "")
    if opts.ca_certs:
        kw["ca_certs"] = opts.ca_certs
    if opts.client_cert:
        kw["client_cert"] = opts.client_cert
    if opts.client_key:
        kw["client_key"] = opts.client_key
    return kw


class OpenSearchTransport(Transport):
    """Requests through opensearch-py (its own retries off: the store retries with backoff)."""

    def __init__(self, opts: ClusterOptions) -> None:
        try:
            from opensearchpy import OpenSearch
        except ImportError:
            raise StoreError("The OpenSearch store needs opensearch-py: pip install 'llmid[opensearch]'.") from None
        self.client = OpenSearch(**_client_kwargs(opts))
        # The client logs every error answer as a warning; the store reports them itself, in one sentence.
        logging.getLogger("opensearch").setLevel(logging.CRITICAL)

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                ndjson: bool = False) -> Any:
        from opensearchpy import exceptions as ex

        headers = {"content-type": "application/x-ndjson"} if ndjson else None
        try:
            return self.client.transport.perform_request(method, path, params=params, body=body, headers=headers)
        except ex.ConnectionError as err:  # includes timeouts and TLS failures
            raise ClusterUnreachable(_reason(err)) from None
        except ex.TransportError as err:
            status = err.status_code if isinstance(err.status_code, int) else 0
            if status == 0:
                raise ClusterUnreachable(_reason(err)) from None
            raise ClusterHTTPError(status, err.info if err.info is not None else err.error) from None

    def close(self) -> None:
        self.client.close()


def _reason(err: Exception) -> str:
    info = getattr(err, "info", None)
    cause = getattr(info, "__class__", type(None)).__name__ if info is not None else ""
    text = str(info if info is not None else err)
    for marker in ("Connection refused", "Name or service not known", "timed out", "CERTIFICATE_VERIFY_FAILED",
                   "Connection reset"):
        if marker in text:
            return marker.lower() if marker != "CERTIFICATE_VERIFY_FAILED" else "TLS certificate not trusted"
    return f"{cause or type(err).__name__}: {text}"[:200]


class OpenSearchStore(ClusterStore):
    """A Store on OpenSearch (2.x; 1.3 works for everything but point-in-time datafeeds)."""

    engine_name = "OpenSearch"

    @classmethod
    def from_url(cls, url: str) -> OpenSearchStore:
        opts = ClusterOptions.from_url(url)
        return cls(opts, OpenSearchTransport(opts))

    def _check_engine(self, info: Any) -> None:
        version = (info or {}).get("version") or {}
        if version.get("distribution") != "opensearch":
            raise StoreError(f"{self.url} is not an OpenSearch cluster (it answers as Elasticsearch "
                             f"{version.get('number', '?')}); use elasticsearch+{self.options.hosts[0]}.")

    def open_pit(self, index: str, keep_alive: str = "2m") -> str:
        res = self._call("POST", f"/{index}/_search/point_in_time", params={"keep_alive": keep_alive},
                         action="open a point in time in")
        return str(res["pit_id"])

    def pit_tiebreak(self) -> list[dict[str, Any]]:
        """OpenSearch adds no tiebreaker to a PIT search (Elasticsearch adds _shard_doc): sort ties by _id, which
        is unique per index and the same in every PIT, so a resumed feed skips nothing."""
        return [{"_id": {"order": "asc"}}]

    def close_pit(self, pit_id: str) -> None:
        try:
            self._call("DELETE", "/_search/point_in_time", body={"pit_id": [pit_id]}, action="close a point in time in",
                       ok=(404,))
        except StoreError:
            pass  # it expires by itself
