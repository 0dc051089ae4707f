"""REST API under /api/v1 (documented in openapi.py; the two are tested against each other by schemathesis).

Roles: read for GETs (open without a token only with `--public-read`), write for ingest and approvals, admin
for alert rules and tokens. Every answer is JSON; errors are `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, g, jsonify, request

from llmid import __version__
from llmid.errors import ConfigError
from llmid.plugin import alerts
from llmid.plugin.webapp import dashboards, tokens
from llmid.plugin.webapp.app import bad_request, error_response, state, store
from llmid.plugin.webapp.ingest import IngestError, ingest_lines, lines_from_json, lines_from_ndjson
from llmid.plugin.webapp.openapi import openapi_document
from llmid.plugin.webapp.views import BadInput, float_arg, id_arg, int_arg, parse_query
from llmid.store.base import AGG_FIELDS

api = Blueprint("api", __name__, url_prefix="/api/v1")
F = TypeVar("F", bound=Callable[..., Any])


def requires(role: str) -> Callable[[F], F]:
    """401 for a caller without a usable identity, 403 for one whose role is too low."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            ident = g.identity
            if not ident.can(role):
                if ident.via == "anonymous":
                    return error_response(401, "A token is required: send Authorization: Bearer TOKEN.",
                                          {"WWW-Authenticate": 'Bearer realm="llmid"'})
                return error_response(403, f"This needs the {role} role; the token has {ident.role}.")
            try:
                return fn(*args, **kwargs)
            except (BadInput, IngestError, ConfigError) as e:
                return error_response(400, str(e))

        return inner  # type: ignore[return-value]

    return wrap


def _no_unknown(allowed: set[str]) -> None:
    extra = sorted(set(request.args) - allowed)
    if extra:
        raise BadInput(f"Unknown query parameter {extra[0]!r}.")


def _json_body() -> Any:
    if not request.is_json:
        raise bad_request("The body must be JSON (Content-Type: application/json).", 415)
    body = request.get_json(silent=True)
    if body is None:
        raise BadInput("The body is not valid JSON.")
    return body


@api.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document(state().config))


@api.get("/health")
def health() -> Response:
    return jsonify({"status": "ok", "version": __version__})


@api.get("/stats")
@requires("read")
def stats() -> Response:
    return jsonify(store().stats())


_SEARCH_ARGS = {"q", "level", "service", "template", "incident", "since", "until", "limit", "offset"}


@api.get("/search")
@requires("read")
def search() -> Response:
    _no_unknown(_SEARCH_ARGS)
    q = parse_query(request.args, state().config.page_size)
    page = store().search(q)
    return jsonify({"total": page.total, "limit": q.limit, "offset": q.offset, "hits": page.hits})


@api.get("/histogram")
@requires("read")
def histogram() -> Response:
    _no_unknown(_SEARCH_ARGS | {"by", "interval"})
    q = parse_query(request.args, 50)
    by = request.args.get("by")
    if by is not None and by not in AGG_FIELDS:
        raise BadInput(f"by must be one of {', '.join(AGG_FIELDS)}.")
    interval = float_arg(request.args, "interval", 0.0, 1.0, 31_622_400.0) if "interval" in request.args else None
    return jsonify(store().histogram(q, interval, by=by))


@api.get("/templates")
@requires("read")
def templates() -> Response:
    _no_unknown({"limit", "offset"})
    limit = int_arg(request.args, "limit", 100, 0, 1000)
    offset = int_arg(request.args, "offset", 0, 0, 1_000_000)
    page = store().templates(limit=limit, offset=offset)
    return jsonify({"total": page.total, "limit": limit, "offset": offset, "templates": page.hits})


