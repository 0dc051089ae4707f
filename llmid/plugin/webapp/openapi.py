"""The OpenAPI 3 document of /api/v1, written by hand next to the routes (schemathesis keeps them honest).

Response schemas name the fields clients rely on and allow more (documents carry every ECS field of
DESIGN.md "Documents"); every status an operation can answer is listed.
"""

from __future__ import annotations

from typing import Any

from llmid import __version__
from llmid.plugin.alerts import EMAIL_PATTERN, METRICS, SMTP_PATTERN, WEBHOOK_PATTERN
from llmid.plugin.alerts import NAME_PATTERN as RULE_NAME
from llmid.plugin.webapp.config import WebConfig
from llmid.plugin.webapp.ingest import SOURCE_PATTERN
from llmid.plugin.webapp.tokens import NAME_PATTERN as TOKEN_NAME
from llmid.plugin.webapp.tokens import ROLES
from llmid.plugin.webapp.views import EPOCH_PATTERN, ID_PATTERN, REL_PATTERN
from llmid.store.base import AGG_FIELDS


def _whole(pattern: str) -> str:
    """The same regex as the server's fullmatch, anchored for JSON Schema (ECMA-262 `$` is end of input)."""
    return f"^(?:{pattern})$"


ID = {"type": "string", "pattern": _whole(ID_PATTERN)}
NUM01 = {"type": "number", "minimum": 0, "maximum": 1}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Invalid parameters or body", 401: "No valid token", 403: "The token's role is too low",
            404: "Not found", 413: "Body or line count too large", 415: "Unsupported content type",
            429: "Rate limit exceeded (see Retry-After)", 503: "The store cannot answer"}
    return {str(c): _json(_ref("Error"), text[c]) for c in codes}


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or ID}


LIMIT = _q("limit", {"type": "integer", "minimum": 0, "maximum": 1000}, "page size")
OFFSET = _q("offset", {"type": "integer", "minimum": 0, "maximum": 1000000}, "skip this many")
TIME = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"},
                  {"type": "string", "pattern": REL_PATTERN}, {"type": "string", "pattern": EPOCH_PATTERN}]}
FILTERS = [
    _q("q", {"type": "string", "maxLength": 500}, "full-text query (FTS5 syntax on SQLite)"),
    _q("level", {"type": "string", "maxLength": 32}, "log.level, case-insensitive"),
    _q("service", {"type": "string", "maxLength": 128}, "service.name"),
    _q("template", ID, "llmid.template_id"),
    _q("incident", ID, "llmid.incident_id"),
    _q("since", TIME, "from: RFC 3339 date-time, a date, epoch seconds, or relative (30m, 2h, 7d)"),
    _q("until", TIME, "up to (same forms as since)"),
]
READ_ERRORS = (400, 401, 403, 429, 503)


def _op(summary: str, ok: dict[str, Any], *, errors: tuple[int, ...] = READ_ERRORS, params: list[Any] | None = None,
        body: dict[str, Any] | None = None, status: str = "200", open_: bool = False,
        tag: str = "results") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": {status: ok, **_errors(*errors)}}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    if open_:
        op["security"] = []
    return op


SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "integer"}, "message": {"type": "string"}}}}},
    "LogRecord": {"type": "object", "required": ["_id", "message", "llmid"], "properties": {
        "_id": {"type": "string"}, "@timestamp": {"type": ["string", "null"]}, "message": {"type": "string"},
        "log": {"type": "object"}, "service": {"type": "object"}, "host": {"type": "object"},
        "llmid": {"type": "object", "properties": {
            "template_id": {"type": ["string", "null"]}, "template": {"type": ["string", "null"]},
            "params": {"type": "array", "items": {"type": "string"}}, "anomaly_score": {"type": "number"},
            "root_cause_score": {"type": "number"}, "incident_id": {"type": ["string", "null"]}}}}},
    "Template": {"type": "object", "required": ["template_id", "template", "count"], "properties": {
        "template_id": {"type": "string"}, "template": {"type": "string"}, "count": {"type": "integer"},
        "first_seen": {"type": ["string", "null"]}, "last_seen": {"type": ["string", "null"]},
        "example": {"type": "string"}}},
    "Confidence": {"type": "object", "required": ["mean", "low", "high"], "properties": {
        "mean": {"type": "number"}, "alpha": {"type": "number"}, "beta": {"type": "number"},
        "low": {"type": "number"}, "high": {"type": "number"}}},
    "Recommendation": {"type": "object", "required": ["recommendation_id", "incident_id", "action", "status"],
                       "properties": {
                           "recommendation_id": {"type": "string"}, "incident_id": {"type": "string"},
                           "action": {"type": "string"}, "target": {"type": ["string", "null"]},
                           "confidence": _ref("Confidence"),
                           "safety": {"type": "object", "properties": {
                               "verdict": {"type": "string"}, "reasons": {"type": "array"}}},
                           "status": {"type": "string", "enum": ["proposed", "approved", "rejected", "executed"]}}},
    "Incident": {"type": "object", "required": ["incident_id", "anomaly_score", "root_cause", "chain", "ranking"],
                 "properties": {
                     "incident_id": {"type": "string"}, "@timestamp": {"type": ["string", "null"]},
                     "anomaly_score": {"type": "number"}, "window": {"type": "object"},
                     "root_cause": {"type": "object", "required": ["template", "score"]},
                     "chain": {"type": "array", "items": {"type": "object"}},
                     "ranking": {"type": "array", "items": {"type": "object"}},
                     "status": {"type": "string"},
                     "recommendations": {"type": "array", "items": _ref("Recommendation")}}},
    "Channel": {"oneOf": [
        {"type": "object", "required": ["type", "url"], "additionalProperties": False, "properties": {
            "type": {"const": "webhook"},
            "url": {"type": "string", "maxLength": 2000, "pattern": _whole(WEBHOOK_PATTERN)}}},
        {"type": "object", "required": ["type", "to"], "additionalProperties": False, "properties": {
            "type": {"const": "email"},
            "to": {"type": "array", "minItems": 1, "maxItems": 20,
                   "items": {"type": "string", "pattern": _whole(EMAIL_PATTERN)}},
            "smtp": {"type": "string", "pattern": _whole(SMTP_PATTERN),
                     "description": "smtp://HOST:PORT, smtps://..., smtp+starttls://USER:PASS@HOST:PORT"},
            "from": {"type": "string", "pattern": _whole(EMAIL_PATTERN)}}}]},
    "AlertRuleInput": {"type": "object", "required": ["name", "threshold", "channels"], "additionalProperties": False,
                       "properties": {
                           "name": {"type": "string", "pattern": _whole(RULE_NAME)},
                           "metric": {"type": "string", "enum": list(METRICS)},
                           "threshold": NUM01,
                           "service": {"type": ["string", "null"], "minLength": 1, "maxLength": 128},
                           "cooldown_s": {"type": "number", "minimum": 0, "maximum": 2592000},
                           "enabled": {"type": "boolean"},
                           "channels": {"type": "array", "minItems": 1, "maxItems": 10, "items": _ref("Channel")}}},
    "AlertRule": {"type": "object", "required": ["rule_id", "name", "metric", "threshold", "channels"], "properties": {
        "rule_id": {"type": "string"}, "name": {"type": "string"}, "metric": {"type": "string"},
        "threshold": {"type": "number"}, "service": {"type": ["string", "null"]}, "cooldown_s": {"type": "number"},
        "enabled": {"type": "boolean"}, "created": {"type": ["string", "null"]},
        "channels": {"type": "array", "items": {"type": "object"}}}},
    "Firing": {"type": "object", "required": ["rule_id", "incident_id", "status"], "properties": {
        "rule_id": {"type": "string"}, "incident_id": {"type": "string"},
        "status": {"type": "string", "enum": ["sent", "failed", "suppressed", "muted"]},
        "value": {"type": "number"}, "service": {"type": "string"}}},
    "Token": {"type": "object", "required": ["token_id", "name", "role"], "properties": {
        "token_id": {"type": "string"}, "name": {"type": "string"}, "role": {"type": "string", "enum": list(ROLES)},
        "created": {"type": ["string", "null"]}}},
}

_PAGE = {"total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"}}
_DECISION_BODY = {"required": False, "content": {"application/json": {"schema": {
    "type": "object", "additionalProperties": False,
    "properties": {"reason": {"type": "string", "maxLength": 1000}}}}}}
_LINE = {"oneOf": [{"type": "string"}, {"type": "object"}]}


