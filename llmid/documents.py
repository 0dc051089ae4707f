"""The documents LLM-ID writes to every store, with ECS field names (DESIGN.md "Documents").

The engine works on these dataclasses; `to_doc()` gives the JSON document a store indexes, so SQLite,
OpenSearch and Elasticsearch hold byte-for-byte the same fields. Ids are deterministic so re-ingesting the same
input overwrites instead of duplicating.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

ACTIONS: tuple[str, ...] = (
    "restart_service",
    "rollback_deploy",
    "scale_out",
    "drain_node",
    "free_disk",
    "renew_certificate",
    "raise_memory_limit",
    "failover_database",
    "restart_job_from_checkpoint",
    "escalate_to_human",
)
"""The fixed recovery-action vocabulary; `escalate_to_human` is always the safe fallback."""

RECOMMENDATION_STATUSES = ("proposed", "approved", "rejected", "executed")


def stable_id(*parts: object, length: int = 20) -> str:
    """A short deterministic id: the same parts always give the same id, across runs and machines."""
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        h.update(str(p).encode("utf-8", "surrogateescape"))
        h.update(b"\x1f")
    return h.hexdigest()[:length]


def iso(ts: float | None) -> str | None:
    """Epoch seconds → ISO-8601 UTC with milliseconds (what `@timestamp` holds)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class LogRecord:
    """One log record (a line, or a head line with its continuation lines) and what the engine learns of it."""

    line_id: int
    """1-based number of the record's first line in its source (the `LineId` of the contract)."""
    source: str
    """`log.file.path`; "-" for stdin."""
    offset: int
    """Byte offset of the record's first line in the source (`log.offset`)."""
    message: str
    """The whole raw record, header included."""
    content: str
    """The free-text part after the header (what templates are mined from)."""
    timestamp: float | None = None
    level: str | None = None
    service: str | None = None
    host: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    """Other header fields the format extracted (Pid, Component, ...)."""
    log_format: str | None = None
    """Name of the format that matched (preset name, or "raw" when nothing did)."""
    # filled by the engine
    template_id: str | None = None
    template: str | None = None
    params: list[str] = field(default_factory=list)
    template_origin: str | None = None
    """The template's first string (before any refinement): what the reasoner reads, so that its judgement does
    not depend on how far the template had been refined when the line was read (by this run or an earlier run
    over the same store). Not part of the stored document."""
    anomaly_score: float = 0.0
    root_cause_score: float = 0.0
    incident_id: str | None = None

    @property
    def head(self) -> str:
        """The first line of the content: templates are mined from it, so a stack trace's depth does not
        split one event into many (the whole trace stays in `message` and `content`)."""
        return self.content.partition("\n")[0]

    @property
    def record_id(self) -> str:
        """Derived from (source, offset): re-ingesting the same file overwrites the same documents."""
        return stable_id("log", self.source, self.offset)

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "@timestamp": iso(self.timestamp),
            "message": self.message,
            "log": {"level": self.level, "file": {"path": self.source}, "offset": self.offset},
            "host": {"name": self.host},
            "service": {"name": self.service},
            "event": {"sequence": self.line_id},
            "llmid": {
                "template_id": self.template_id,
                "template": self.template,
                "params": list(self.params),
                "anomaly_score": round(float(self.anomaly_score), 6),
                "root_cause_score": round(float(self.root_cause_score), 6),
                "incident_id": self.incident_id,
                "content": self.content,
                "format": self.log_format,
            },
        }
        if self.fields:
            doc["labels"] = dict(self.fields)
        return doc


@dataclass(slots=True)
class Template:
    """An event template; its id is kept when the template is refined (Drain3 issue #32)."""

    template_id: str
    template: str
    count: int = 0
    first_seen: float | None = None
    last_seen: float | None = None
    example: str = ""
    service: str | None = None
    previous: list[str] = field(default_factory=list)
    """Earlier strings of this template, oldest first: the record of each refinement."""

    def to_doc(self) -> dict[str, Any]:
        return {
            "template_id": self.template_id,
            "template": self.template,
            "count": self.count,
            "first_seen": iso(self.first_seen),
            "last_seen": iso(self.last_seen),
            "example": self.example,
            "service": {"name": self.service},
            "previous": list(self.previous),
        }


