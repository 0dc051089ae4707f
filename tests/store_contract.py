"""The Store contract: backend-agnostic cases every store must pass (SQLite, and the real OpenSearch node).

Not a test module itself: `tests/test_store_contract.py` runs every `test_*` here once per backend through the
`store` and `reopen` fixtures. Cases that only make sense for one backend stay in that backend's module
(test_store_sqlite.py: FTS rows, WAL, corruption, SIGKILL; test_store_cluster.py: bulk errors, 429s, mappings).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from llmid.documents import Confidence, Incident, LogRecord, RankedEvent, Recommendation, Template
from llmid.errors import StoreError
from llmid.store.base import Batch, SearchQuery, Store

Reopen = Callable[[], Store]


def rec(n: int, tid: str = "t1", msg: str | None = None, **kw: object) -> LogRecord:
    message = msg or f"2024-01-01 INFO worker-{n} connected to db-{n % 3} in {n} ms"
    defaults: dict[str, object] = {
        "timestamp": 1_700_000_000.0 + n, "level": "INFO", "service": "api", "host": "h1", "template_id": tid,
        "template": "worker-<*> connected to <*> in <*> ms",
    }
    defaults.update(kw)
    return LogRecord(line_id=n, source="app.log", offset=n * 100, message=message, content=message[16:],
                     **defaults)  # type: ignore[arg-type]


def tpl(tid: str, count: int = 999) -> Template:
    return Template(tid, f"template {tid} <*>", count=count, service="api")


def incident(iid: str, score: float) -> Incident:
    ev = RankedEvent("t2", "disk <*> full", 0.9, [3, 4], service="db", host="h2", level="ERROR", first_seen=1.7e9)
    return Incident(iid, "app.log", 1.7e9, 1.7e9 + 60, 1, 9, score, ranking=[ev], chain=[ev])


def recommendation(rid: str, iid: str, status: str = "proposed") -> Recommendation:
    conf = Confidence(alpha=3, beta=1, mean=0.75, low=0.4, high=0.95)
    return Recommendation(rid, iid, "free_disk", "db", conf, status=status)


def counts(s: Store) -> dict[str, int]:
    return {h["template_id"]: h["count"] for h in s.templates().hits}


# ---------------------------------------------------------------- writing and counts


def test_rewrite_is_idempotent(store: Store) -> None:
    batch = Batch(records=[rec(i, "t1" if i % 3 else "t2") for i in range(1, 31)], templates=[tpl("t1"), tpl("t2")])
    store.write(batch)
    first = (store.stats(), counts(store))
    store.write(batch)
    store.write(batch)
    assert (store.stats(), counts(store)) == first
    assert first[0] == {"records": 30, "templates": 2, "incidents": 0, "recommendations": 0}
    assert first[1] == {"t1": 20, "t2": 10}
    assert store.search(SearchQuery(text="connected", limit=100)).total == 30


def test_counts_follow_records_moved_between_templates(store: Store) -> None:
    store.write(Batch(records=[rec(i, "t1") for i in range(10)], templates=[tpl("t1"), tpl("t2")]))
    assert counts(store) == {"t1": 10, "t2": 0}
    store.write(Batch(records=[rec(i, "t2") for i in range(4)]))  # a refinement moved 4 records to t2
    assert counts(store) == {"t1": 6, "t2": 4}
    store.write(Batch(records=[rec(i, "t3") for i in range(20, 25)]))  # records before their template
    assert store.stats()["templates"] == 2
    store.write(Batch(templates=[tpl("t3", count=0)]))
    assert counts(store)["t3"] == 5
    store.write(Batch(templates=[tpl("t1", count=12345)], records=[rec(30, "t1"), rec(30, "t1")]))
    assert counts(store) == {"t1": 7, "t2": 4, "t3": 5}
    assert [h["template_id"] for h in store.templates().hits] == ["t1", "t3", "t2"]  # most frequent first
    assert store.stats()["templates"] == 3


def test_message_change_is_searchable(store: Store) -> None:
    store.write(Batch(records=[rec(1, msg="alpha beta")]))
    store.write(Batch(records=[rec(1, msg="gamma delta")]))
    assert store.search(SearchQuery(text="alpha")).total == 0
    assert store.search(SearchQuery(text="gamma")).total == 1
    assert store.stats()["records"] == 1


def test_failed_batch_writes_nothing(store: Store) -> None:
    """A document that cannot be encoded fails the batch before anything of it is sent."""
    store.write(Batch(records=[rec(1)], templates=[tpl("t1")]))

    class Boom(LogRecord):
        __slots__ = ()

        def to_doc(self) -> dict[str, object]:
            raise KeyboardInterrupt

    bad = Boom(line_id=9, source="app.log", offset=900, message="x", content="x", template_id="t1")
    with pytest.raises(KeyboardInterrupt):
        store.write(Batch(records=[rec(2), bad], state={"miner": {"v": 2}}))
    unserialisable = rec(3)
    unserialisable.params = [object()]  # type: ignore[list-item]
    with pytest.raises(StoreError, match=r"not JSON serializable\.$"):
        store.write(Batch(records=[rec(4), unserialisable]))
    assert store.stats()["records"] == 1
    assert counts(store) == {"t1": 1}
    assert store.load_state("miner") is None
    store.write(Batch(records=[rec(2)]))
    assert store.stats()["records"] == 2


# ---------------------------------------------------------------- search


def test_search_filters_order_and_pagination(store: Store) -> None:
    records = [rec(i, "t1") for i in range(1, 21)]
    records += [rec(21, "t2", msg="disk /dev/sda1 full on db-1", level="ERROR", service="db", incident_id="i1")]
    records += [rec(22, "t2", msg="disk /dev/sdb full on db-2", level="error", service="db", incident_id="i1")]
    store.write(Batch(records=records))

    page = store.search(SearchQuery(limit=5))
    assert page.total == 22 and len(page.hits) == 5
    assert [h["event"]["sequence"] for h in page.hits] == [22, 21, 20, 19, 18]  # newest first
    assert page.hits[0]["_id"] == records[-1].record_id
    assert {k: v for k, v in page.hits[0].items() if k != "_id"} == records[-1].to_doc()  # the same document
    second = store.search(SearchQuery(limit=5, offset=5))
    assert [h["event"]["sequence"] for h in second.hits] == [17, 16, 15, 14, 13]

    assert store.search(SearchQuery(level="ERROR")).total == 2  # case-insensitive
    assert store.search(SearchQuery(level="Error", service="db", template_id="t2")).total == 2
    assert store.search(SearchQuery(incident_id="i1")).total == 2
    assert store.search(SearchQuery(service="api")).total == 20
    assert store.search(SearchQuery(since=1_700_000_010.0, until=1_700_000_012.0)).total == 3
    assert store.search(SearchQuery(text="disk full")).total == 2
    assert store.search(SearchQuery(text="sda1")).total == 1
    assert store.search(SearchQuery(text="disk", level="info")).total == 0
    assert store.search(SearchQuery(text="worker-7")).total == 1
    assert store.search(SearchQuery(text="conn*", limit=1)).total == 20  # prefix query
    assert store.search(SearchQuery(text="   ")).total == 22


@pytest.mark.parametrize("text", ['disk"', "AND", "disk OR", "(full", "level:error", "db-1 -x", "NEAR("])
def test_bad_query_syntax_never_fails(store: Store, text: str) -> None:
    store.write(Batch(records=[rec(1, msg="disk full and level error on db-1")]))
    assert store.search(SearchQuery(text=text)).total in (0, 1)


def test_query_words_are_literal(store: Store) -> None:
    store.write(Batch(records=[rec(1, msg='user said "hello" AND left'), rec(2, msg="other")]))
    assert store.search(SearchQuery(text='hello"')).total == 1
    assert store.search(SearchQuery(text="AND")).total == 1


# ---------------------------------------------------------------- aggregations


def test_histogram_and_facet_agree_with_the_generic_default(store: Store) -> None:
    records = [rec(i, "t1" if i % 4 else "t2", level="ERROR" if i % 5 == 0 else "INFO",
                   service="db" if i % 3 == 0 else "api") for i in range(1, 121)]
    records.append(rec(500, "t3", timestamp=None, level=None))
    store.write(Batch(records=records))
    key = lambda b: (b["t"], str(b["key"]))  # noqa: E731
    for query in (None, SearchQuery(text="connected"), SearchQuery(level="error", service="api")):
        for by in (None, "level", "service", "template_id"):
            fast = store.histogram(query, None, by=by)
            slow = Store.histogram(store, query, None, by=by)
            assert fast["interval_s"] == slow["interval_s"]
            assert sorted(fast["buckets"], key=key) == sorted(slow["buckets"], key=key)
    assert store.histogram(None, 60.0)["interval_s"] == 60.0
    assert sum(b["count"] for b in store.histogram(None, 60.0)["buckets"]) == 120  # undated left out
    assert store.facet("service", size=5) == Store.facet(store, "service", size=5) == [
        {"key": "api", "count": 81}, {"key": "db", "count": 40}]
    assert store.facet("level") == [{"key": "INFO", "count": 96}, {"key": "ERROR", "count": 24},
                                    {"key": None, "count": 1}]
    with pytest.raises(StoreError):
        store.facet("message")
    with pytest.raises(StoreError):
        store.histogram(None, by="message; DROP TABLE logs")


# ---------------------------------------------------------------- incidents, recommendations, audit, state


def test_incidents_with_recommendations(store: Store) -> None:
    store.write(Batch(
        incidents=[incident("i1", 0.4), incident("i2", 0.9), incident("i3", 0.1)],
        recommendations=[recommendation("r2", "i1"), recommendation("r1", "i1"), recommendation("r3", "i2")],
    ))
    page = store.incidents()
    assert page.total == 3
    assert [h["incident_id"] for h in page.hits] == ["i2", "i1", "i3"]
    by_id = {h["incident_id"]: h for h in page.hits}
    assert [r["recommendation_id"] for r in by_id["i1"]["recommendations"]] == ["r2", "r1"]  # engine order
    assert by_id["i3"]["recommendations"] == []
    assert store.incidents(min_score=0.3).total == 2
    assert [h["incident_id"] for h in store.incidents(limit=1, offset=1).hits] == ["i1"]
    got = store.get_incident("i2")
    assert got is not None and got["root_cause"]["template_id"] == "t2"
    assert {k: v for k, v in got.items() if k not in ("_id", "recommendations")} == incident("i2", 0.9).to_doc()
    assert [r["action"] for r in got["recommendations"]] == ["free_disk"]
    assert store.get_incident("nope") is None
    assert store.recommendations().total == 3
    assert store.recommendations(incident_id="i1").total == 2
    assert len(store.recommendations(limit=1).hits) == 1
    assert store.stats()["incidents"] == 3 and store.stats()["recommendations"] == 3
    r3 = store.get_recommendation("r3")
    assert r3 is not None and r3["_id"] == "r3" and r3 == Store.get_recommendation(store, "r3")
    assert store.get_recommendation("nope") is None


def test_status_update_audit_and_survives_reproposal(store: Store) -> None:
    store.write(Batch(incidents=[incident("i1", 0.5)], recommendations=[recommendation("r1", "i1")]))
    doc = store.set_recommendation_status("r1", "approved", actor="alice", reason="disk at 99%")
    assert doc["status"] == "approved"
    with pytest.raises(StoreError, match="Invalid recommendation status 'maybe'"):
        store.set_recommendation_status("r1", "maybe", actor="bob")
    with pytest.raises(StoreError, match="No recommendation 'zzz'"):
        store.set_recommendation_status("zzz", "rejected", actor="bob")
    store.write(Batch(recommendations=[recommendation("r1", "i1")]))  # the engine re-proposes r1
    assert store.recommendations().hits[0]["status"] == "approved"
    store.record_audit("bob", "runbook.executed", "r1", {"ok": True})
    entries = store.audit()
    assert [e["action"] for e in entries] == ["runbook.executed", "recommendation.approved"]
    assert entries[1]["actor"] == "alice" and entries[1]["object_id"] == "r1"
    assert entries[1]["details"] == {"previous": "proposed", "status": "approved", "reason": "disk at 99%",
                                     "incident_id": "i1"}
    assert len(store.audit(limit=1)) == 1


def test_state_round_trip(store: Store, reopen: Reopen) -> None:
    value = {"clusters": [[1, "a <*>"]], "depth": 4, "nested": {"x": None, "ü": 1.5}}
    store.save_state("miner", value)
    store.save_state("miner", value | {"depth": 5})
    store.write(Batch(state={"offsets": {"app.log": 1234}, "gone": 1}))
    store.write(Batch(state={"gone": None}))
    store.close()
    with reopen() as again:
        assert again.load_state("miner") == value | {"depth": 5}
        assert again.load_state("offsets") == {"app.log": 1234}
        assert again.load_state("missing") is None
        assert again.load_state("gone") is None


def test_write_guarded_is_a_compare_and_set(store: Store) -> None:
    assert store.write_guarded(Batch(records=[rec(1)], state={"cursor": 1}), "cursor", None)
    assert not store.write_guarded(Batch(records=[rec(2)], state={"cursor": 2}), "cursor", 0)
    assert store.load_state("cursor") == 1 and store.stats()["records"] == 1
    assert store.write_guarded(Batch(records=[rec(2)], state={"cursor": 2}), "cursor", 1)
    assert store.load_state("cursor") == 2 and store.stats()["records"] == 2


def test_objects_and_claims(store: Store) -> None:
    store.put_object("k", "a", {"x": 1})
    store.put_object("k", "b", {"x": 2})
    store.put_object("other", "a", {"x": 3})
    store.put_object("k", "a", {"x": 4})
    assert store.get_object("k", "a") == {"x": 4, "_id": "a"}
    assert [d["_id"] for d in store.list_objects("k")] == ["a", "b"]
    assert store.delete_object("k", "a") and not store.delete_object("k", "a")
    assert store.get_object("k", "a") is None
    assert store.claim_object("c", "1", {}, 3600) and not store.claim_object("c", "1", {}, 3600)
    assert store.claim_object("c", "1", {}, 0.0)  # cooldown over
    assert store.claim_object("c", "2", {}, float("inf")) and not store.claim_object("c", "2", {}, float("inf"))


def test_store_shared_between_threads(store: Store) -> None:
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for j in range(3):
                store.write(Batch(records=[rec(k * 100 + j * 10 + i) for i in range(10)]))
                store.search(SearchQuery(text="connected"))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.stats()["records"] == 120
    assert counts(store) == {} and store.search(SearchQuery(template_id="t1")).total == 120
