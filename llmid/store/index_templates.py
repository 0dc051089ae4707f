"""Index design for OpenSearch and Elasticsearch: composable index templates with explicit mappings for the four
document kinds, time-partitioned log indices, and the retention policy (ISM on OpenSearch, ILM on Elasticsearch).

Why these choices:

- **Explicit mappings, `dynamic: false`.** Analysts filter and aggregate on ids, levels, services and actions, so
  those are `keyword`; they read and full-text search messages, templates and content, so those are `text` (a
  template also keeps a `.keyword` sub-field to aggregate "top root-cause templates"). Unknown fields stay in
  `_source` but are not indexed, so no stray field can turn into a mapping conflict later; only `labels.*` (the
  header fields a format extracted) is dynamic, always as `keyword`.
- **Logs in daily indices named after the record's own timestamp** (`llmid-logs-2024.01.31`, `-undated` when a
  record has none), read through the `llmid-logs` alias. A record's id is derived from (source, offset), and its
  index from its timestamp, so re-ingesting overwrites the same document in the same index: upserts stay
  idempotent. A data stream or a size-based rollover cannot give that (data streams are append-only; after a
  rollover the same id would land in a new index and be duplicated). Retention works on whole indices: the ISM /
  ILM policy deletes a partition `retention_days` after it was created.
- **Component templates** (settings, one mapping per kind) composed into one index template per kind, so an
  admin can override settings (shards, replicas, refresh interval) in one place.
"""

from __future__ import annotations

import copy
from typing import Any

SCHEMA_VERSION = 1
"""Stored as the templates' `version`: the store re-installs templates older than this."""

DEFAULT_PREFIX = "llmid-"
DEFAULT_RETENTION_DAYS = 30
MAX_RESULT_WINDOW = 100_000
"""Deepest page a search may reach (from + size); matches Store.scan_limit."""

KINDS = ("logs", "templates", "incidents", "recommendations")
INTERNAL = ("state", "objects", "audit", "rejected")
"""Indices of the store's own bookkeeping: engine state, objects (rules, tokens), the audit trail, and documents
the cluster rejected (kept, with the reason, so nothing is lost)."""

_KW = {"type": "keyword", "ignore_above": 1024}
_TEXT_KW = {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 2048}}}
_DATE = {"type": "date"}
_FLOAT = {"type": "float"}
_LONG = {"type": "long"}
_NAME = {"properties": {"name": _KW}}
_OFF = {"type": "object", "enabled": False}
"""Kept in _source, never indexed: nested lists analysts read but do not query."""


def _event_props() -> dict[str, Any]:
    """A ranked event inside an incident (chain[], ranking[])."""
    return {
        "type": "object",
        "properties": {
            "template_id": _KW, "template": _TEXT_KW, "score": _FLOAT, "lines": _LONG,
            "service": _NAME, "host": _NAME, "log": {"properties": {"level": _KW}}, "first_seen": _DATE,
        },
    }