@dataclass(slots=True)
class RankedEvent:
    """One event (template × service) of an incident window, with its root-cause score."""

    template_id: str
    template: str
    score: float
    lines: list[int]
    """LineIds of every record of this event inside the incident window."""
    service: str | None = None
    host: str | None = None
    level: str | None = None
    first_seen: float | None = None

    def to_doc(self) -> dict[str, Any]:
        return {
            "template_id": self.template_id,
            "template": self.template,
            "score": round(float(self.score), 6),
            "lines": list(self.lines),
            "service": {"name": self.service},
            "host": {"name": self.host},
            "log": {"level": self.level},
            "first_seen": iso(self.first_seen),
        }


@dataclass(slots=True)
class Incident:
    """An anomalous window: the ranked events (root cause first) and the fault chain."""

    incident_id: str
    source: str
    window_start: float | None
    window_end: float | None
    first_line: int
    last_line: int
    anomaly_score: float
    ranking: list[RankedEvent]
    chain: list[RankedEvent]
    """Events of the fault chain in causal order, root cause first."""
    status: str = "open"
    method: str = "baseline"
    """Which reasoner produced it ("baseline" until a learned model is installed)."""

    @property
    def root_cause(self) -> RankedEvent:
        return self.ranking[0]

    def to_doc(self) -> dict[str, Any]:
        rc = self.root_cause
        return {
            "incident_id": self.incident_id,
            "@timestamp": iso(self.window_start if rc.first_seen is None else rc.first_seen),
            "window": {
                "start": iso(self.window_start),
                "end": iso(self.window_end),
                "first_line": self.first_line,
                "last_line": self.last_line,
            },
            "log": {"file": {"path": self.source}},
            "anomaly_score": round(float(self.anomaly_score), 6),
            "root_cause": {
                "template_id": rc.template_id,
                "template": rc.template,
                "score": round(float(rc.score), 6),
                "service": {"name": rc.service},
                "host": {"name": rc.host},
                "lines": list(rc.lines),
            },
            "chain": [e.to_doc() for e in self.chain],
            "ranking": [e.to_doc() for e in self.ranking],
            "status": self.status,
            "method": self.method,
        }


@dataclass(slots=True)
class Confidence:
    """Beta(alpha, beta) belief that the action fixes the fault; low/high bound a 90% interval."""

    alpha: float
    beta: float
    mean: float
    low: float
    high: float

    def to_doc(self) -> dict[str, float]:
        return {k: round(float(getattr(self, k)), 6) for k in ("mean", "alpha", "beta", "low", "high")}


@dataclass(slots=True)
class Recommendation:
    recommendation_id: str
    incident_id: str
    action: str
    target: str | None
    confidence: Confidence
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    safety_verdict: str = "needs_approval"
    safety_reasons: list[str] = field(default_factory=list)
    rationale: list[str] = field(default_factory=list)
    status: str = "proposed"
    outcome: str | None = None
    method: str = "baseline"

    def to_doc(self) -> dict[str, Any]:
        return {
            "recommendation_id": self.recommendation_id,
            "incident_id": self.incident_id,
            "action": self.action,
            "target": self.target,
            "confidence": self.confidence.to_doc(),
            "alternatives": list(self.alternatives),
            "safety": {"verdict": self.safety_verdict, "reasons": list(self.safety_reasons)},
            "rationale": list(self.rationale),
            "status": self.status,
            "outcome": self.outcome,
            "method": self.method,
        }


@dataclass(slots=True)
class Batch:
    """What one engine step produced; a store writes it in one transaction (all of it or nothing)."""

    records: list[LogRecord] = field(default_factory=list)
    templates: list[Template] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    recommendations: list[Recommendation] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    """Engine state (e.g. the template miner) saved in the same transaction, keyed like save_state."""

    def __bool__(self) -> bool:
        return bool(self.records or self.templates or self.incidents or self.recommendations or self.state)
