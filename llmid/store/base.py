"""The Store interface every backend (SQLite, OpenSearch, Elasticsearch) implements.

The engine never imports a store; the CLI, workers and web app hand batches from the engine to a Store. Every
write is an upsert by the document's deterministic id, so re-running the same input changes no counts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Any

from llmid.documents import Batch, iso
from llmid.errors import StoreError

__all__ = ["AGG_FIELDS", "Batch", "Page", "SearchQuery", "Store", "nice_interval"]

AGG_FIELDS = ("level", "service", "host", "template_id", "incident_id")
"""Log-record fields that `histogram(by=...)` and `facet` group on (keyword fields on every backend)."""

_NICE = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400, 30 * 86400)


def nice_interval(span_s: float, buckets: int = 60) -> float:
    """A round bucket width (1 s ... 30 d) giving at most about `buckets` buckets over `span_s`, so charts of
    a 10-minute incident and of a month of logs both get readable bars."""
    for step in _NICE:
        if span_s / step <= buckets:
            return float(step)
    return float(_NICE[-1])


@dataclass(slots=True)
class SearchQuery:
    text: str | None = None
    """Full-text query over messages (FTS5 syntax on SQLite, simple_query_string on clusters)."""
    template_id: str | None = None
    level: str | None = None
    service: str | None = None
    since: float | None = None
    until: float | None = None
    incident_id: str | None = None
    limit: int = 50
    offset: int = 0


@dataclass(slots=True)
class Page:
    total: int
    hits: list[dict[str, Any]]


class Store(ABC):
    """A document store for the four LLM-ID document kinds (DESIGN.md "Documents")."""

    url: str

    @abstractmethod
    def write(self, batch: Batch) -> None:
        """Upsert the batch atomically. Template `count` is recomputed from the stored records (idempotent).
        A `batch.state` value of None deletes that state key."""

    def write_guarded(self, batch: Batch, key: str, expected: Any) -> bool:
        """Write `batch` only if state `key` still holds `expected`; False (nothing written) otherwise.

        A compare-and-set that lets worker processes advance a shared cursor (llmid.workers) without a lock
        manager. This default checks and writes in two steps, so it is atomic only with one writer; backends
        override it with a conditional write (SQLite: one transaction)."""
        if self.load_state(key) != expected:
            return False
        self.write(batch)
        return True

    @abstractmethod
    def stats(self) -> dict[str, int]:
        """{"records", "templates", "incidents", "recommendations"} counts."""

    @abstractmethod
    def search(self, query: SearchQuery) -> Page:
        """Log documents matching the query, newest first."""

    @abstractmethod
    def templates(self, limit: int = 100, offset: int = 0) -> Page:
        """Template documents, most frequent first."""

    @abstractmethod
    def incidents(self, limit: int = 100, offset: int = 0, min_score: float = 0.0) -> Page:
        """Incident documents, highest anomaly score first, each with its `recommendations`."""

    @abstractmethod
    def get_incident(self, incident_id: str) -> dict[str, Any] | None:
        """One incident document with its `recommendations`, or None."""

    @abstractmethod
    def recommendations(self, incident_id: str | None = None, limit: int = 100) -> Page:
        """Recommendation documents (of one incident when given)."""

    def get_recommendation(self, recommendation_id: str) -> dict[str, Any] | None:
        """One recommendation document, or None (this default scans; backends override it with a lookup)."""
        for hit in self.recommendations(limit=10_000).hits:
            if hit.get("_id") == recommendation_id:
                return hit
        return None

    @abstractmethod
    def load_state(self, key: str) -> Any | None:
        """A JSON value saved with save_state (e.g. the template miner), or None."""

    @abstractmethod
    def save_state(self, key: str, value: Any) -> None:
        """Persist a JSON-serialisable engine state under key (overwrites)."""

    @abstractmethod
    def set_recommendation_status(
        self, recommendation_id: str, status: str, actor: str, reason: str | None = None
    ) -> dict[str, Any]:
        """Change a recommendation's status (documents.RECOMMENDATION_STATUSES) and audit who did it, atomically."""

    @abstractmethod
    def record_audit(
        self, actor: str, action: str, object_id: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        """Append one entry to the audit trail."""

    @abstractmethod
    def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        """Audit entries, newest first."""

    # -- aggregations (dashboards, the templates page). These defaults page through `search`, bounded by
    # `scan_limit`, so any backend works; SQLite overrides them with GROUP BY queries.

    scan_limit = 100_000
    """Most records the default aggregations read; backends with native aggregations have no such bound."""

    def _scan(self, query: SearchQuery | None) -> list[dict[str, Any]]:
        q = replace(query or SearchQuery(), limit=1000, offset=0)
        out: list[dict[str, Any]] = []
        while len(out) < self.scan_limit:
            page = self.search(q)
            out.extend(page.hits)
            if len(page.hits) < q.limit:
                break
            q.offset += q.limit
        return out

    @staticmethod
    def _field(hit: dict[str, Any], name: str) -> Any:
        if name in ("level",):
            return (hit.get("log") or {}).get("level")
        if name in ("service", "host"):
            return (hit.get(name) or {}).get("name")
        return (hit.get("llmid") or {}).get(name)

    def histogram(self, query: SearchQuery | None = None, interval_s: float | None = None,
                  by: str | None = None) -> dict[str, Any]:
        """Counts of matching log records per time bucket (and per `by` in AGG_FIELDS):
        {"interval_s", "buckets": [{"t": ISO start, "key": value of `by` or None, "count"}]}, oldest first.
        Records without a timestamp are left out. `interval_s` None picks a round width (nice_interval)."""
        if by is not None and by not in AGG_FIELDS:
            raise StoreError(f"Cannot group by {by!r}: expected one of {', '.join(AGG_FIELDS)}.")
        from datetime import datetime

        points = []
        for h in self._scan(query):
            ts = h.get("@timestamp")
            if ts:
                points.append((datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp(),
                               None if by is None else self._field(h, by)))
        if not points:
            return {"interval_s": interval_s or 60.0, "buckets": []}
        step = interval_s or nice_interval(max(p[0] for p in points) - min(p[0] for p in points))
        counts: dict[tuple[float, Any], int] = {}
        for ts, key in points:
            b = (ts // step * step, key)
            counts[b] = counts.get(b, 0) + 1
        buckets = [{"t": iso(t), "key": k, "count": n}
                   for (t, k), n in sorted(counts.items(), key=lambda kv: (kv[0][0], str(kv[0][1])))]
        return {"interval_s": step, "buckets": buckets}

    def facet(self, field: str, query: SearchQuery | None = None, size: int = 20) -> list[dict[str, Any]]:
        """The most frequent values of `field` (AGG_FIELDS) among matching records: [{"key", "count"}]."""
        if field not in AGG_FIELDS:
            raise StoreError(f"Cannot count values of {field!r}: expected one of {', '.join(AGG_FIELDS)}.")
        counts: dict[Any, int] = {}
        for h in self._scan(query):
            k = self._field(h, field)
            counts[k] = counts.get(k, 0) + 1
        top = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[: max(0, size)]
        return [{"key": k, "count": n} for k, n in top]

    # -- objects: small documents kept beside the results (alert rules, API tokens, web-app settings). Backends
    # that cannot keep them say so in one sentence; the web app and alerting need them.

    def _no_objects(self) -> StoreError:
        return StoreError(f"The store {self.url} cannot keep alert rules or tokens yet; use sqlite:///PATH.")

    def put_object(self, kind: str, object_id: str, doc: dict[str, Any]) -> None:
        """Upsert one document of `kind` under `object_id`."""
        raise self._no_objects()

    def get_object(self, kind: str, object_id: str) -> dict[str, Any] | None:
        """The document, or None."""
        raise self._no_objects()

    def list_objects(self, kind: str, limit: int = 1000) -> list[dict[str, Any]]:
        """Documents of `kind`, oldest first (each with `_id`)."""
        raise self._no_objects()

    def delete_object(self, kind: str, object_id: str) -> bool:
        """Remove one document; False when there was none."""
        raise self._no_objects()

    def claim_object(self, kind: str, object_id: str, doc: dict[str, Any], cooldown_s: float) -> bool:
        """Store `doc` unless one was stored under (kind, id) less than `cooldown_s` ago, atomically; True when
        stored. Alert de-duplication: two processes firing the same alert at once send it once."""
        raise self._no_objects()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
