"""The Store interface every backend (SQLite, OpenSearch, Elasticsearch) implements.

The engine never imports a store; the CLI, workers and web app hand batches from the engine to a Store. Every
write is an upsert by the document's deterministic id, so re-running the same input changes no counts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from llmid.documents import Batch

__all__ = ["Batch", "Page", "SearchQuery", "Store"]


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
        """Upsert the batch atomically. Template `count` is recomputed from the stored records (idempotent)."""

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

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
