"""Server-rendered pages: search, templates, incidents (ranking, chain graph, timeline, evidence),
recommendations (approve / reject with audit), dashboards, alert rules, login.

Plain HTML forms with CSRF tokens; the only scripts are the vendored vega-embed for charts, so every page
works (minus charts) without JavaScript and nothing is fetched from outside.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, g, redirect, render_template, request, session, url_for

from llmid.plugin import alerts
from llmid.plugin.webapp import dashboards, tokens
from llmid.plugin.webapp.app import error_response, state, store
from llmid.plugin.webapp.views import BadInput, chain_layout, int_arg, parse_query, query_args, sparkline
from llmid.store.base import SearchQuery, Store

pages = Blueprint("pages", __name__)
F = TypeVar("F", bound=Callable[..., Any])
FACET_TTL_S = 30.0
EVIDENCE_EVENTS = 5
EVIDENCE_LINES = 12


def page_requires(role: str) -> Callable[[F], F]:
    """Anonymous visitors go to the login page (and come back); a too-low role gets a 403 page."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            ident = g.identity
            if not ident.can(role):
                if ident.role is None or ident.via == "anonymous":
                    return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))
                return error_response(403, f"This needs the {role} role; you are signed in as {ident.role}.")
            try:
                return fn(*args, **kwargs)
            except BadInput as e:
                return error_response(400, str(e))

        return inner  # type: ignore[return-value]

    return wrap