@api.get("/incidents")
@requires("read")
def incidents() -> Response:
    _no_unknown({"limit", "offset", "min_score"})
    limit = int_arg(request.args, "limit", 100, 0, 1000)
    offset = int_arg(request.args, "offset", 0, 0, 1_000_000)
    min_score = float_arg(request.args, "min_score", 0.0, 0.0, 1.0)
    page = store().incidents(limit=limit, offset=offset, min_score=min_score)
    return jsonify({"total": page.total, "limit": limit, "offset": offset, "incidents": page.hits})


@api.get("/incidents/<incident_id>")
@requires("read")
def incident(incident_id: str) -> Response:
    doc = store().get_incident(incident_id) if len(incident_id) <= 128 else None
    if doc is None:
        return error_response(404, f"No incident {incident_id[:128]!r}.")
    return jsonify(doc)


@api.get("/recommendations")
@requires("read")
def recommendations() -> Response:
    _no_unknown({"incident", "limit"})
    limit = int_arg(request.args, "limit", 100, 0, 1000)
    page = store().recommendations(incident_id=id_arg(request.args, "incident"), limit=limit)
    return jsonify({"total": page.total, "recommendations": page.hits})


def _decide(recommendation_id: str, status: str) -> Response:
    body = request.get_json(silent=True) if request.data else {}
    if body is None or not isinstance(body, dict) or set(body) - {"reason"}:
        raise BadInput('The body must be empty or {"reason": "..."}.')
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 1000):
        raise BadInput("reason must be a string of at most 1000 characters.")
    st = store()
    if len(recommendation_id) > 128 or st.get_recommendation(recommendation_id) is None:
        return error_response(404, f"No recommendation {recommendation_id[:128]!r}.")
    doc = st.set_recommendation_status(recommendation_id, status, actor=_actor(), reason=reason)
    settings = state().config.settings
    if status == "approved" and settings.execute:  # execution hooks run only when switched on explicitly
        from llmid.plugin.executors import execute_recommendation

        doc = dict(doc)
        doc["execution"] = execute_recommendation(st, recommendation_id, settings, actor=_actor())
    return jsonify(doc)


def _actor() -> str:
    ident = g.identity
    return f"{ident.name} ({ident.token_id})" if ident.token_id else ident.name


@api.post("/recommendations/<recommendation_id>/approve")
@requires("write")
def approve(recommendation_id: str) -> Response:
    return _decide(recommendation_id, "approved")


@api.post("/recommendations/<recommendation_id>/reject")
@requires("write")
def reject(recommendation_id: str) -> Response:
    return _decide(recommendation_id, "rejected")


@api.get("/audit")
@requires("read")
def audit() -> Response:
    _no_unknown({"limit"})
    limit = int_arg(request.args, "limit", 100, 0, 1000)
    return jsonify({"entries": store().audit(limit=limit)})


@api.post("/ingest")
@requires("write")
def ingest() -> tuple[Response, int]:
    _no_unknown({"source"})
    cfg = state().config
    mime = request.mimetype
    if mime == "application/json":
        body = request.get_json(silent=True)
        if body is None:
            raise BadInput("The body is not valid JSON.")
        lines, source = lines_from_json(body)
    elif mime in ("application/x-ndjson", "application/ndjson", "application/jsonl"):
        try:
            text = request.get_data(as_text=False).decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput("The NDJSON body is not valid UTF-8.") from None
        lines, source = lines_from_ndjson(text), None
    else:
        raise bad_request("Send application/json or application/x-ndjson.", 415)
    query_source = request.args.get("source")
    source = query_source if query_source is not None else (source if source is not None else "default")
    if len(lines) > cfg.max_ingest_lines:
        raise BadInput(f"At most {cfg.max_ingest_lines} lines per request.")
    st = store()
    result = ingest_lines(st, cfg.settings, lines, source, state().ingest_lock)
    if result["incidents"]:
        found = [st.get_incident(i) for i in result["incidents"]]
        result["alerts"] = alerts.evaluate(st, send=cfg.notify, base_url=cfg.base_url,
                                           incidents=[i for i in found if i])
    else:
        result["alerts"] = []
    return jsonify(result), 200


