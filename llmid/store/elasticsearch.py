"""The Elasticsearch store: the official elasticsearch client (8.x, which also talks to 9.x clusters) under the
shared cluster store (llmid/store/cluster.py), plus Elasticsearch's own point-in-time API.
`elasticsearch+http(s)://HOST:PORT`; credentials and TLS as cluster.py says."""

from __future__ import annotations

from typing import Any

from llmid.errors import StoreError
from llmid.store.cluster import ClusterHTTPError, ClusterOptions, ClusterStore, ClusterUnreachable, Transport

_JSON = "application/vnd.elasticsearch+json; compatible-with=8"
_NDJSON = "application/vnd.elasticsearch+x-ndjson; compatible-with=8"


class ElasticsearchTransport(Transport):
    """Requests through the elasticsearch client (its retries off: the store retries with backoff)."""

    def __init__(self, opts: ClusterOptions) -> None:
        try:
            from elasticsearch import Elasticsearch
        except ImportError:
            raise StoreError("The Elasticsearch store needs the elasticsearch client: "
                             "pip install 'llmid[elasticsearch]'.") from None
        kw: dict[str, Any] = {"request_timeout": opts.timeout_s, "max_retries": 0, "retry_on_timeout": False,
                              "verify_certs": opts.verify_certs}
        if opts.api_key:
            kw["api_key"] = opts.api_key
        elif opts.username is not None:
            kw["basic_auth"] = (opts.username, opts.password or "")
        if opts.ca_certs:
            kw["ca_certs"] = opts.ca_certs
        if opts.client_cert:
            kw["client_cert"] = opts.client_cert
        if opts.client_key:
            kw["client_key"] = opts.client_key
        if not opts.verify_certs:
            kw["ssl_show_warn"] = False
        self.client = Elasticsearch(opts.hosts, **kw)

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                ndjson: bool = False) -> Any:
        import elastic_transport
        from elasticsearch import ApiError, UnsupportedProductError

        headers = {"accept": _JSON}
        if body is not None:
            headers["content-type"] = _NDJSON if ndjson else _JSON
        if isinstance(body, str):
            body = body.encode("utf-8")
        try:
            res = self.client.perform_request(method, path, params=params, headers=headers, body=body)
        except UnsupportedProductError as err:
            raise ClusterHTTPError(400, {"error": {"type": "unsupported_product", "reason": str(err)}}) from None
        except ApiError as err:
            raise ClusterHTTPError(int(err.meta.status), err.body) from None
        except elastic_transport.TransportError as err:  # connection refused, timeout, TLS
            raise ClusterUnreachable(str(err.message if hasattr(err, "message") else err)) from None
        return res.body

    def close(self) -> None:
        self.client.close()


class ElasticsearchStore(ClusterStore):
    """A Store on Elasticsearch (8.x and 9.x)."""

    engine_name = "Elasticsearch"

    @classmethod
    def from_url(cls, url: str) -> ElasticsearchStore:
        opts = ClusterOptions.from_url(url)
        return cls(opts, ElasticsearchTransport(opts))

    def _check_engine(self, info: Any) -> None:
        version = (info or {}).get("version") or {}
        if version.get("distribution") == "opensearch":
            raise StoreError(f"{self.url} is an OpenSearch cluster, not Elasticsearch; use "
                             f"opensearch+{self.options.hosts[0]}.")

    def open_pit(self, index: str, keep_alive: str = "2m") -> str:
        res = self._call("POST", f"/{index}/_pit", params={"keep_alive": keep_alive},
                         action="open a point in time in")
        return str(res["id"])

    def close_pit(self, pit_id: str) -> None:
        try:
            self._call("DELETE", "/_pit", body={"id": pit_id}, action="close a point in time in", ok=(404,))
        except StoreError:
            pass  # it expires by itself