def _cached(key: str, make: Callable[[], Any]) -> Any:
    """Slow-changing lists (filter choices) are recomputed at most every FACET_TTL_S seconds."""
    cache = state().cache
    hit = cache.get(key)
    now = time.monotonic()
    if hit is not None and now - hit[0] < FACET_TTL_S:
        return hit[1]
    value = make()
    cache[key] = (now, value)
    return value


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths (no open redirect to another host)."""
    if not target:
        return url_for("pages.incidents")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("pages.incidents")
    return target


@pages.get("/")
def index() -> Response:
    return redirect(url_for("pages.incidents"))  # type: ignore[return-value]


@pages.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    if request.method == "POST":
        doc = tokens.lookup(store(), request.form.get("token", "").strip())
        if doc is not None:
            session.clear()
            session.permanent = True
            session["tid"] = doc["_id"]
            session["csrf"] = None  # a fresh CSRF token after login
            store().record_audit(f"{doc['name']} ({doc['token_id']})", "session.login", doc["token_id"], {})
            return redirect(_safe_next(request.form.get("next")))
        error = "That token is not valid."
    return render_template("login.html", error=error, next=request.values.get("next", "")), 401 if error else 200


@pages.post("/logout")
def logout() -> Response:
    session.clear()
    return redirect(url_for("pages.login"))  # type: ignore[return-value]


@pages.get("/search")
@page_requires("read")
def search() -> str:
    cfg = state().config
    q = parse_query(request.args, cfg.page_size, forms=True)
    q.limit = min(q.limit or cfg.page_size, 200)
    st = store()
    page = st.search(q)
    levels = _cached("levels", lambda: [f["key"] for f in st.facet("level", size=20) if f["key"]])
    services = _cached("services", lambda: [f["key"] for f in st.facet("service", size=200) if f["key"]])
    args = {**query_args(q), "since": request.args.get("since") or None, "until": request.args.get("until") or None}
    args = {k: v for k, v in args.items() if v}
    prev_offset = max(0, q.offset - q.limit) if q.offset > 0 else None
    next_offset = q.offset + q.limit if q.offset + q.limit < page.total else None
    return render_template("search.html", page=page, q=q, args=args, levels=levels, services=services,
                           prev_offset=prev_offset, next_offset=next_offset)


@pages.get("/templates")
@page_requires("read")
def templates() -> str:
    st = store()
    offset = int_arg(request.args, "offset", 0, 0, 1_000_000)
    page = st.templates(limit=100, offset=offset)
    hist = _cached("template_hist", lambda: st.histogram(None, None, by="template_id"))
    starts = sorted({b["t"] for b in hist["buckets"]})
    index = {t: i for i, t in enumerate(starts)}
    series: dict[str, list[int]] = {}
    for b in hist["buckets"]:
        series.setdefault(b["key"], [0] * len(starts))[index[b["t"]]] = b["count"]
    rows = [{"t": t, "spark": sparkline(series.get(t["template_id"], []))} for t in page.hits]
    return render_template("templates.html", page=page, rows=rows, offset=offset,
                           span=(starts[0], starts[-1]) if starts else None, interval=hist["interval_s"])


@pages.get("/incidents")
@page_requires("read")
def incidents() -> str:
    page = store().incidents(limit=200)
    return render_template("incidents.html", page=page)


def _evidence(st: Store, inc: dict[str, Any]) -> list[dict[str, Any]]:
    """Records of the top-ranked events inside the incident window (the lines the ranking rests on)."""
    out = []
    for ev in inc.get("ranking", [])[:EVIDENCE_EVENTS]:
        hits = st.search(SearchQuery(incident_id=inc["incident_id"], template_id=ev["template_id"],
                                     limit=EVIDENCE_LINES)).hits
        hits.sort(key=lambda h: (h.get("event") or {}).get("sequence") or 0)
        out.append({"event": ev, "hits": hits})
    return out


@pages.get("/incidents/<incident_id>")
@page_requires("read")
def incident(incident_id: str) -> Any:
    st = store()
    inc = st.get_incident(incident_id) if len(incident_id) <= 128 else None
    if inc is None:
        abort(404)
    timeline = dashboards.filled(st, "incident_timeline", inc["incident_id"])
    # The ranked events only, in rank order: the timeline shows how the candidates unfolded.
    order = list(dict.fromkeys(e["template"][:90] for e in inc.get("ranking", [])))
    events = timeline["datasets"]["incident_events"]
    timeline["datasets"]["incident_events"] = [e for e in events if e["template"] in order] or events
    timeline["encoding"]["y"]["sort"] = order or None
    return render_template("incident.html", inc=inc, chain=chain_layout(inc.get("chain", [])),
                           evidence=_evidence(st, inc), timeline=timeline,
                           audit=[a for a in st.audit(limit=200)
                                  if (a.get("details") or {}).get("incident_id") == inc["incident_id"]])


@pages.get("/recommendations")
@page_requires("read")
def recommendations() -> str:
    st = store()
    recs = st.recommendations(limit=500)
    trail = [a for a in st.audit(limit=100) if a["action"].startswith("recommendation.")]
    return render_template("recommendations.html", recs=recs, audit=trail)


@pages.post("/recommendations/<recommendation_id>/<decision>")
@page_requires("write")
def decide(recommendation_id: str, decision: str) -> Any:
    status = {"approve": "approved", "reject": "rejected"}.get(decision)
    st = store()
    if status is None or len(recommendation_id) > 128 or st.get_recommendation(recommendation_id) is None:
        abort(404)
    reason = (request.form.get("reason") or "").strip()[:1000] or None
    ident = g.identity
    doc = st.set_recommendation_status(recommendation_id, status, actor=f"{ident.name} ({ident.token_id})",
                                       reason=reason)
    return redirect(_safe_next(request.form.get("next")) if request.form.get("next")
                    else url_for("pages.incident", incident_id=doc["incident_id"]) + "#recommendations")


@pages.get("/dashboards")
@page_requires("read")
def dashboard() -> str:
    return render_template("dashboards.html", charts=dashboards.overview(store()))


@pages.get("/alerts")
@page_requires("read")
def alert_rules() -> str:
    st = store()
    rules = [alerts.public_rule(r) for r in alerts.list_rules(st)]
    fired = [a for a in st.audit(limit=200) if a["action"].startswith("alert.")][:50]
    return render_template("alerts.html", rules=rules, fired=fired)


@pages.get("/favicon.ico")
def favicon() -> Response:
    return redirect(url_for("static", filename="favicon.svg"), 301)  # type: ignore[return-value]
