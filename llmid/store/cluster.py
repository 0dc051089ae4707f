"""The store on an OpenSearch or Elasticsearch cluster: everything the two engines share (they speak nearly the
same REST). `opensearch.py` and `elasticsearch.py` only wrap their client library and the few APIs that differ
(point in time, lifecycle policies, alerting).

Behaviour that matters to users:

- **Credentials never in the command line.** User, password and API key come from `LLMID_STORE_USERNAME` /
  `LLMID_STORE_PASSWORD` / `LLMID_STORE_API_KEY`, or from a file named by `LLMID_STORE_CREDENTIALS`
  (`username=`, `password=`, `api_key=` lines); TLS from `LLMID_STORE_CA_CERTS`, `LLMID_STORE_CLIENT_CERT`,
  `LLMID_STORE_CLIENT_KEY`, `LLMID_STORE_VERIFY_CERTS` (or the URL's query: `?ca_certs=PATH`). A password in the
  URL still works (DESIGN.md allows it) but is never shown: `store.url` is redacted.
- **Writes**: one `_bulk` per batch (split by size), deterministic ids, so re-running overwrites. Requests answered
  429/502/503/504, and connection failures, are retried with exponential backoff and jitter; bulk items rejected
  with 429 are retried alone. Items the cluster rejects for good (a mapping conflict...) are kept in
  `llmid-rejected` with the reason, and the write raises one sentence: nothing is silently lost.
- **Refresh only when asked**: bulk writes never force a refresh (unless `?refresh=true|wait_for`). Reads by the
  same store object refresh the indices it wrote first (read-your-writes), and `close()` refreshes them once, so
  `llmid analyze` followed by `llmid stats` agree without a refresh per request.
- **Order of a batch's writes**: records, then templates (with their counts), incidents, recommendations, and the
  engine state last: a crash mid-batch leaves the old state, so the re-run rewrites the same ids.
- Template `count`s move by scripted increments computed from each record's previous template (a realtime
  `mget`), so they stay exact across re-writes and refinements without scanning the logs; `recount()` rebuilds
  them from an aggregation (maintenance).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from llmid.documents import RECOMMENDATION_STATUSES, Batch, LogRecord, iso
from llmid.errors import StoreError
from llmid.store import index_templates as it
from llmid.store.base import AGG_FIELDS, Page, SearchQuery, Store, nice_interval

RETRY_STATUSES = frozenset({429, 502, 503, 504})
BULK_MAX_BYTES = 8 * 1024 * 1024
"""A bulk request is split above this size (clusters refuse bodies over http.max_content_length, 100 MB)."""
MAX_LIMIT = 10_000
UNDATED = "undated"
NULL_KEY = "__llmid_null__"
"""Placeholder for a missing value in terms aggregations (SQLite groups NULL too)."""

FIELDS = {"level": "log.level", "service": "service.name", "host": "host.name",
          "template_id": "llmid.template_id", "incident_id": "llmid.incident_id"}
"""AGG_FIELDS → the mapped keyword field of the logs."""

_TEMPLATE_SCRIPT = ("def c = ctx._source.count; ctx._source.clear(); ctx._source.putAll(params.doc); "
                    "ctx._source.count = c == null ? 0 : c;")
"""Upsert a template document but keep its stored count (the count follows the records, not the engine)."""
_COUNT_SCRIPT = "ctx._source.count = (ctx._source.count == null ? 0 : ctx._source.count) + params.d;"
_RECOMMENDATION_SCRIPT = (
    "def s = ctx._source.status; def o = ctx._source.outcome; ctx._source.clear(); "
    "ctx._source.putAll(params.doc); "
    "if (s != null && s != 'proposed' && params.doc.status == 'proposed') { ctx._source.status = s; "
    "if (ctx._source.outcome == null) { ctx._source.outcome = o; } }"
)
"""Upsert a recommendation; a status a person already set survives the engine re-proposing it."""


class ClusterHTTPError(Exception):
    """An HTTP error answer of the cluster (status >= 400), with its decoded body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body

    @property
    def reason(self) -> str:
        return error_reason(self.body) or f"HTTP {self.status}"


class ClusterUnreachable(Exception):
    """No HTTP answer at all (refused, reset, DNS, TLS handshake, timeout)."""


