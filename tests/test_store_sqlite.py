"""SQLiteStore's own cases: URLs, WAL, corrupt and foreign files, FTS rows, and crash safety (SIGKILL mid-write).

The backend-agnostic cases (search, counts, incidents, approvals, state, objects, threads) are the Store contract
in tests/store_contract.py, run for SQLite and for a real OpenSearch node by tests/test_store_contract.py."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from llmid.documents import Confidence, Incident, LogRecord, RankedEvent, Recommendation, Template
from llmid.errors import StoreError
from llmid.store import open_store
from llmid.store.base import Batch, SearchQuery
from llmid.store.sqlite import SQLiteStore, _parse_url
from llmid.store.sqlite_schema import SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[1]


def rec(n: int, tid: str = "t1", msg: str | None = None, **kw: object) -> LogRecord:
    message = msg or f"2024-01-01 INFO worker-{n} connected to db-{n % 3} in {n} ms"
    defaults: dict[str, object] = {
        "timestamp": 1_700_000_000.0 + n,
        "level": "INFO",
        "service": "api",
        "host": "h1",
        "template_id": tid,
        "template": "worker-<*> connected to <*> in <*> ms",
    }
    defaults.update(kw)
    return LogRecord(
        line_id=n,
        source="app.log",
        offset=n * 100,
        message=message,
        content=message[16:],
        **defaults,  # type: ignore[arg-type]
    )


def tpl(tid: str, count: int = 999) -> Template:
    return Template(tid, f"template {tid} <*>", count=count, service="api")


def incident(iid: str, score: float) -> Incident:
    ev = RankedEvent("t2", "disk <*> full", 0.9, [3, 4], service="db", host="h2", level="ERROR", first_seen=1.7e9)
    return Incident(iid, "app.log", 1.7e9, 1.7e9 + 60, 1, 9, score, ranking=[ev], chain=[ev])


def recommendation(rid: str, iid: str, status: str = "proposed") -> Recommendation:
    conf = Confidence(alpha=3, beta=1, mean=0.75, low=0.4, high=0.95)
    return Recommendation(rid, iid, "free_disk", "db", conf, status=status)


@pytest.fixture()
def store(tmp_path: Path) -> SQLiteStore:
    s = SQLiteStore.from_url(f"sqlite:///{tmp_path}/s.db")
    yield s  # type: ignore[misc]
    s.close()


def counts(s: SQLiteStore) -> dict[str, int]:
    return {h["template_id"]: h["count"] for h in s.templates().hits}


# ---------------------------------------------------------------- urls and opening


def test_parse_url_follows_sqlalchemy() -> None:
    assert _parse_url("sqlite:///./llmid.db") == "./llmid.db"
    assert _parse_url("sqlite:///rel/x.db") == "rel/x.db"
    assert _parse_url("sqlite:////tmp/x.db") == "/tmp/x.db"
    assert _parse_url("sqlite:///:memory:") == ":memory:"
    assert _parse_url("sqlite://") == ":memory:"
    with pytest.raises(StoreError, match="expected sqlite:///"):
        _parse_url("sqlite://host/x.db")


def test_open_store_memory_and_file(tmp_path: Path) -> None:
    with open_store("sqlite:///:memory:") as s:
        s.write(Batch(records=[rec(1)]))
        assert s.stats()["records"] == 1
    url = f"sqlite:///{tmp_path}/a.db"
    assert url.startswith("sqlite:////")
    with open_store(url) as s:
        s.write(Batch(records=[rec(1)]))
    with open_store(url) as s:
        assert s.stats() == {"records": 1, "templates": 0, "incidents": 0, "recommendations": 0}
        mode = s._db.execute("PRAGMA journal_mode").fetchone()[0]  # type: ignore[attr-defined]
        assert mode == "wal"


def test_missing_parent_and_directory_paths(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"Cannot open store .*does not exist\.$"):
        SQLiteStore.from_url(f"sqlite:///{tmp_path}/nope/x.db")
    with pytest.raises(StoreError, match=r"Cannot open store .*it is a directory"):
        SQLiteStore.from_url(f"sqlite:///{tmp_path}")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc (root ignores chmod)")
def test_unwritable_directory() -> None:
    with pytest.raises(StoreError, match=r"^Cannot open store /proc/llmid-test\.db: unable to open database file\.$"):
        SQLiteStore.from_url("sqlite:////proc/llmid-test.db")


def test_not_a_database_and_corrupt_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"hello, this is not sqlite at all\n" * 100)
    with pytest.raises(StoreError, match=r"is not a valid LLM-ID SQLite store \(file is not a SQLite database\)"):
        SQLiteStore.from_url(f"sqlite:///{junk}")

    good = tmp_path / "good.db"
    with SQLiteStore.from_url(f"sqlite:///{good}") as s:
        s.write(Batch(records=[rec(i) for i in range(200)]))
    data = bytearray(good.read_bytes())
    data[100:8192] = os.urandom(8192 - 100)  # page 1 (the schema) after the header
    good.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="is not a valid LLM-ID SQLite store") as err:
        SQLiteStore.from_url(f"sqlite:///{good}")
    assert "\n" not in str(err.value)


def test_foreign_sqlite_file_and_newer_schema(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as c:
        c.execute("CREATE TABLE users(id INTEGER)")
    with pytest.raises(StoreError, match=r"holds other tables \(users\) but no LLM-ID schema"):
        SQLiteStore.from_url(f"sqlite:///{other}")

    newer = tmp_path / "newer.db"
    SQLiteStore.from_url(f"sqlite:///{newer}").close()
    c = sqlite3.connect(newer)
    c.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    c.commit()
    c.close()
    with pytest.raises(StoreError, match="newer LLM-ID"):
        SQLiteStore.from_url(f"sqlite:///{newer}")


def test_closed_store_raises_store_error(store: SQLiteStore) -> None:
    store.close()
    with pytest.raises(StoreError, match="is closed"):
        store.stats()


# ---------------------------------------------------------------- writing and counts


def test_rewrite_is_idempotent(store: SQLiteStore) -> None:
    batch = Batch(records=[rec(i, "t1" if i % 3 else "t2") for i in range(1, 31)], templates=[tpl("t1"), tpl("t2")])
    store.write(batch)
    first = (store.stats(), counts(store))
    store.write(batch)
    store.write(batch)
    assert (store.stats(), counts(store)) == first
    assert first[1] == {"t1": 20, "t2": 10}
    assert store.search(SearchQuery(text="connected", limit=100)).total == 30  # FTS has no duplicates
    fts_rows = store._db.execute("SELECT count(*) FROM logs_fts").fetchone()[0]  # type: ignore[attr-defined]
    assert fts_rows == 30


def test_counts_follow_records_moved_between_templates(store: SQLiteStore) -> None:
    store.write(Batch(records=[rec(i, "t1") for i in range(10)], templates=[tpl("t1"), tpl("t2")]))
    assert counts(store) == {"t1": 10, "t2": 0}
    # The engine refined the template: 4 records now belong to t2; only the records are re-written.
    store.write(Batch(records=[rec(i, "t2") for i in range(4)]))
    assert counts(store) == {"t1": 6, "t2": 4}
    # A template that arrives after its records is counted from what is stored.
    store.write(Batch(records=[rec(i, "t3") for i in range(20, 25)]))
    store.write(Batch(templates=[tpl("t3", count=0)]))
    assert counts(store)["t3"] == 5
    # Re-writing a template document keeps its count, and the same record twice in a batch counts once.
    store.write(Batch(templates=[tpl("t1", count=12345)], records=[rec(30, "t1"), rec(30, "t1")]))
    assert counts(store) == {"t1": 7, "t2": 4, "t3": 5}
    hits = store.templates().hits
    assert [h["template_id"] for h in hits] == ["t1", "t3", "t2"]  # most frequent first
    store.recount()
    assert counts(store) == {"t1": 7, "t2": 4, "t3": 5}


def test_message_change_reindexes_fts(store: SQLiteStore) -> None:
    store.write(Batch(records=[rec(1, msg="alpha beta")]))
    store.write(Batch(records=[rec(1, msg="gamma delta")]))
    assert store.search(SearchQuery(text="alpha")).total == 0
    assert store.search(SearchQuery(text="gamma")).total == 1
    assert store.check() == []



# ---------------------------------------------------------------- search





# ---------------------------------------------------------------- incidents, recommendations, audit, state






# ---------------------------------------------------------------- crash safety

WRITER = textwrap.dedent(
    """
    import sys
    from llmid.documents import LogRecord, Template
    from llmid.store.base import Batch
    from llmid.store.sqlite import SQLiteStore

    store = SQLiteStore.from_url(sys.argv[1])
    size = int(sys.argv[2])
    b = 0
    while True:
        recs = [LogRecord(line_id=b * size + i, source="x.log", offset=b * size + i, message=f"line {i} of {b}",
                          content="c", template_id=f"t{i % 3}") for i in range(size)]
        store.write(Batch(records=recs, templates=[Template(f"t{k}", f"tpl {k}") for k in range(3)],
                          state={"batches": b + 1}))
        b += 1
        print(b, flush=True)
    """
)


@pytest.mark.parametrize("delay", [0.0, 0.007, 0.019])
def test_sigkill_mid_write_keeps_whole_batches(tmp_path: Path, delay: float) -> None:
    """SIGKILL a writer at some point inside a batch: every committed batch survives, none is half there."""
    db = tmp_path / "crash.db"
    size = 500
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, f"sqlite:///{db}", str(size)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        done = 0
        deadline = time.monotonic() + 10
        while done < 4 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "writer died"
            done = int(line)
        time.sleep(delay)  # land somewhere inside a later batch
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert done >= 4
    with SQLiteStore.from_url(f"sqlite:///{db}") as s:
        assert s._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"  # type: ignore[attr-defined]
        records = s.stats()["records"]
        assert records % size == 0 and records >= done * size
        assert s.load_state("batches") == records // size  # state commits with its batch
        assert sum(counts(s).values()) == records
        assert s.search(SearchQuery(text="line", limit=1)).total == records
        s.write(Batch(records=[rec(1)]))  # writable after the crash
