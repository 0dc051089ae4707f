"""The Flask app factory: store access, authentication, CSRF, limits and error pages shared by pages and API.

Every request is authenticated once here (bearer token, else browser session, else anonymous), rate limited
per client, and refused early when its body is too big. Errors never show a stack trace: API paths answer
`{"error": {"code", "message"}}`, pages an error page, and unexpected exceptions are logged with an id.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request, session
from werkzeug.exceptions import HTTPException

from llmid import __version__
from llmid.errors import LlmidError, StoreError
from llmid.plugin.webapp import tokens
from llmid.plugin.webapp.config import WebConfig
from llmid.plugin.webapp.limits import RateLimiter
from llmid.store import open_store
from llmid.store.base import Store

log = logging.getLogger("llmid.webapp")
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECRET_KIND = "webapp"


@dataclass(slots=True)
class Identity:
    """Who is calling: `role` is None for an anonymous caller; `via` is bearer, session or anonymous."""

    name: str
    role: str | None
    token_id: str | None
    via: str

    def can(self, role: str) -> bool:
        return self.role is not None and tokens.RANK[self.role] >= tokens.RANK[role]


class Stores:
    """A shared Store object, or one store per thread opened from a URL (SQLite readers then run in parallel
    instead of queueing on one connection's lock)."""

    def __init__(self, store: Store | str) -> None:
        self.shared = store if isinstance(store, Store) else None
        self.url = store.url if isinstance(store, Store) else store
        self._local = threading.local()

    def get(self) -> Store:
        if self.shared is not None:
            return self.shared
        st = getattr(self._local, "store", None)
        if st is None:
            st = self._local.store = open_store(self.url)
        return st


class AppState:
    def __init__(self, store: Store | str, config: WebConfig) -> None:
        self.stores = Stores(store)
        self.config = config
        self.limiter = RateLimiter(config.rate_per_minute, config.rate_burst)
        self.ingest_lock = threading.Lock()
        self.cache: dict[str, tuple[float, Any]] = {}


def state() -> AppState:
    from flask import current_app

    return current_app.extensions["llmid"]


def store() -> Store:
    return state().stores.get()


def is_api() -> bool:
    return request.path.startswith("/api/")


def _secret(st: Store, config: WebConfig) -> str:
    """The session-signing key: configured, else kept in the store (sessions survive restarts), else random."""
    if config.secret_key:
        return config.secret_key
    try:
        doc = st.get_object(SECRET_KIND, "session_secret")
        if doc is None:
            st.put_object(SECRET_KIND, "session_secret", {"secret": secrets.token_hex(32)})
            doc = st.get_object(SECRET_KIND, "session_secret")
    except StoreError:
        doc = None
    return str(doc["secret"]) if doc else secrets.token_hex(32)


def csrf_token() -> str:
    """The session's CSRF token (made on first use); forms carry it, and so does X-CSRF-Token from scripts."""
    tok = session.get("csrf")
    if not tok:
        tok = session["csrf"] = secrets.token_urlsafe(32)
    return str(tok)


def error_response(code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    if is_api():
        resp = jsonify({"error": {"code": code, "message": message}})
    else:
        try:
            resp = Response(render_template("error.html", code=code, message=message), mimetype="text/html")
        except Exception:  # noqa: BLE001 - the error page itself failed: plain text, still no trace
            log.exception("cannot render the error page")
            resp = Response(f"Error {code}: {message}\n", mimetype="text/plain")
    resp.status_code = code
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _authenticate() -> Identity | Response:
    st = store()
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        doc = tokens.lookup(st, value.strip()) if scheme.lower() == "bearer" else None
        if doc is None:
            return error_response(401, "The token is not valid.", {"WWW-Authenticate": 'Bearer realm="llmid"'})
        return Identity(doc["name"], doc["role"], doc["token_id"], "bearer")
    digest = session.get("tid")
    if digest:
        doc = tokens.by_digest(st, digest)
        if doc is not None:
            return Identity(doc["name"], doc["role"], doc["token_id"], "session")
        session.pop("tid", None)  # revoked since login
    return Identity("anonymous", "read" if state().config.public_read else None, None, "anonymous")


def _check_csrf(ident: Identity) -> Response | None:
    """Cookies ride along on cross-site requests, bearer headers do not: only cookie-carried (session and
    login) requests need the token."""
    if request.method not in UNSAFE or ident.via == "bearer":
        return None
    if ident.via == "anonymous" and request.endpoint != "pages.login":
        return None  # refused by the role check with 401, which says more than a CSRF error would
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not sent or not hmac.compare_digest(str(sent), str(expected)):
        return error_response(400, "The form has expired or its CSRF token is missing; reload the page and retry.")
    return None


def create_app(store_or_url: Store | str | None = None, config: WebConfig | None = None) -> Flask:
    """Build the app. `store_or_url` defaults to the configured store (`config.settings.store`)."""
    config = config or WebConfig()
    target = store_or_url if store_or_url is not None else config.settings.store
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.extensions["llmid"] = st = AppState(target, config)
    app.config.update(
        MAX_CONTENT_LENGTH=config.max_body_bytes,
        MAX_FORM_MEMORY_SIZE=min(config.max_body_bytes, 500_000),
        SECRET_KEY=_secret(st.stores.get(), config),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="llmid_session",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        PROPAGATE_EXCEPTIONS=False,
        TRAP_HTTP_EXCEPTIONS=False,
        JSON_SORT_KEYS=False,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.jinja_env.globals.update(csrf_token=csrf_token, version=__version__)
    from llmid.plugin.webapp import views

    views.register_filters(app)

    @app.before_request
    def _before() -> Response | None:
        if request.endpoint == "static":
            return None
        ident = _authenticate()
        if isinstance(ident, Response):
            allowed, wait = state().limiter.allow("addr:" + (request.remote_addr or "?"))
            if not allowed:
                return error_response(429, "Too many requests; slow down.", {"Retry-After": str(int(wait) + 1)})
            return ident
        g.identity = ident
        key = f"token:{ident.token_id}" if ident.token_id else "addr:" + (request.remote_addr or "?")
        allowed, wait = state().limiter.allow(key)
        if not allowed:
            return error_response(429, "Too many requests; slow down.", {"Retry-After": str(int(wait) + 1)})
        return _check_csrf(ident)

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        if resp.mimetype == "text/html":
            # Everything is served from here (vendored scripts): nothing may load from elsewhere.
            resp.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                "script-src 'self' 'unsafe-eval'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
            )
        return resp

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        code = err.code or 500
        messages = {
            400: "The request is malformed.",
            404: "Not found.",
            405: "This method is not allowed here.",
            413: f"The request body is larger than {config.max_body_bytes} bytes.",
            415: "Unsupported content type.",
        }
        desc = err.description if getattr(err, "llmid_message", False) else messages.get(code, err.name + ".")
        headers = {"Allow": ", ".join(err.valid_methods)} if code == 405 and getattr(err, "valid_methods", None) \
            else None
        return error_response(code, str(desc), headers)

    @app.errorhandler(LlmidError)
    def _user_error(err: LlmidError) -> Response:
        if isinstance(err, StoreError):
            log.warning("store error on %s %s: %s", request.method, request.path, err)
            return error_response(503, "The store cannot answer right now.")
        return error_response(400, str(err))

    @app.errorhandler(Exception)
    def _bug(err: Exception) -> Response:
        ref = uuid.uuid4().hex[:12]
        log.error("unhandled error %s on %s %s", ref, request.method, request.path, exc_info=err)
        return error_response(500, f"Internal error (reference {ref}); the server log has the details.")

    from llmid.plugin.webapp.api import api
    from llmid.plugin.webapp.pages import pages

    app.register_blueprint(api)
    app.register_blueprint(pages)
    return app


def bad_request(message: str, code: int = 400) -> HTTPException:
    """An HTTPException whose own message is shown (the generic handler shows stock text otherwise)."""
    err = HTTPException(description=message)
    err.code = code
    err.llmid_message = True  # type: ignore[attr-defined]
    return err