def error_reason(body: Any) -> str:
    """`type: reason` of an OpenSearch/Elasticsearch error body, in one line."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            cause = (err.get("root_cause") or [err])[0]
            text = f"{cause.get('type', 'error')}: {cause.get('reason', '')}".strip().rstrip(":")
            return " ".join(text.split())[:300]
        if err:
            return " ".join(str(err).split())[:300]
    if isinstance(body, str | bytes):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return " ".join(text.split())[:300]
    return ""


class Transport:
    """One HTTP request to the cluster: the part each client library implements (opensearch-py, elasticsearch)."""

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                ndjson: bool = False) -> Any:
        """The decoded response body; raises ClusterHTTPError or ClusterUnreachable."""
        raise NotImplementedError

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""


# ---------------------------------------------------------------------------------------------- configuration
@dataclass(slots=True)
class ClusterOptions:
    """Everything needed to reach a cluster; `from_url` reads the URL, the environment and a credentials file."""

    engine: str
    hosts: list[str]
    username: str | None = None
    password: str | None = None
    api_key: str | None = None
    ca_certs: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    verify_certs: bool = True
    prefix: str = it.DEFAULT_PREFIX
    refresh: str | None = None
    """Per-bulk refresh: None (never; reads refresh what this store wrote), "true" or "wait_for"."""
    retries: int = 6
    backoff_s: float = 0.25
    max_backoff_s: float = 8.0
    timeout_s: float = 30.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def display_url(self) -> str:
        """The URL without credentials (safe to print)."""
        return f"{self.engine}+{self.hosts[0]}" + (f" (+{len(self.hosts) - 1} hosts)" if len(self.hosts) > 1 else "")

    @classmethod
    def from_url(cls, url: str, env: dict[str, str] | None = None) -> ClusterOptions:
        """`opensearch+https://HOST:PORT[,HOST2:PORT]/?prefix=llmid-&ca_certs=/ca.pem&refresh=wait_for`."""
        env = dict(os.environ if env is None else env)
        scheme, _, rest = url.partition("://")
        engine, _, proto = scheme.lower().partition("+")
        proto = proto or "http"
        if engine not in ("opensearch", "elasticsearch") or proto not in ("http", "https") or not rest:
            raise StoreError(f"Invalid cluster store URL {_redact(url)!r}: expected {engine or 'opensearch'}"
                             "+http(s)://HOST:PORT.")
        parts = urlsplit(f"{proto}://{rest}")
        netloc = parts.netloc
        user = password = None
        if "@" in netloc:
            cred, _, netloc = netloc.rpartition("@")
            user, _, pw = cred.partition(":")
            user, password = unquote(user) or None, unquote(pw) or None
        hosts = [f"{proto}://{h}" for h in netloc.split(",") if h]
        if not hosts:
            raise StoreError(f"Invalid cluster store URL {_redact(url)!r}: no host.")
        query = dict(parse_qsl(parts.query))
        opts = cls(engine=engine, hosts=hosts, username=user, password=password)
        creds = _credentials_file(env.get("LLMID_STORE_CREDENTIALS"))
        opts.username = env.get("LLMID_STORE_USERNAME") or creds.get("username") or opts.username
        opts.password = env.get("LLMID_STORE_PASSWORD") or creds.get("password") or opts.password
        opts.api_key = env.get("LLMID_STORE_API_KEY") or creds.get("api_key")
        for name in ("ca_certs", "client_cert", "client_key"):
            value = query.pop(name, None) or env.get(f"LLMID_STORE_{name.upper()}")
            if value:
                if not os.path.isfile(value):
                    raise StoreError(f"The TLS file {value} ({name}) does not exist.")
                setattr(opts, name, value)
        verify = query.pop("verify_certs", None) or env.get("LLMID_STORE_VERIFY_CERTS")
        if verify is not None:
            opts.verify_certs = verify.strip().lower() not in ("0", "false", "no", "off")
        opts.prefix = query.pop("prefix", None) or env.get("LLMID_STORE_PREFIX") or it.DEFAULT_PREFIX
        refresh = query.pop("refresh", None)
        if refresh is not None:
            if refresh not in ("true", "false", "wait_for"):
                raise StoreError(f"Invalid refresh={refresh!r} in the store URL: expected true, false or wait_for.")
            opts.refresh = None if refresh == "false" else refresh
        for name, conv in (("retries", int), ("timeout_s", float), ("backoff_s", float)):
            raw = query.pop(name, None)
            if raw is not None:
                try:
                    setattr(opts, name, conv(raw))
                except ValueError:
                    raise StoreError(f"Invalid {name}={raw!r} in the store URL.") from None
        opts.extra = query
        return opts


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest.split("/", 1)[0]:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


def _credentials_file(path: str | None) -> dict[str, str]:
    """`key=value` lines (username, password, api_key); # comments allowed."""
    if not path:
        return {}
    try:
        text = open(path, encoding="utf-8").read()  # noqa: SIM115 - small file
    except OSError as err:
        raise StoreError(f"Cannot read the credentials file {path}: {err.strerror or err}.") from None
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, _, v = line.partition("=")
            out[k.strip().lower()] = v.strip()
    return out


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def partition(ts: float | None) -> str:
    """The daily partition of a record's timestamp (UTC), e.g. 2024.01.31."""
    if ts is None:
        return UNDATED
    return datetime.fromtimestamp(ts, UTC).strftime("%Y.%m.%d")