def openapi_document(config: WebConfig | None = None) -> dict[str, Any]:
    """The document served at /api/v1/openapi.json; limits are this server's (`config`)."""
    config = config or WebConfig()
    source = {"type": "string", "pattern": _whole(SOURCE_PATTERN)}
    max_lines = config.max_ingest_lines
    paths: dict[str, Any] = {
        "/health": {"get": _op("Liveness and version", _json({"type": "object", "required": ["status"]}, "OK"),
                               errors=(429,), open_=True, tag="meta")},
        "/stats": {"get": _op("Document counts", _json({"type": "object", "required": [
            "records", "templates", "incidents", "recommendations"]}, "Counts"))},
        "/search": {"get": _op(
            "Full-text search over annotated log records, newest first",
            _json({"type": "object", "required": ["total", "hits"],
                   "properties": {**_PAGE, "hits": {"type": "array", "items": _ref("LogRecord")}}}, "A page of hits"),
            params=[*FILTERS, LIMIT, OFFSET])},
        "/histogram": {"get": _op(
            "Matching records per time bucket (and per field)",
            _json({"type": "object", "required": ["interval_s", "buckets"], "properties": {
                "interval_s": {"type": "number"},
                "buckets": {"type": "array", "items": {"type": "object", "required": ["t", "count"]}}}}, "Buckets"),
            params=[*FILTERS, LIMIT, OFFSET, _q("by", {"type": "string", "enum": list(AGG_FIELDS)}, "group by"),
                    _q("interval", {"type": "number", "minimum": 1, "maximum": 31622400}, "bucket seconds")])},
        "/templates": {"get": _op(
            "Event templates, most frequent first",
            _json({"type": "object", "required": ["total", "templates"], "properties": {
                **_PAGE, "templates": {"type": "array", "items": _ref("Template")}}}, "A page of templates"),
            params=[LIMIT, OFFSET])},
        "/incidents": {"get": _op(
            "Incidents, highest anomaly score first, with their recommendations",
            _json({"type": "object", "required": ["total", "incidents"], "properties": {
                **_PAGE, "incidents": {"type": "array", "items": _ref("Incident")}}}, "A page of incidents"),
            params=[LIMIT, OFFSET, _q("min_score", NUM01, "only incidents scoring at least this")])},
        "/incidents/{incident_id}": {"get": _op(
            "One incident: ranking, fault chain (root cause first), recommendations",
            _json(_ref("Incident"), "The incident"), errors=(*READ_ERRORS, 404),
            params=[_path("incident_id")])},
        "/recommendations": {"get": _op(
            "Recommendations (of one incident when given)",
            _json({"type": "object", "required": ["total", "recommendations"], "properties": {
                "total": {"type": "integer"},
                "recommendations": {"type": "array", "items": _ref("Recommendation")}}}, "Recommendations"),
            params=[_q("incident", ID, "incident id"), LIMIT])},
        "/recommendations/{recommendation_id}/approve": {"post": _op(
            "Approve a recommendation (write role; audited)", _json(_ref("Recommendation"), "Updated"),
            errors=(400, 401, 403, 404, 413, 429, 503), params=[_path("recommendation_id")], body=_DECISION_BODY,
            tag="actions")},
        "/recommendations/{recommendation_id}/reject": {"post": _op(
            "Reject a recommendation (write role; audited)", _json(_ref("Recommendation"), "Updated"),
            errors=(400, 401, 403, 404, 413, 429, 503), params=[_path("recommendation_id")], body=_DECISION_BODY,
            tag="actions")},
        "/audit": {"get": _op(
            "Audit trail, newest first",
            _json({"type": "object", "required": ["entries"], "properties": {"entries": {"type": "array", "items": {
                "type": "object", "required": ["actor", "action"]}}}}, "Entries"), params=[LIMIT])},
        "/ingest": {"post": _op(
            "Send log lines through the pipeline (write role); JSON or NDJSON, size-limited",
            _json({"type": "object", "required": ["source", "lines", "records", "incidents"], "properties": {
                "source": {"type": "string"}, "lines": {"type": "integer"}, "records": {"type": "integer"},
                "templates": {"type": "integer"}, "incidents": {"type": "array", "items": {"type": "string"}},
                "alerts": {"type": "array", "items": _ref("Firing")}}}, "What was stored"),
            errors=(400, 401, 403, 413, 415, 429, 503),
            params=[_q("source", source, "source name (records get log.file.path api:NAME)")],
            body={"required": True, "content": {
                "application/json": {"schema": {"oneOf": [
                    {"type": "object", "required": ["lines"], "additionalProperties": False, "properties": {
                        "lines": {"type": "array", "maxItems": max_lines, "items": _LINE},
                        "source": source}},
                    {"type": "array", "maxItems": max_lines, "items": _LINE}]}},
                "application/x-ndjson": {"schema": {
                    "type": "array", "maxItems": max_lines, "items": _LINE,
                    "description": "the lines as NDJSON: one JSON string (a raw log line) or object (a JSON log "
                                   "record) per line; source from the query"}}}},
            tag="actions")},
        "/dashboards": {"get": _op(
            "Dashboard specs (the Vega-Lite specs shared with Kibana / OSD)",
            _json({"type": "object", "required": ["dashboards"]}, "Spec ids"), tag="dashboards")},
        "/dashboards/{name}": {"get": _op(
            "One Vega-Lite spec with its named datasets filled from the store",
            _json({"type": "object", "required": ["datasets"]}, "Vega-Lite spec"), errors=(*READ_ERRORS, 404),
            params=[_path("name", {"type": "string", "pattern": r"^[a-z_]{1,64}$"}),
                    _q("incident", ID, "incident id (for incident_timeline)")], tag="dashboards")},
        "/alerts/rules": {
            "get": _op("Alert rules", _json({"type": "object", "required": ["rules"], "properties": {
                "rules": {"type": "array", "items": _ref("AlertRule")}}}, "Rules"), tag="alerts"),
            "post": _op("Add an alert rule (admin)", _json(_ref("AlertRule"), "Created"), status="201",
                        errors=(400, 401, 403, 413, 415, 429, 503), tag="alerts",
                        body={"required": True, "content": {"application/json": {"schema": _ref("AlertRuleInput")}}}),
        },
        "/alerts/rules/{rule_id}": {
            "get": _op("One alert rule", _json(_ref("AlertRule"), "The rule"), errors=(*READ_ERRORS, 404),
                       params=[_path("rule_id")], tag="alerts"),
            "delete": _op("Delete an alert rule (admin)", _json({"type": "object", "required": ["deleted"]}, "Gone"),
                          errors=(400, 401, 403, 404, 429, 503), params=[_path("rule_id")], tag="alerts"),
        },
        "/alerts/rules/{rule_id}/test": {"post": _op(
            "Send a test notification on every channel of a rule (admin)",
            _json({"type": "object", "required": ["results"]}, "One result per channel"),
            errors=(400, 401, 403, 404, 429, 503), params=[_path("rule_id")], tag="alerts")},
        "/alerts/check": {"post": _op(
            "Evaluate every rule against the incidents now (write role)",
            _json({"type": "object", "required": ["firings"], "properties": {
                "firings": {"type": "array", "items": _ref("Firing")}}}, "New firings"),
            errors=(400, 401, 403, 429, 503), tag="alerts")},
        "/tokens": {
            "get": _op("API tokens (admin; never the secrets)", _json({"type": "object", "required": ["tokens"],
                       "properties": {"tokens": {"type": "array", "items": _ref("Token")}}}, "Tokens"),
                       tag="tokens"),
            "post": _op("Create a token (admin); the secret is in this answer only",
                        _json({"allOf": [_ref("Token"), {"type": "object", "required": ["token"]}]}, "Created"),
                        status="201", errors=(400, 401, 403, 413, 415, 429, 503), tag="tokens",
                        body={"required": True, "content": {"application/json": {"schema": {
                            "type": "object", "required": ["role"], "additionalProperties": False, "properties": {
                                "role": {"type": "string", "enum": list(ROLES)},
                                "name": {"type": "string", "pattern": _whole(TOKEN_NAME)}}}}}}),
        },
        "/tokens/{token_id}": {"delete": _op(
            "Revoke a token (admin)", _json({"type": "object", "required": ["revoked"]}, "Revoked"),
            errors=(400, 401, 403, 404, 429, 503), params=[_path("token_id", {"type": "string",
                                                                              "pattern": "^[0-9a-f]{12}$"})],
            tag="tokens")},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "LLM-ID API", "version": __version__,
                 "description": "Search annotated logs, read incidents with their fault chain and recommendations, "
                                "approve or reject them, ingest lines, manage alert rules and tokens. "
                                "Authenticate with Authorization: Bearer TOKEN (llmid token create)."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
    }
