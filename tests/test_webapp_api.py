"""REST API and pages through Flask's test client over a store analysed from a simulator scenario: auth and
roles, CSRF, size / rate limits, malformed bodies, no stack traces, ingest, approvals with audit, alert rules,
tokens, dashboards filled from the shared Vega-Lite specs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from webapp_support import analysed_store, make_tokens

from llmid.kibana_vis import specs
from llmid.plugin.webapp import create_app
from llmid.plugin.webapp.config import WebConfig
from llmid.store.sqlite import SQLiteStore


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    url, log = analysed_store(tmp_path_factory.mktemp("api"))
    return {"url": url, "log": log, "tokens": make_tokens(url)}


def app_for(env: dict[str, Any], **cfg: Any) -> Flask:
    cfg.setdefault("notify", False)
    return create_app(env["url"], WebConfig(**cfg))


@pytest.fixture(scope="module")
def client(env: dict[str, Any]) -> FlaskClient:
    return app_for(env).test_client()


def auth(env: dict[str, Any], role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {env['tokens'][role]}"}


def error_of(resp: Any) -> str:
    body = resp.get_json()
    assert set(body) == {"error"} and body["error"]["code"] == resp.status_code, body
    return str(body["error"]["message"])


# -- auth -----------------------------------------------------------------------------------------------------

def test_read_endpoints_need_a_token(env: dict[str, Any], client: FlaskClient) -> None:
    for path in ("/api/v1/stats", "/api/v1/search", "/api/v1/incidents", "/api/v1/templates",
                 "/api/v1/recommendations", "/api/v1/alerts/rules", "/api/v1/dashboards"):
        r = client.get(path)
        assert r.status_code == 401, path
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert "token" in error_of(r).lower()
    assert client.get("/api/v1/health").status_code == 200
    assert client.get("/api/v1/openapi.json").status_code == 200
    r = client.get("/api/v1/stats", headers={"Authorization": "Bearer llmid_not-a-real-token-000000000000"})
    assert r.status_code == 401
    r = client.get("/api/v1/stats", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401
    assert client.get("/api/v1/stats", headers=auth(env, "read")).get_json()["incidents"] >= 1


def test_roles(env: dict[str, Any], client: FlaskClient) -> None:
    rec = client.get("/api/v1/recommendations", headers=auth(env, "read")).get_json()["recommendations"][0]
    r = client.post(f"/api/v1/recommendations/{rec['_id']}/approve", headers=auth(env, "read"))
    assert r.status_code == 403 and "write" in error_of(r)
    r = client.post("/api/v1/ingest", headers=auth(env, "read"), json={"lines": ["x"]})
    assert r.status_code == 403
    rule = {"name": "r", "threshold": 0.5, "channels": [{"type": "webhook", "url": "http://127.0.0.1:9/x"}]}
    assert client.post("/api/v1/alerts/rules", headers=auth(env, "write"), json=rule).status_code == 403
    assert client.get("/api/v1/tokens", headers=auth(env, "write")).status_code == 403
    assert client.get("/api/v1/tokens", headers=auth(env, "admin")).status_code == 200
    # without a token a write endpoint says 401, not 403
    assert client.post("/api/v1/ingest", json={"lines": ["x"]}).status_code == 401


def test_public_read_opens_reads_only(env: dict[str, Any]) -> None:
    c = app_for(env, public_read=True).test_client()
    assert c.get("/api/v1/incidents").status_code == 200
    assert c.get("/incidents").status_code == 200
    assert c.post("/api/v1/ingest", json={"lines": ["x"]}).status_code == 401
    assert c.get("/api/v1/tokens").status_code == 401


def test_revoked_token_stops_working(env: dict[str, Any], client: FlaskClient) -> None:
    r = client.post("/api/v1/tokens", headers=auth(env, "admin"), json={"role": "read", "name": "temp"})
    assert r.status_code == 201
    made = r.get_json()
    assert made["token"].startswith("llmid_") and made["role"] == "read"
    h = {"Authorization": f"Bearer {made['token']}"}
    assert client.get("/api/v1/stats", headers=h).status_code == 200
    listed = client.get("/api/v1/tokens", headers=auth(env, "admin")).get_json()["tokens"]
    assert made["token_id"] in {t["token_id"] for t in listed}
    assert all("token" not in t and "hash" not in t for t in listed)
    assert client.delete(f"/api/v1/tokens/{made['token_id']}", headers=auth(env, "admin")).status_code == 200
    assert client.get("/api/v1/stats", headers=h).status_code == 401
    with SQLiteStore.from_url(env["url"]) as st:  # only the hash is stored
        raw = json.dumps(st.list_objects("api_token"))
    assert made["token"] not in raw and env["tokens"]["admin"] not in raw


# -- limits and malformed input ---------------------------------------------------------------------------------

def test_oversized_and_malformed_bodies(env: dict[str, Any]) -> None:
    c = app_for(env, max_body_bytes=4096, max_ingest_lines=5).test_client()
    h = auth(env, "write")
    r = c.post("/api/v1/ingest", headers=h, json={"lines": ["x" * 100] * 60})
    assert r.status_code == 413 and "4096" in error_of(r)
    r = c.post("/api/v1/ingest", headers=h, json={"lines": ["a"] * 6})
    assert r.status_code == 400 and "5 lines" in error_of(r)
    r = c.post("/api/v1/ingest", headers={**h, "Content-Type": "application/json"}, data=b'{"lines": [')
    assert r.status_code == 400 and "not valid JSON" in error_of(r)
    r = c.post("/api/v1/ingest", headers=h, json={"lines": [1, 2]})
    assert r.status_code == 400 and "Item 1" in error_of(r)
    r = c.post("/api/v1/ingest", headers=h, json={"lines": ["ok"], "extra": 1})
    assert r.status_code == 400
    r = c.post("/api/v1/ingest", headers={**h, "Content-Type": "application/x-ndjson"}, data=b'"ok"\n{bad\n')
    assert r.status_code == 400 and "Line 2" in error_of(r)
    r = c.post("/api/v1/ingest", headers={**h, "Content-Type": "text/csv"}, data=b"a,b")
    assert r.status_code == 415
    r = c.post("/api/v1/ingest", headers={**h, "Content-Type": "application/x-ndjson"}, data=b"\xff\xfe")
    assert r.status_code == 400
    admin = auth(env, "admin")
    r = c.post("/api/v1/alerts/rules", headers=admin, json={"name": "x", "threshold": 7, "channels": []})
    assert r.status_code == 400 and "threshold" in error_of(r)
    r = c.post("/api/v1/alerts/rules", headers=admin, data="nope", content_type="text/plain")
    assert r.status_code == 415
    for path in ("/api/v1/search?limit=-1", "/api/v1/search?limit=abc", "/api/v1/search?since=yesterdayish",
                 "/api/v1/search?bogus=1", "/api/v1/incidents?min_score=2", "/api/v1/histogram?by=message",
                 "/api/v1/search?since=2026-13-45", "/api/v1/search?limit=", "/api/v1/search?incident=",
                 "/api/v1/search?template=" + "x" * 200):
        r = c.get(path, headers=h)
        assert r.status_code == 400, path
        error_of(r)


def test_rate_limit(env: dict[str, Any]) -> None:
    c = app_for(env, rate_per_minute=60, rate_burst=5).test_client()
    h = auth(env, "read")
    codes = [c.get("/api/v1/stats", headers=h).status_code for _ in range(8)]
    assert codes[:5] == [200] * 5 and codes[-1] == 429
    r = c.get("/api/v1/stats", headers=h)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "slow down" in error_of(r)
    # another client (here: another token) has its own bucket
    assert c.get("/api/v1/stats", headers=auth(env, "write")).status_code == 200
    # bad tokens are limited per address, so guessing tokens is throttled too
    bad = {"Authorization": "Bearer llmid_guess-guess-guess-guess-guess"}
    codes = [c.get("/api/v1/stats", headers=bad).status_code for _ in range(8)]
    assert 429 in codes


def test_no_stack_traces(env: dict[str, Any]) -> None:
    app = app_for(env)

    @app.get("/api/v1/boom")
    def boom() -> str:
        raise RuntimeError("secret internals /etc/passwd")

    @app.get("/boom")
    def boom_page() -> str:
        raise KeyError("internal")

    c = app.test_client()
    r = c.get("/api/v1/boom", headers=auth(env, "read"))
    assert r.status_code == 500
    msg = error_of(r)
    assert "Internal error" in msg and "Traceback" not in r.get_data(as_text=True)
    assert "secret internals" not in r.get_data(as_text=True)
    r = c.get("/boom")
    assert r.status_code == 500 and b"Traceback" not in r.data and b"internal'" not in r.data
    r = c.get("/api/v1/nope", headers=auth(env, "read"))
    assert r.status_code == 404 and error_of(r) == "Not found."
    r = c.delete("/api/v1/stats", headers=auth(env, "read"))
    assert r.status_code == 405 and "GET" in r.headers["Allow"]


# -- results ------------------------------------------------------------------------------------------------------

def test_search_filters_and_pagination(env: dict[str, Any], client: FlaskClient) -> None:
    h = auth(env, "read")
    allp = client.get("/api/v1/search?limit=5", headers=h).get_json()
    assert allp["total"] > 1000 and len(allp["hits"]) == 5
    errs = client.get("/api/v1/search?level=error&limit=1000", headers=h).get_json()
    assert errs["total"] > 0 and all(x["log"]["level"] == "ERROR" for x in errs["hits"])
    p1 = client.get("/api/v1/search?q=failed&limit=10", headers=h).get_json()
    p2 = client.get("/api/v1/search?q=failed&limit=10&offset=10", headers=h).get_json()
    assert p1["total"] == p2["total"] > 10
    assert not {x["_id"] for x in p1["hits"]} & {x["_id"] for x in p2["hits"]}
    assert all("failed" in x["message"].lower() for x in p1["hits"])
    svc = p1["hits"][0]["service"]["name"]
    only = client.get(f"/api/v1/search?q=failed&service={svc}&limit=50", headers=h).get_json()
    assert only["total"] and all(x["service"]["name"] == svc for x in only["hits"])
    # invalid FTS syntax is retried as literal words, not a 500
    assert client.get('/api/v1/search?q=foo"', headers=h).status_code == 200
    hist = client.get("/api/v1/histogram?q=failed&by=level", headers=h).get_json()
    assert sum(b["count"] for b in hist["buckets"]) == p1["total"]


def test_incident_and_recommendation_decisions(env: dict[str, Any], client: FlaskClient) -> None:
    h = auth(env, "write")
    incs = client.get("/api/v1/incidents", headers=h).get_json()["incidents"]
    assert incs and incs == sorted(incs, key=lambda i: -i["anomaly_score"])
    inc = client.get(f"/api/v1/incidents/{incs[0]['incident_id']}", headers=h).get_json()
    assert inc["chain"] and inc["ranking"] and inc["recommendations"]
    assert client.get("/api/v1/incidents/nope", headers=h).status_code == 404
    rec = inc["recommendations"][0]
    r = client.post(f"/api/v1/recommendations/{rec['_id']}/reject", headers=h, json={"reason": "not now"})
    assert r.status_code == 200 and r.get_json()["status"] == "rejected"
    r = client.post(f"/api/v1/recommendations/{rec['_id']}/approve", headers=h)
    assert r.status_code == 200 and r.get_json()["status"] == "approved"
    assert client.post("/api/v1/recommendations/nope/approve", headers=h).status_code == 404
    entries = client.get("/api/v1/audit", headers=h).get_json()["entries"]
    mine = [e for e in entries if e["object_id"] == rec["_id"]]
    assert [e["action"] for e in mine[:2]] == ["recommendation.approved", "recommendation.rejected"]
    assert mine[1]["details"]["reason"] == "not now" and "test write" in mine[0]["actor"]


def test_ingest_json_and_ndjson(env: dict[str, Any], client: FlaskClient) -> None:
    h = auth(env, "write")
    before = client.get("/api/v1/stats", headers=h).get_json()["records"]
    lines = [f"2026-06-01T10:00:{i:02d}Z INFO [ingest-test] request {i} served in {i} ms" for i in range(20)]
    r = client.post("/api/v1/ingest?source=unit", headers=h, json={"lines": lines})
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["source"] == "api:unit" and body["records"] == 20
    objs = [{"@timestamp": "2026-06-01T10:01:00Z", "log.level": "warn", "service.name": "ingest-test",
             "message": f"disk {i}% full"} for i in range(5)]
    nd = "\n".join(json.dumps(o) for o in objs).encode()
    r = client.post("/api/v1/ingest?source=unit", headers={**h, "Content-Type": "application/x-ndjson"}, data=nd)
    assert r.status_code == 200 and r.get_json()["records"] == 5
    assert client.get("/api/v1/stats", headers=h).get_json()["records"] == before + 25
    found = client.get("/api/v1/search?service=ingest-test&limit=100", headers=h).get_json()
    assert found["total"] == 25
    assert {x["log"]["file"]["path"] for x in found["hits"]} == {"api:unit"}
    assert len({x["_id"] for x in found["hits"]}) == 25  # the second request continued the offsets
    assert {x["log"]["level"] for x in found["hits"]} == {"INFO", "WARN"}


def test_dashboards_fill_the_shared_specs(env: dict[str, Any], client: FlaskClient) -> None:
    h = auth(env, "read")
    ids = [d["id"] for d in client.get("/api/v1/dashboards", headers=h).get_json()["dashboards"]]
    assert ids == list(specs.OVERVIEW)
    for name in [*ids, "incident_timeline"]:
        spec = client.get(f"/api/v1/dashboards/{name}", headers=h).get_json()
        shared = specs.spec(name)
        assert {k: v for k, v in spec.items() if k != "datasets"} == shared  # the very same spec
        for ds in specs.dataset_names(shared):
            rows = spec["datasets"][ds]
            if name != "incident_timeline":
                assert rows, (name, ds)
            for row in rows:
                assert set(row) == set(specs.DATASETS[ds]["fields"]), (name, ds)
    inc = client.get("/api/v1/incidents?limit=1", headers=h).get_json()["incidents"][0]
    tl = client.get(f"/api/v1/dashboards/incident_timeline?incident={inc['incident_id']}", headers=h).get_json()
    assert tl["datasets"]["incident_events"]
    assert client.get("/api/v1/dashboards/nope", headers=h).status_code == 404


def test_alert_rules_api(env: dict[str, Any], client: FlaskClient) -> None:
    admin = auth(env, "admin")
    rule = {"name": "db down", "metric": "anomaly_score", "threshold": 0.5, "service": "auth", "cooldown_s": 60,
            "channels": [{"type": "webhook", "url": "http://127.0.0.1:9/hook"},
                         {"type": "email", "to": ["oncall@example.com"], "smtp": "smtp://u:pw@127.0.0.1:2525"}]}
    r = client.post("/api/v1/alerts/rules", headers=admin, json=rule)
    assert r.status_code == 201
    made = r.get_json()
    assert made["channels"][1]["smtp"] == "smtp://u:***@127.0.0.1:2525"  # passwords never shown
    rid = made["rule_id"]
    assert client.get(f"/api/v1/alerts/rules/{rid}", headers=auth(env, "read")).get_json()["name"] == "db down"
    r = client.post(f"/api/v1/alerts/rules/{rid}/test", headers=admin)
    assert r.status_code == 200 and all(not x["ok"] for x in r.get_json()["results"])  # notify off in this app
    assert client.delete(f"/api/v1/alerts/rules/{rid}", headers=admin).status_code == 200
    assert client.get(f"/api/v1/alerts/rules/{rid}", headers=admin).status_code == 404
    for bad in ({"name": "x", "threshold": 0.5, "channels": [{"type": "webhook", "url": "ftp://h/x"}]},
                {"name": "x", "threshold": 0.5, "channels": [{"type": "pager"}]},
                {"name": "x", "threshold": 0.5, "channels": [{"type": "email", "to": ["nobody"]}]},
                {"name": "", "threshold": 0.5, "channels": [{"type": "webhook", "url": "http://h/x"}]}):
        assert client.post("/api/v1/alerts/rules", headers=admin, json=bad).status_code == 400, bad


# -- pages ---------------------------------------------------------------------------------------------------------

def login(c: FlaskClient, token: str, next_: str = "") -> Any:
    page = c.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    return c.post("/login", data={"token": token, "csrf_token": csrf.group(1), "next": next_})


def test_pages_need_login_and_csrf(env: dict[str, Any]) -> None:
    c = app_for(env).test_client()
    r = c.get("/incidents")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert c.post("/login", data={"token": env["tokens"]["read"]}).status_code == 400  # no CSRF token
    assert login(c, "llmid_wrong-wrong-wrong-wrong-wrong").status_code == 401
    r = login(c, env["tokens"]["read"], "https://evil.example/steal")
    assert r.status_code == 302 and r.headers["Location"] == "/incidents"  # no open redirect
    for path in ("/incidents", "/search?q=failed", "/templates", "/recommendations", "/dashboards", "/alerts"):
        r = c.get(path)
        assert r.status_code == 200, path
        assert "Content-Security-Policy" in r.headers
    rec = c.get("/api/v1/recommendations").get_json()["recommendations"][-1]
    page = c.get(f"/incidents/{rec['incident_id']}").get_data(as_text=True)
    assert 'class="chain"' in page and rec["action"] in page
    assert "Approve" not in page  # a read session sees no approve button
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    r = c.post(f"/recommendations/{rec['_id']}/approve", data={"csrf_token": csrf.group(1)})
    assert r.status_code == 403


def test_page_approve_with_csrf(env: dict[str, Any]) -> None:
    c = app_for(env).test_client()
    assert login(c, env["tokens"]["write"]).status_code == 302
    rec = c.get("/api/v1/recommendations").get_json()["recommendations"][-1]
    page = c.get(f"/incidents/{rec['incident_id']}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf and f"approve-{rec['_id']}" in page
    assert c.post(f"/recommendations/{rec['_id']}/approve", data={"reason": "x"}).status_code == 400
    assert c.post(f"/recommendations/{rec['_id']}/approve",
                  data={"reason": "x", "csrf_token": "forged"}).status_code == 400
    r = c.post(f"/recommendations/{rec['_id']}/approve", data={"reason": "looks right", "csrf_token": csrf.group(1)})
    assert r.status_code == 302
    assert c.get(f"/api/v1/incidents/{rec['incident_id']}").get_json()["recommendations"][-1]["status"] == "approved"
    # API calls that ride on the session cookie need the CSRF header too
    assert c.post(f"/api/v1/recommendations/{rec['_id']}/reject").status_code == 400
    r = c.post(f"/api/v1/recommendations/{rec['_id']}/reject", headers={"X-CSRF-Token": csrf.group(1)})
    assert r.status_code == 200


def test_search_page_highlights_parameters(env: dict[str, Any]) -> None:
    c = app_for(env, public_read=True).test_client()
    page = c.get("/search?q=failed&level=ERROR").get_data(as_text=True)
    assert '<mark class="param">' in page and 'id="next"' in page
    assert "<script>" not in page.split("<footer")[0]  # no inline scripts (CSP-friendly)


def test_static_vendored_no_external_urls(env: dict[str, Any]) -> None:
    c = app_for(env, public_read=True).test_client()
    for name in ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js"):
        r = c.get(f"/static/vendor/{name}")
        assert r.status_code == 200 and len(r.data) > 10_000
        r.close()
    tpl_dir = Path(__file__).resolve().parents[1] / "llmid" / "plugin" / "webapp" / "templates"
    for f in tpl_dir.glob("*.html"):
        text = f.read_text()
        assert not re.search(r"""(src|href)=["']https?://""", text), f.name


def test_web_files_are_package_data() -> None:
    """A fresh (non-editable) install must ship every template and static file: setup.cfg's globs cover them."""
    import configparser
    from fnmatch import fnmatch

    root = Path(__file__).resolve().parents[1]
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg")
    globs = [g.strip() for g in cfg["options.package_data"]["llmid"].splitlines() if g.strip()]
    assert all("," not in g for g in globs), "one glob per line (setuptools reads a multi-line value by lines)"
    web = root / "llmid" / "plugin" / "webapp"
    files = [p for d in ("templates", "static") for p in (web / d).rglob("*") if p.is_file()]
    assert len(files) > 10
    for f in files:
        rel = f.relative_to(root / "llmid").as_posix()
        assert any(fnmatch(rel, g) and rel.count("/") == g.count("/") for g in globs), rel