@api.get("/dashboards")
@requires("read")
def dashboard_list() -> Response:
    from llmid.kibana_vis import specs

    return jsonify({"dashboards": [{"id": n, "title": specs.SPECS[n].get("title")} for n in specs.OVERVIEW]})


@api.get("/dashboards/<name>")
@requires("read")
def dashboard(name: str) -> Response:
    from llmid.kibana_vis import specs

    _no_unknown({"incident"})
    incident_id = id_arg(request.args, "incident")
    if name not in specs.SPECS:
        return error_response(404, f"No dashboard {name[:64]!r}.")
    return jsonify(dashboards.filled(store(), name, incident_id))


# -- alert rules (admin) --------------------------------------------------------------------------------------------

@api.get("/alerts/rules")
@requires("read")
def rules() -> Response:
    return jsonify({"rules": [alerts.public_rule(r) for r in alerts.list_rules(store())]})


@api.post("/alerts/rules")
@requires("admin")
def add_rule() -> tuple[Response, int]:
    body = _json_body()
    if isinstance(body, dict) and "rule_id" in body:
        raise BadInput("rule_id is assigned by the server.")
    rule = alerts.AlertRule.from_doc(body)
    doc = alerts.add_rule(store(), rule)
    store().record_audit(_actor(), "alert_rule.add", rule.rule_id, {"name": rule.name})
    return jsonify(alerts.public_rule(doc)), 201


@api.get("/alerts/rules/<rule_id>")
@requires("read")
def get_rule(rule_id: str) -> Response:
    doc = alerts.get_rule(store(), rule_id)
    if doc is None:
        return error_response(404, "No such alert rule.")
    return jsonify(alerts.public_rule(doc))


@api.delete("/alerts/rules/<rule_id>")
@requires("admin")
def delete_rule(rule_id: str) -> Response:
    if not alerts.delete_rule(store(), rule_id):
        return error_response(404, "No such alert rule.")
    store().record_audit(_actor(), "alert_rule.delete", rule_id, {})
    return jsonify({"deleted": rule_id})


@api.post("/alerts/rules/<rule_id>/test")
@requires("admin")
def test_rule(rule_id: str) -> Response:
    if alerts.get_rule(store(), rule_id) is None:
        return error_response(404, "No such alert rule.")
    cfg = state().config
    return jsonify({"results": alerts.send_test(store(), rule_id, cfg.base_url, send=cfg.notify)})


@api.post("/alerts/check")
@requires("write")
def check_alerts() -> Response:
    cfg = state().config
    return jsonify({"firings": alerts.evaluate(store(), send=cfg.notify, base_url=cfg.base_url)})


# -- tokens (admin) -------------------------------------------------------------------------------------------------

@api.get("/tokens")
@requires("admin")
def token_list() -> Response:
    return jsonify({"tokens": tokens.list_tokens(store())})


@api.post("/tokens")
@requires("admin")
def token_create() -> tuple[Response, int]:
    body = _json_body()
    if not isinstance(body, dict) or set(body) - {"role", "name"} or "role" not in body:
        raise BadInput('The body must be {"role": "read|write|admin", "name": "..."}.')
    role, name = body.get("role"), body.get("name")
    if not isinstance(role, str) or ("name" in body and not isinstance(name, str)):
        raise BadInput("role and name must be strings.")
    secret, doc = tokens.create_token(store(), role, name)
    store().record_audit(_actor(), "token.create", doc["token_id"], {"role": role, "name": doc["name"]})
    return jsonify({**doc, "token": secret}), 201


@api.delete("/tokens/<token_id>")
@requires("admin")
def token_revoke(token_id: str) -> Response:
    if not tokens.revoke(store(), token_id):
        return error_response(404, "No such token.")
    store().record_audit(_actor(), "token.revoke", token_id, {})
    return jsonify({"revoked": token_id})