# -------------------------------------------------------------------------------------------------- the store
class ClusterStore(Store):
    """A Store on an OpenSearch or Elasticsearch cluster (see the module docstring)."""

    engine_name = "cluster"
    """"OpenSearch" or "Elasticsearch", for messages."""

    def __init__(self, options: ClusterOptions, transport: Transport, *, ensure: bool = True) -> None:
        self.options = options
        self.url = options.display_url
        self.engine = options.engine
        self.prefix = options.prefix
        self._t = transport
        self._lock = threading.RLock()
        self._dirty: set[str] = set()
        self._closed = False
        self.sleep: Callable[[float], None] = time.sleep
        self.info = self._call("GET", "/", action="connect to")
        self._check_engine(self.info)
        if ensure:
            self.ensure_indices()

    # -------------------------------------------------------------------------- plumbing
    def _check_engine(self, info: Any) -> None:
        """Subclasses refuse a cluster of the other engine with one sentence."""

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
              ndjson: bool = False, action: str = "use", ok: tuple[int, ...] = ()) -> Any:
        """One request with retries (429/502/503/504 and connection failures: exponential backoff, jitter).

        Statuses in `ok` are returned as `{"status": N, ...body}` instead of raising."""
        if self._closed:
            raise StoreError(f"The store {self.url} is closed.")
        attempts = max(1, self.options.retries)
        delay = self.options.backoff_s
        started = time.monotonic()
        for attempt in range(1, attempts + 1):
            try:
                return self._t.request(method, path, params=params, body=body, ndjson=ndjson)
            except ClusterHTTPError as err:
                if err.status in ok:
                    out = err.body if isinstance(err.body, dict) else {}
                    return {**out, "status": err.status}
                if err.status in RETRY_STATUSES and attempt < attempts:
                    self._backoff(delay)
                    delay = min(delay * 2, self.options.max_backoff_s)
                    continue
                raise self._http_error(action, err, attempt, time.monotonic() - started) from None
            except ClusterUnreachable as err:
                if attempt < attempts:
                    self._backoff(delay)
                    delay = min(delay * 2, self.options.max_backoff_s)
                    continue
                raise StoreError(
                    f"Cannot {action} the {self.engine_name} cluster at {self.url}: {_first_line(err)} "
                    f"(after {attempt} attempts over {time.monotonic() - started:.0f} s); nothing more was "
                    "written, everything written before is kept, and re-running is safe (ids are deterministic)."
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, delay: float) -> None:
        self.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto

    def _http_error(self, action: str, err: ClusterHTTPError, attempt: int, spent: float) -> StoreError:
        where = f"the {self.engine_name} cluster at {self.url}"
        if err.status == 401:
            return StoreError(f"{where} refused the credentials (401 unauthorized); set LLMID_STORE_USERNAME and "
                              "LLMID_STORE_PASSWORD, or LLMID_STORE_API_KEY, or LLMID_STORE_CREDENTIALS=FILE.")
        if err.status == 403:
            return StoreError(f"{where} does not allow this user to {action} it (403 forbidden: {err.reason}).")
        if err.status in RETRY_STATUSES:
            return StoreError(f"Cannot {action} {where}: it stayed overloaded ({err.status}: {err.reason}) for "
                              f"{attempt} attempts over {spent:.0f} s; everything written before is kept, retry "
                              "later (re-running is safe).")
        return StoreError(f"Cannot {action} {where}: {err.reason} ({err.status}).")

    def _refresh_for_read(self, *indices: str) -> None:
        """Read-your-writes: refresh the indices this store wrote since their last refresh, before reading them."""
        with self._lock:
            todo = sorted(i for i in self._dirty if any(_covers(pattern, i) for pattern in indices))
            if not todo:
                return
            self._call("POST", f"/{','.join(todo)}/_refresh", params={"ignore_unavailable": "true"},
                       action="refresh")
            self._dirty.difference_update(todo)

    def refresh(self) -> None:
        """Make everything written so far visible to searches (of every process)."""
        with self._lock:
            if self._dirty:
                self._call("POST", f"/{','.join(sorted(self._dirty))}/_refresh",
                           params={"ignore_unavailable": "true"}, action="refresh")
                self._dirty.clear()

    def close(self) -> None:
        """Refresh what was written (so the next command sees it), then release connections."""
        if self._closed:
            return
        try:
            self.refresh()
        finally:
            self._closed = True
            self._t.close()

    def index(self, kind: str) -> str:
        return it.index_name(self.prefix, kind)

    @property
    def logs(self) -> str:
        return it.logs_pattern(self.prefix)

    def _search(self, index: str, body: dict[str, Any], action: str = "search") -> dict[str, Any]:
        self._refresh_for_read(index)
        return self._call("POST", f"/{index}/_search", body=body,
                          params={"ignore_unavailable": "true", "allow_no_indices": "true"}, action=action)

    # -------------------------------------------------------------------------- set-up
    def ensure_indices(self) -> list[str]:
        """Install the component and index templates when missing or older (indices are then created by their
        first write, from the templates); report a mapping conflict of an existing index in one sentence."""
        changed: list[str] = []
        have = self._call("GET", f"/_index_template/{self.prefix}*", action="read the index templates of",
                          ok=(404,))
        versions = {t["name"]: t["index_template"].get("version") for t in have.get("index_templates", [])}
        components = it.component_templates(self.prefix, self.engine)
        templates = it.index_templates(self.prefix, self.engine)
        if any((versions.get(name) or 0) < it.SCHEMA_VERSION for name in templates):
            for name, body in components.items():
                self._call("PUT", f"/_component_template/{name}", body=body, action="install templates in")
            for name, body in templates.items():
                self._call("PUT", f"/_index_template/{name}", body=body, action="install templates in")
            changed.append("index templates")
        self.check_conflicts()
        return changed

    def check_conflicts(self) -> None:
        """One sentence naming the first existing index whose key fields are mapped otherwise than LLM-ID's."""
        names = [self.logs, *(self.index(k) for k in (*it.KINDS[1:], *it.INTERNAL))]
        got = self._call("GET", f"/{','.join(names)}/_mapping",
                         params={"ignore_unavailable": "true", "allow_no_indices": "true"}, action="read mappings of")
        for index, body in sorted((got or {}).items()):
            kind = self._kind_of(index)
            if kind is None:
                continue
            found = it.conflicts(kind, body.get("mappings") or {})
            if found:
                raise StoreError(
                    f"The index {index} in the {self.engine_name} cluster at {self.url} already exists with a "
                    f"conflicting mapping ({'; '.join(found)}); delete or reindex it, or use another prefix "
                    "(?prefix=NAME- in the store URL)."
                )

    def _kind_of(self, index: str) -> str | None:
        if index.startswith(f"{self.prefix}logs-"):
            return "logs"
        for kind in (*it.KINDS[1:], *it.INTERNAL):
            if index == self.index(kind):
                return kind
        return None

    # -------------------------------------------------------------------------- bulk
    def bulk(self, ops: list[tuple[dict[str, Any], dict[str, Any] | None]], action: str = "write to") -> list[
            dict[str, Any]]:
        """Send (action, source) pairs; retry items rejected with 429; return the items that failed for good
        (each {"op", "source", "status", "error"}), in order. Splits by size."""
        return self._send(_chunks(ops), action)

    def _send(self, chunks: Iterable[list[tuple[dict[str, Any], dict[str, Any] | None, str]]],
              action: str = "write to") -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for chunk in chunks:
            results.extend(self._bulk_chunk(chunk, action))
        return results

    def _bulk_chunk(self, ops: list[tuple[dict[str, Any], dict[str, Any] | None, str]], action: str) -> list[
            dict[str, Any]]:
        pending = ops
        delay = self.options.backoff_s
        failed: list[dict[str, Any]] = []
        for attempt in range(1, max(1, self.options.retries) + 1):
            params = {"refresh": self.options.refresh} if self.options.refresh else None
            res = self._call("POST", "/_bulk", body="".join(op[2] for op in pending), ndjson=True, params=params,
                             action=action)
            for meta, _, _ in pending:
                self._dirty.add(next(iter(meta.values()))["_index"])
            if not res.get("errors"):
                return failed
            retry = []
            for (meta, source, text), item in zip(pending, res.get("items", []), strict=False):
                result = next(iter(item.values()))
                status = int(result.get("status", 500))
                if status < 300:
                    continue
                if status in RETRY_STATUSES and attempt < self.options.retries:
                    retry.append((meta, source, text))
                else:
                    failed.append({"op": meta, "source": source, "status": status,
                                   "error": error_reason({"error": result.get("error")})})
            if not retry:
                return failed
            pending = retry
            self._backoff(delay)
            delay = min(delay * 2, self.options.max_backoff_s)
        return failed  # pragma: no cover - the loop returns

    def _keep_rejected(self, failed: list[dict[str, Any]]) -> str:
        """Put rejected documents into the `rejected` index (source unindexed) and return one sentence about them."""
        now = iso(time.time())
        ops: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        for f in failed:
            meta = next(iter(f["op"].values()))
            ops.append(({"index": {"_index": self.index("rejected")}},
                        {"@timestamp": now, "index": meta.get("_index"), "doc_id": meta.get("_id"),
                         "error": f["error"], "doc": f["source"]}))
        first = failed[0]
        meta = next(iter(first["op"].values()))
        where = f"{meta.get('_index')}/{meta.get('_id')}"
        try:
            lost = self.bulk(ops, action="keep rejected documents in")
        except StoreError:
            lost = ops  # type: ignore[assignment]
        kept = "" if lost else f"; they are kept in {self.index('rejected')} with the reason"
        return (f"The {self.engine_name} cluster at {self.url} rejected {len(failed)} document(s) (first: {where}: "
                f"{first['error']}){kept}.")

    # -------------------------------------------------------------------------- writing
    def write(self, batch: Batch) -> None:
        """Records, then templates with counts, incidents, recommendations, and the state last (see the module
        docstring); raises one sentence when the cluster rejected documents (kept in the rejected index)."""
        if not batch:
            return
        try:  # every document is encoded before anything is sent: a bad one fails the batch, not half of it
            record_ops, deltas = self._record_ops(batch.records)
            record_chunks = list(_chunks(record_ops))
            docs_chunks = list(_chunks(self._doc_ops(batch)))
            state_chunks = list(_chunks(self._state_ops(batch.state)))
        except StoreError:
            raise
        except Exception as err:  # noqa: BLE001 - e.g. an unserialisable parameter: one sentence
            raise StoreError(f"Cannot write to the {self.engine_name} store {self.url}: {_first_line(err)}.") from err
        with self._lock:
            failed: list[dict[str, Any]] = []
            if record_chunks:
                rec_failed = self._send(record_chunks)
                failed += rec_failed
                if rec_failed:  # a record that was not written must not move any count
                    for f in rec_failed:
                        src = f["source"] or {}
                        tid = (src.get("llmid") or {}).get("template_id")
                        if tid:
                            deltas[tid] -= 1
                    self._recount_needed = True
            count_ops = [({"update": {"_index": self.index("templates"), "_id": tid, "retry_on_conflict": 5}},
                          {"script": {"source": _COUNT_SCRIPT, "lang": "painless", "params": {"d": d}},
                           "upsert": {"template_id": tid, "count": d}})
                         for tid, d in sorted(deltas.items()) if d]
            if docs_chunks or count_ops:
                failed += self._send([*docs_chunks, *_chunks(count_ops)])
            if failed:
                raise StoreError(self._keep_rejected(failed))
            if state_chunks:
                failed = self._send(state_chunks)
                if failed:
                    raise StoreError(self._keep_rejected(failed))

    _recount_needed = False

    def _record_ops(self, records: list[LogRecord]) -> tuple[list[tuple[dict[str, Any], dict[str, Any] | None]],
                                                              Counter[str]]:
        """Index ops of the records (the last of duplicate ids wins) and each template's count change, from the
        template each record had before (a realtime mget of those ids)."""
        latest: dict[str, LogRecord] = {}
        for r in records:
            latest[r.record_id] = r
        if not latest:
            return [], Counter()
        where = {rid: f"{self.prefix}logs-{partition(r.timestamp)}" for rid, r in latest.items()}
        docs = [{"_index": where[rid], "_id": rid} for rid in latest]
        before: dict[str, str | None] = {}
        res = self._call("POST", "/_mget", body={"docs": docs},
                         params={"_source_includes": "llmid.template_id", "realtime": "true"},
                         action="write to")
        for d in res.get("docs", []):
            if d.get("found"):
                before[d["_id"]] = ((d.get("_source") or {}).get("llmid") or {}).get("template_id")
        deltas: Counter[str] = Counter()
        ops: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        for rid, r in latest.items():
            old = before.get(rid, "\0missing")
            new = r.template_id
            if old != new:
                if new is not None:
                    deltas[new] += 1
                if old not in (None, "\0missing"):
                    deltas[old] -= 1  # type: ignore[index]
            ops.append(({"index": {"_index": where[rid], "_id": rid}}, r.to_doc()))
        return ops, deltas

    def _doc_ops(self, batch: Batch) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        ops: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        for t in batch.templates:
            ops.append(({"update": {"_index": self.index("templates"), "_id": t.template_id,
                                    "retry_on_conflict": 5}},
                        {"script": {"source": _TEMPLATE_SCRIPT, "lang": "painless", "params": {"doc": t.to_doc()}},
                         "scripted_upsert": True, "upsert": {}}))
        summaries: dict[str, list[dict[str, Any]]] = {}
        for rec in batch.recommendations:
            summaries.setdefault(rec.incident_id, []).append({
                "action": rec.action, "target": rec.target, "confidence": {"mean": round(rec.confidence.mean, 3)},
                "safety": {"verdict": rec.safety_verdict}})
        for inc in batch.incidents:
            doc = inc.to_doc()
            if inc.incident_id in summaries:  # for alert messages; reads replace it by the full documents
                doc["recommendations"] = summaries[inc.incident_id]
            ops.append(({"index": {"_index": self.index("incidents"), "_id": inc.incident_id}}, doc))
        for rec in batch.recommendations:
            ops.append(({"update": {"_index": self.index("recommendations"), "_id": rec.recommendation_id,
                                    "retry_on_conflict": 5}},
                        {"script": {"source": _RECOMMENDATION_SCRIPT, "lang": "painless",
                                    "params": {"doc": rec.to_doc()}},
                         "scripted_upsert": True, "upsert": {}}))
        return ops

    def _state_ops(self, state: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        ops: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        now = iso(time.time())
        for key, value in state.items():
            if value is None:
                ops.append(({"delete": {"_index": self.index("state"), "_id": key}}, None))
            else:
                ops.append(({"index": {"_index": self.index("state"), "_id": key}},
                            {"key": key, "value": _dumps(value), "updated": now}))
        return ops

    def write_guarded(self, batch: Batch, key: str, expected: Any) -> bool:
        """Compare-and-set on state `key`: checked first (realtime get), the batch written, then `key` written with
        if_seq_no/if_primary_term. A concurrent writer that won makes this return False; documents this one wrote
        meanwhile are the same deterministic documents, rewritten."""
        got = self._get(self.index("state"), key)
        current = None if got is None else json.loads(got["_source"]["value"])
        if current != expected:
            return False
        new = batch.state.get(key, expected)
        rest = Batch(records=batch.records, templates=batch.templates, incidents=batch.incidents,
                     recommendations=batch.recommendations,
                     state={k: v for k, v in batch.state.items() if k != key})
        self.write(rest)
        if key not in batch.state:
            return True
        params: dict[str, Any] = {}
        if got is None:
            params["op_type"] = "create"
        else:
            params.update(if_seq_no=got["_seq_no"], if_primary_term=got["_primary_term"])
        if self.options.refresh:
            params["refresh"] = self.options.refresh
        if new is None:
            res = self._call("DELETE", f"/{self.index('state')}/_doc/{_quote(key)}", params=params,
                             action="write to", ok=(404, 409))
        else:
            res = self._call("PUT", f"/{self.index('state')}/_doc/{_quote(key)}", params=params, action="write to",
                             body={"key": key, "value": _dumps(new), "updated": iso(time.time())}, ok=(409,))
        self._dirty.add(self.index("state"))
        return res.get("status") not in (404, 409)

    def _get(self, index: str, doc_id: str) -> dict[str, Any] | None:
        res = self._call("GET", f"/{index}/_doc/{_quote(doc_id)}", action="read from", ok=(404,))
        return res if res.get("found") else None

    def recount(self) -> None:
        """Recompute every template's count from the stored records (a terms aggregation; maintenance)."""
        self.refresh()
        counts: dict[str, int] = {}
        after: dict[str, Any] | None = None
        while True:
            comp: dict[str, Any] = {"size": 1000, "sources": [{"t": {"terms": {"field": "llmid.template_id"}}}]}
            if after:
                comp["after"] = after
            res = self._search(self.logs, {"size": 0, "aggs": {"c": {"composite": comp}}}, "recount templates in")
            agg = res.get("aggregations", {}).get("c", {})
            for b in agg.get("buckets", []):
                counts[b["key"]["t"]] = int(b["doc_count"])
            after = agg.get("after_key")
            if not after or not agg.get("buckets"):
                break
        ids = [h["_id"] for h in self._all(self.index("templates"), {"match_all": {}}, ["template_id"])]
        ops = [({"update": {"_index": self.index("templates"), "_id": tid}}, {"doc": {"count": counts.get(tid, 0)}})
               for tid in ids]
        failed = self.bulk(ops, action="recount templates in")
        if failed:
            raise StoreError(self._keep_rejected(failed))
        self._recount_needed = False

    def _all(self, index: str, query: dict[str, Any], source: list[str]) -> Iterator[dict[str, Any]]:
        """Every hit of a query in pages of 1000 sorted by the first `source` field, a unique keyword (search_after:
        no deep-paging limit)."""
        after = None
        while True:
            body: dict[str, Any] = {"size": 1000, "query": query, "sort": [{source[0]: "asc"}], "_source": source}
            if after is not None:
                body["search_after"] = after
            hits = self._search(index, body).get("hits", {}).get("hits", [])
            yield from hits
            if len(hits) < 1000:
                return
            after = hits[-1]["sort"]

    # -------------------------------------------------------------------------- state
    def save_state(self, key: str, value: Any) -> None:
        self.write(Batch(state={key: value}))

    def load_state(self, key: str) -> Any | None:
        got = self._get(self.index("state"), key)
        return None if got is None else json.loads(got["_source"]["value"])

    # -------------------------------------------------------------------------- reading
    @staticmethod
    def _page_args(limit: int, offset: int) -> tuple[int, int]:
        limit = max(0, min(int(limit), MAX_LIMIT))
        offset = max(0, int(offset))
        if offset + limit > it.MAX_RESULT_WINDOW:
            raise StoreError(f"Cannot page past {it.MAX_RESULT_WINDOW} results on a cluster store; narrow the "
                             "query (--since/--until, filters).")
        return limit, offset

    @staticmethod
    def _hits(res: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
        hits = res.get("hits", {})
        total = hits.get("total", 0)
        total = int(total.get("value", 0) if isinstance(total, dict) else total)
        return total, [{**h.get("_source", {}), "_id": h["_id"]} for h in hits.get("hits", [])]

    def _count(self, index: str, query: dict[str, Any] | None = None) -> int:
        self._refresh_for_read(index)
        res = self._call("POST", f"/{index}/_count", body={"query": query or {"match_all": {}}},
                         params={"ignore_unavailable": "true", "allow_no_indices": "true"}, action="count in")
        return int(res.get("count", 0))

    _TEMPLATE_DOCS = {"exists": {"field": "template"}}
    """Template documents (count-only stubs, made when records arrive before their template, have no text)."""

    def stats(self) -> dict[str, int]:
        return {
            "records": self._count(self.logs),
            "templates": self._count(self.index("templates"), self._TEMPLATE_DOCS),
            "incidents": self._count(self.index("incidents")),
            "recommendations": self._count(self.index("recommendations")),
        }

    @staticmethod
    def _query(query: SearchQuery | None) -> dict[str, Any]:
        """The bool query of a SearchQuery (text: simple_query_string over messages, every word required)."""
        if query is None:
            return {"match_all": {}}
        must: list[dict[str, Any]] = []
        filters: list[dict[str, Any]] = []
        text = (query.text or "").strip()
        if text:
            must.append({"simple_query_string": {"query": text, "fields": ["message"], "default_operator": "and",
                                                 "lenient": True}})
        if query.template_id is not None:
            filters.append({"term": {"llmid.template_id": query.template_id}})
        if query.level is not None:
            filters.append({"term": {"log.level": {"value": query.level, "case_insensitive": True}}})
        if query.service is not None:
            filters.append({"term": {"service.name": query.service}})
        if query.incident_id is not None:
            filters.append({"term": {"llmid.incident_id": query.incident_id}})
        rng: dict[str, Any] = {}
        if query.since is not None:
            rng["gte"] = int(float(query.since) * 1000)
        if query.until is not None:
            rng["lte"] = int(float(query.until) * 1000)
        if rng:
            filters.append({"range": {"@timestamp": {**rng, "format": "epoch_millis"}}})
        if not must and not filters:
            return {"match_all": {}}
        return {"bool": {"must": must, "filter": filters}}

    def search(self, query: SearchQuery) -> Page:
        """Matching log documents, newest first (records without a timestamp last)."""
        limit, offset = self._page_args(query.limit, query.offset)
        body = {"query": self._query(query), "from": offset, "size": limit, "track_total_hits": True,
                "sort": [{"@timestamp": {"order": "desc", "missing": "_last"}},
                         {"event.sequence": {"order": "desc", "missing": "_last"}},
                         {"log.offset": {"order": "desc", "missing": "_last"}}]}
        return Page(*self._hits(self._search(self.logs, body)))

    def histogram(self, query: SearchQuery | None = None, interval_s: float | None = None,
                  by: str | None = None) -> dict[str, Any]:
        """Counts per time bucket (and per `by`): one date_histogram aggregation; see Store.histogram."""
        if by is not None and by not in AGG_FIELDS:
            raise StoreError(f"Cannot group by {by!r}: expected one of {', '.join(AGG_FIELDS)}.")
        if interval_s is not None and not interval_s > 0:
            raise StoreError("The histogram interval must be a positive number of seconds.")
        q = self._query(query)
        step = interval_s
        if step is None:
            res = self._search(self.logs, {"size": 0, "query": q, "aggs": {
                "lo": {"min": {"field": "@timestamp"}}, "hi": {"max": {"field": "@timestamp"}}}})
            lo = res.get("aggregations", {}).get("lo", {}).get("value")
            hi = res.get("aggregations", {}).get("hi", {}).get("value")
            step = nice_interval((hi - lo) / 1000.0 if lo is not None and hi is not None else 0.0)
        hist: dict[str, Any] = {"date_histogram": {"field": "@timestamp", "fixed_interval": f"{int(step * 1000)}ms",
                                                   "min_doc_count": 1}}
        if by is not None:
            hist["aggs"] = {"k": {"terms": {"field": FIELDS[by], "size": 1000, "missing": NULL_KEY}}}
        res = self._search(self.logs, {"size": 0, "query": q, "aggs": {"h": hist}})
        buckets = []
        for b in res.get("aggregations", {}).get("h", {}).get("buckets", []):
            t = iso(b["key"] / 1000.0)
            if by is None:
                buckets.append({"t": t, "key": None, "count": int(b["doc_count"])})
                continue
            for kb in sorted(b["k"]["buckets"], key=lambda x: str(x["key"])):
                key = None if kb["key"] == NULL_KEY else kb["key"]
                buckets.append({"t": t, "key": key, "count": int(kb["doc_count"])})
        return {"interval_s": step, "buckets": buckets}

    def facet(self, field: str, query: SearchQuery | None = None, size: int = 20) -> list[dict[str, Any]]:
        """Most frequent values of `field` among the matching records: one terms aggregation."""
        if field not in AGG_FIELDS:
            raise StoreError(f"Cannot count values of {field!r}: expected one of {', '.join(AGG_FIELDS)}.")
        size = max(0, min(int(size), MAX_LIMIT))
        if size == 0:
            return []
        res = self._search(self.logs, {"size": 0, "query": self._query(query), "aggs": {"f": {"terms": {
            "field": FIELDS[field], "size": size, "missing": NULL_KEY,
            "order": [{"_count": "desc"}, {"_key": "asc"}]}}}})
        return [{"key": None if b["key"] == NULL_KEY else b["key"], "count": int(b["doc_count"])}
                for b in res.get("aggregations", {}).get("f", {}).get("buckets", [])]

    def templates(self, limit: int = 100, offset: int = 0) -> Page:
        limit, offset = self._page_args(limit, offset)
        body = {"query": {"bool": {"filter": [self._TEMPLATE_DOCS]}}, "from": offset, "size": limit,
                "track_total_hits": True, "sort": [{"count": "desc"}, {"template_id": "asc"}]}
        return Page(*self._hits(self._search(self.index("templates"), body)))

    def _attach_recommendations(self, incidents: list[dict[str, Any]]) -> None:
        by_id: dict[str, list[dict[str, Any]]] = {inc["_id"]: [] for inc in incidents}
        if by_id:
            res = self._search(self.index("recommendations"), {
                "query": {"terms": {"incident_id": list(by_id)}}, "size": MAX_LIMIT,
                "sort": [{"_seq_no": "asc"}]})
            for hit in self._hits(res)[1]:
                by_id.setdefault(hit.get("incident_id"), []).append(hit)
        for inc in incidents:
            inc["recommendations"] = by_id[inc["_id"]]

    def incidents(self, limit: int = 100, offset: int = 0, min_score: float = 0.0) -> Page:
        limit, offset = self._page_args(limit, offset)
        body = {"query": {"range": {"anomaly_score": {"gte": float(min_score)}}}, "from": offset, "size": limit,
                "track_total_hits": True,
                "sort": [{"anomaly_score": "desc"}, {"@timestamp": {"order": "desc", "missing": "_last"}},
                         {"incident_id": "asc"}]}
        total, hits = self._hits(self._search(self.index("incidents"), body))
        self._attach_recommendations(hits)
        return Page(total, hits)

    def get_incident(self, incident_id: str) -> dict[str, Any] | None:
        got = self._get(self.index("incidents"), incident_id)
        if got is None:
            return None
        hit = {**got["_source"], "_id": got["_id"]}
        self._attach_recommendations([hit])
        return hit

    def recommendations(self, incident_id: str | None = None, limit: int = 100) -> Page:
        limit, _ = self._page_args(limit, 0)
        query = {"term": {"incident_id": incident_id}} if incident_id is not None else {"match_all": {}}
        body = {"query": query, "size": limit, "track_total_hits": True, "sort": [{"_seq_no": "asc"}]}
        return Page(*self._hits(self._search(self.index("recommendations"), body)))

    def get_recommendation(self, recommendation_id: str) -> dict[str, Any] | None:
        got = self._get(self.index("recommendations"), recommendation_id)
        return None if got is None else {**got["_source"], "_id": got["_id"]}

    # -------------------------------------------------------------------------- approvals and audit
    def set_recommendation_status(self, recommendation_id: str, status: str, actor: str,
                                  reason: str | None = None) -> dict[str, Any]:
        """Change the status with a compare-and-set on the document (a concurrent change is retried), then audit
        it. Two documents: the audit entry is written right after the change, not in one transaction."""
        if status not in RECOMMENDATION_STATUSES:
            raise StoreError(
                f"Invalid recommendation status {status!r}: expected one of {', '.join(RECOMMENDATION_STATUSES)}."
            )
        for _ in range(10):
            got = self._get(self.index("recommendations"), recommendation_id)
            if got is None:
                raise StoreError(f"No recommendation {recommendation_id!r} in store {self.url}.")
            doc = got["_source"]
            previous = doc.get("status")
            doc["status"] = status
            params: dict[str, Any] = {"if_seq_no": got["_seq_no"], "if_primary_term": got["_primary_term"]}
            res = self._call("PUT", f"/{self.index('recommendations')}/_doc/{_quote(recommendation_id)}",
                             params=params, body=doc, action="update a recommendation in", ok=(409,))
            self._dirty.add(self.index("recommendations"))
            if res.get("status") != 409:
                break
        else:
            raise StoreError(f"Recommendation {recommendation_id!r} kept changing; try again.")
        self.record_audit(actor, f"recommendation.{status}", recommendation_id,
                          {"previous": previous, "status": status, "reason": reason,
                           "incident_id": doc.get("incident_id")})
        return {**doc, "_id": recommendation_id}

    def record_audit(self, actor: str, action: str, object_id: str | None = None,
                     details: dict[str, Any] | None = None) -> None:
        now = time.time()
        entry_id = f"{time.time_ns():020d}-{random.getrandbits(32):08x}"
        self._call("PUT", f"/{self.index('audit')}/_doc/{entry_id}", action="write audit to",
                   body={"id": entry_id, "ts": now, "actor": actor, "action": action, "object_id": object_id,
                         "details": details or {}})
        self._dirty.add(self.index("audit"))

    def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        """Audit entries, newest first (the audit index is refreshed first: other processes write it too)."""
        limit, _ = self._page_args(limit, 0)
        self._dirty.add(self.index("audit"))
        res = self._search(self.index("audit"), {"size": limit, "sort": [{"ts": "desc"}, {"id": "desc"}]})
        return [{k: h.get(k) for k in ("id", "ts", "actor", "action", "object_id", "details")}
                for h in self._hits(res)[1]]

    # -------------------------------------------------------------------------- objects
    def _object_id(self, kind: str, object_id: str) -> str:
        return f"{kind}:{object_id}" if len(kind) + len(object_id) < 500 else f"{kind}:#" + _digest(object_id)

    def put_object(self, kind: str, object_id: str, doc: dict[str, Any]) -> None:
        now = time.time()
        got = self._get(self.index("objects"), self._object_id(kind, object_id))
        created = got["_source"].get("created", now) if got else now
        self._call("PUT", f"/{self.index('objects')}/_doc/{_quote(self._object_id(kind, object_id))}",
                   action="write to", body={"kind": kind, "object_id": object_id, "ts": now, "created": created,
                                            "doc": doc})
        self._dirty.add(self.index("objects"))

    def get_object(self, kind: str, object_id: str) -> dict[str, Any] | None:
        got = self._get(self.index("objects"), self._object_id(kind, object_id))
        return None if got is None else {**(got["_source"].get("doc") or {}), "_id": object_id}

    def list_objects(self, kind: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Objects of `kind`, oldest first (the objects index is refreshed first: other processes write it)."""
        limit, _ = self._page_args(limit, 0)
        self._dirty.add(self.index("objects"))
        res = self._search(self.index("objects"), {"query": {"term": {"kind": kind}}, "size": limit,
                                                   "sort": [{"created": "asc"}, {"object_id": "asc"}]})
        return [{**(h["_source"].get("doc") or {}), "_id": h["_source"].get("object_id")}
                for h in res.get("hits", {}).get("hits", [])]

    def delete_object(self, kind: str, object_id: str) -> bool:
        res = self._call("DELETE", f"/{self.index('objects')}/_doc/{_quote(self._object_id(kind, object_id))}",
                         action="delete from", ok=(404,))
        self._dirty.add(self.index("objects"))
        return res.get("result") == "deleted"

    def claim_object(self, kind: str, object_id: str, doc: dict[str, Any], cooldown_s: float) -> bool:
        """Store `doc` unless one was stored less than `cooldown_s` ago: a realtime get, then a write conditional
        on what was read (op_type=create or if_seq_no), so two processes never both win."""
        now = time.time()
        oid = self._object_id(kind, object_id)
        got = self._get(self.index("objects"), oid)
        params: dict[str, Any]
        if got is not None:
            if now - float(got["_source"].get("ts", 0)) < cooldown_s:
                return False
            params = {"if_seq_no": got["_seq_no"], "if_primary_term": got["_primary_term"]}
            created = got["_source"].get("created", now)
        else:
            params, created = {"op_type": "create"}, now
        res = self._call("PUT", f"/{self.index('objects')}/_doc/{_quote(oid)}", params=params, action="write to",
                         body={"kind": kind, "object_id": object_id, "ts": now, "created": created, "doc": doc},
                         ok=(409,))
        self._dirty.add(self.index("objects"))
        return res.get("status") != 409

    # -------------------------------------------------------------------------- point in time (datafeed)
    def open_pit(self, index: str, keep_alive: str = "2m") -> str:
        """Open a point in time over `index` (engine-specific API)."""
        raise NotImplementedError

    def close_pit(self, pit_id: str) -> None:
        """Close a point in time (engine-specific API); errors are ignored: it expires by itself."""
        raise NotImplementedError

    def pit_tiebreak(self) -> list[dict[str, Any]]:
        """Sort clauses after @timestamp that make a PIT's order total (search_after must not skip ties)."""
        return []

    def search_pit(self, pit_id: str, body: dict[str, Any], keep_alive: str = "2m") -> dict[str, Any]:
        """A search over a point in time (no index in the path: the PIT names it)."""
        return self._call("POST", "/_search", body={**body, "pit": {"id": pit_id, "keep_alive": keep_alive}},
                          action="read from")


def _covers(pattern: str, index: str) -> bool:
    if pattern.endswith("*"):
        return index.startswith(pattern[:-1])
    return index == pattern


def _quote(doc_id: str) -> str:
    from urllib.parse import quote

    return quote(doc_id, safe="")


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return " ".join(text.splitlines()[0].split())[:300].rstrip(".")


def _chunks(ops: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> Iterator[
        list[tuple[dict[str, Any], dict[str, Any] | None, str]]]:
    """Encode each op once (its NDJSON lines) and split so no request body exceeds BULK_MAX_BYTES."""
    chunk: list[tuple[dict[str, Any], dict[str, Any] | None, str]] = []
    size = 0
    for meta, source in ops:
        text = _dumps(meta) + "\n" + (_dumps(source) + "\n" if source is not None else "")
        n = len(text)
        if chunk and size + n > BULK_MAX_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append((meta, source, text))
        size += n
    if chunk:
        yield chunk