MAPPINGS: dict[str, dict[str, Any]] = {
    "logs": {
        "dynamic": False,
        "dynamic_templates": [{"labels": {"path_match": "labels.*", "mapping": _KW}}],
        "properties": {
            "@timestamp": _DATE,
            "message": {"type": "text"},
            "log": {"properties": {"level": _KW, "offset": _LONG, "file": {"properties": {"path": _KW}}}},
            "host": _NAME,
            "service": _NAME,
            "event": {"properties": {"sequence": _LONG}},
            "labels": {"type": "object", "dynamic": True},
            "llmid": {"properties": {
                "template_id": _KW, "template": _TEXT_KW, "params": _KW, "anomaly_score": _FLOAT,
                "root_cause_score": _FLOAT, "incident_id": _KW, "content": {"type": "text"}, "format": _KW,
            }},
        },
    },
    "templates": {
        "dynamic": False,
        "properties": {
            "template_id": _KW, "template": _TEXT_KW, "count": _LONG, "first_seen": _DATE, "last_seen": _DATE,
            "example": {"type": "text"}, "service": _NAME, "previous": {"type": "text"},
        },
    },
    "incidents": {
        "dynamic": False,
        "properties": {
            "incident_id": _KW,
            "@timestamp": _DATE,
            "window": {"properties": {"start": _DATE, "end": _DATE, "first_line": _LONG, "last_line": _LONG}},
            "log": {"properties": {"file": {"properties": {"path": _KW}}}},
            "anomaly_score": _FLOAT,
            "root_cause": {"properties": {
                "template_id": _KW, "template": _TEXT_KW, "score": _FLOAT, "service": _NAME, "host": _NAME,
                "lines": _LONG,
            }},
            "recommendations": {"properties": {
                "action": _KW, "target": _KW, "confidence": {"properties": {"mean": _FLOAT}},
                "safety": {"properties": {"verdict": _KW}},
            }},
            "chain": _event_props(),
            "ranking": _event_props(),
            "status": _KW,
            "method": _KW,
        },
    },
    "recommendations": {
        "dynamic": False,
        "properties": {
            "recommendation_id": _KW, "incident_id": _KW, "action": _KW, "target": _KW,
            "confidence": {"properties": {k: _FLOAT for k in ("mean", "alpha", "beta", "low", "high")}},
            "alternatives": _OFF,
            "safety": {"properties": {"verdict": _KW, "reasons": {"type": "text"}}},
            "rationale": {"type": "text"}, "status": _KW, "outcome": _KW, "method": _KW,
        },
    },
    "state": {"dynamic": False, "properties": {"key": _KW, "updated": _DATE,
                                                "value": {"type": "keyword", "index": False, "doc_values": False}}},
    "objects": {"dynamic": False, "properties": {"kind": _KW, "object_id": _KW, "ts": {"type": "double"},
                                                  "created": {"type": "double"}, "doc": _OFF}},
    "audit": {"dynamic": False, "properties": {"id": _KW, "ts": {"type": "double"}, "actor": _KW, "action": _KW,
                                                "object_id": _KW, "details": _OFF}},
    "rejected": {"dynamic": False, "properties": {"@timestamp": _DATE, "index": _KW, "doc_id": _KW,
                                                   "error": {"type": "text"}, "doc": _OFF}},
}
"""Mappings per index kind (the four document kinds of DESIGN.md, then the store's own)."""

KEY_FIELDS: dict[str, dict[str, str]] = {
    "logs": {"@timestamp": "date", "log.level": "keyword", "service.name": "keyword",
             "llmid.template_id": "keyword", "llmid.incident_id": "keyword", "llmid.root_cause_score": "float"},
    "templates": {"template_id": "keyword", "count": "long"},
    "incidents": {"incident_id": "keyword", "anomaly_score": "float", "@timestamp": "date",
                  "root_cause.score": "float", "root_cause.service.name": "keyword"},
    "recommendations": {"recommendation_id": "keyword", "incident_id": "keyword", "status": "keyword"},
    "state": {"key": "keyword"},
    "objects": {"kind": "keyword", "created": "double"},
    "audit": {"ts": "double"},
    "rejected": {},
}
"""Fields whose type the queries rely on: an existing index mapping them otherwise is a conflict to report."""


def index_name(prefix: str, kind: str) -> str:
    """The concrete index of a single-index kind (templates, incidents, ... state)."""
    return f"{prefix}{kind}"


def logs_pattern(prefix: str) -> str:
    return f"{prefix}logs-*"


def logs_alias(prefix: str) -> str:
    return f"{prefix}logs"


def policy_id(prefix: str) -> str:
    return f"{prefix}retention"


def _settings(kind: str, engine: str, prefix: str) -> dict[str, Any]:
    s: dict[str, Any] = {
        "number_of_shards": 1,
        "auto_expand_replicas": "0-1",
        "max_result_window": MAX_RESULT_WINDOW,
    }
    if kind == "logs":
        s["refresh_interval"] = "1s"
        s["codec"] = "best_compression"
        if engine == "elasticsearch":
            s["lifecycle"] = {"name": policy_id(prefix)}
    return {"index": s}


