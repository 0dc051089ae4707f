"""Store additions the web app relies on: aggregations (SQLite's GROUP BY agrees with the generic default every
backend inherits), objects (rules, token hashes, atomic claims), get_recommendation, and the v1 -> v2 upgrade."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from webapp_support import analysed_store

from llmid.errors import StoreError
from llmid.store.base import SearchQuery, Store, nice_interval
from llmid.store.sqlite import SQLiteStore
from llmid.store.sqlite_schema import SCHEMA_VERSION


@pytest.fixture(scope="module")
def st(tmp_path_factory: pytest.TempPathFactory) -> SQLiteStore:
    return SQLiteStore.from_url(analysed_store(tmp_path_factory.mktemp("store"))[0])


@pytest.mark.parametrize("query", [None, SearchQuery(text="failed"), SearchQuery(level="error", service="auth")])
@pytest.mark.parametrize("by", [None, "level", "service", "template_id"])
def test_histogram_matches_generic_default(st: SQLiteStore, query: SearchQuery | None, by: str | None) -> None:
    fast = st.histogram(query, None, by=by)
    slow = Store.histogram(st, query, None, by=by)
    assert fast["interval_s"] == slow["interval_s"]
    key = lambda b: (b["t"], str(b["key"]))  # noqa: E731
    assert sorted(fast["buckets"], key=key) == sorted(slow["buckets"], key=key)
    total = st.search(query or SearchQuery(limit=0)).total
    assert sum(b["count"] for b in fast["buckets"]) == total


def test_facet_and_intervals(st: SQLiteStore) -> None:
    fast = st.facet("service", size=5)
    assert fast == Store.facet(st, "service", size=5)
    assert len(fast) == 5 and fast == sorted(fast, key=lambda f: -f["count"])
    assert st.histogram(None, 600.0)["interval_s"] == 600.0
    with pytest.raises(StoreError):
        st.facet("message")
    with pytest.raises(StoreError):
        st.histogram(None, by="message; DROP TABLE logs")
    assert nice_interval(0) == 1.0 and nice_interval(3600) == 60.0 and nice_interval(86400 * 30) == 43200.0


def test_objects_and_claims(tmp_path: Path) -> None:
    with SQLiteStore(str(tmp_path / "o.db")) as s:
        s.put_object("k", "a", {"x": 1})
        s.put_object("k", "b", {"x": 2})
        s.put_object("other", "a", {"x": 3})
        s.put_object("k", "a", {"x": 4})
        assert s.get_object("k", "a") == {"x": 4, "_id": "a"}
        assert [d["_id"] for d in s.list_objects("k")] == ["a", "b"]
        assert s.delete_object("k", "a") and not s.delete_object("k", "a")
        assert s.get_object("k", "a") is None
        assert s.claim_object("c", "1", {}, 3600) and not s.claim_object("c", "1", {}, 3600)
        assert s.claim_object("c", "1", {}, 0.0)  # cooldown over
        assert s.claim_object("c", "2", {}, float("inf")) and not s.claim_object("c", "2", {}, float("inf"))


def test_get_recommendation(st: SQLiteStore) -> None:
    rec = st.recommendations(limit=1).hits[0]
    assert st.get_recommendation(rec["_id"]) == rec == Store.get_recommendation(st, rec["_id"])
    assert st.get_recommendation("nope") is None


def test_upgrade_from_version_1(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    SQLiteStore(str(path)).close()
    c = sqlite3.connect(path)
    c.execute("DROP TABLE objects")
    c.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    c.commit()
    c.close()
    with SQLiteStore(str(path)) as s:
        s.put_object("k", "a", {})
        assert s.get_object("k", "a") is not None
    c = sqlite3.connect(path)
    assert c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    c.close()