def component_templates(prefix: str, engine: str) -> dict[str, dict[str, Any]]:
    """Component template name → body: one settings and one mappings component per kind."""
    out: dict[str, dict[str, Any]] = {}
    for kind in (*KINDS, *INTERNAL):
        out[f"{prefix}{kind}-settings"] = {
            "version": SCHEMA_VERSION,
            "template": {"settings": _settings(kind, engine, prefix)},
            "_meta": {"managed_by": "llmid", "description": f"LLM-ID {kind} index settings"},
        }
        out[f"{prefix}{kind}-mappings"] = {
            "version": SCHEMA_VERSION,
            "template": {"mappings": copy.deepcopy(MAPPINGS[kind])},
            "_meta": {"managed_by": "llmid", "description": f"LLM-ID {kind} mappings (ECS field names)"},
        }
    return out


def index_templates(prefix: str, engine: str) -> dict[str, dict[str, Any]]:
    """Index template name → body, each composed of its kind's two component templates."""
    out: dict[str, dict[str, Any]] = {}
    for kind in (*KINDS, *INTERNAL):
        pattern = logs_pattern(prefix) if kind == "logs" else index_name(prefix, kind)
        body: dict[str, Any] = {
            "index_patterns": [pattern],
            "priority": 300,
            "version": SCHEMA_VERSION,
            "composed_of": [f"{prefix}{kind}-settings", f"{prefix}{kind}-mappings"],
            "_meta": {"managed_by": "llmid", "kind": kind},
        }
        if kind == "logs":
            body["template"] = {"aliases": {logs_alias(prefix): {}}}
        out[f"{prefix}{kind}"] = body
    return out


def ism_policy(prefix: str, retention_days: int = DEFAULT_RETENTION_DAYS) -> dict[str, Any]:
    """OpenSearch Index State Management: log partitions go read-only after a day (force-merged to one segment)
    and are deleted after `retention_days`; attached to new partitions by its `ism_template`."""
    return {
        "policy": {
            "description": f"LLM-ID log retention: delete log partitions after {retention_days} days",
            "default_state": "hot",
            "states": [
                {"name": "hot", "actions": [],
                 "transitions": [{"state_name": "warm", "conditions": {"min_index_age": "1d"}}]},
                {"name": "warm", "actions": [{"read_only": {}}, {"force_merge": {"max_num_segments": 1}}],
                 "transitions": [{"state_name": "delete",
                                  "conditions": {"min_index_age": f"{retention_days}d"}}]},
                {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
            ],
            "ism_template": [{"index_patterns": [logs_pattern(prefix)], "priority": 100}],
        }
    }


def ilm_policy(retention_days: int = DEFAULT_RETENTION_DAYS) -> dict[str, Any]:
    """Elasticsearch Index Lifecycle Management: the same phases as the ISM policy (attached through the logs
    template's `index.lifecycle.name`). No rollover action: partitions are per day already."""
    return {
        "policy": {
            "_meta": {"managed_by": "llmid",
                      "description": f"LLM-ID log retention: delete log partitions after {retention_days} days"},
            "phases": {
                "hot": {"min_age": "0ms", "actions": {"set_priority": {"priority": 100}}},
                "warm": {"min_age": "1d", "actions": {"readonly": {}, "forcemerge": {"max_num_segments": 1},
                                                      "set_priority": {"priority": 50}}},
                "delete": {"min_age": f"{retention_days}d", "actions": {"delete": {}}},
            },
        }
    }


def mapped_type(mapping: dict[str, Any], dotted: str) -> str | None:
    """The type an index mapping gives a dotted field (`object` for objects), or None when unmapped."""
    node: dict[str, Any] | None = mapping
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        props = (node or {}).get("properties") or {}
        if part not in props:
            return None
        node = props[part]
        if i == len(parts) - 1:
            return str(node.get("type", "object"))
    return None


def conflicts(kind: str, mapping: dict[str, Any]) -> list[str]:
    """'field is TYPE, expected TYPE' for each key field an existing index maps differently."""
    out = []
    for name, want in KEY_FIELDS.get(kind, {}).items():
        have = mapped_type(mapping, name)
        if have is not None and have != want:
            out.append(f"{name} is {have}, expected {want}")
    return out
