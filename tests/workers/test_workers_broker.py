"""Scale-out end to end on a real Redis with real `llmid worker` processes, and the faults of issue 7: the same
results as the in-process run, a worker killed mid-batch, the broker restarted, the store away for 30 s, malformed
messages, and backpressure. Every wait is bounded; each test uses a Redis database (or server) of its own."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from workers_support import (
    FAST,
    RedisServer,
    Worker,
    assert_same,
    dump,
    line_ids,
    llmid,
    stats,
    structured_chunks,
    wait_for,
)

_refs: dict[str, dict] = {}


def reference(log: Path, tmp: Path) -> dict:
    """The in-process run (`llmid ingest` without a broker) of `log`: its --json output, documents and stats."""
    if str(log) not in _refs:
        db = tmp / f"ref-{log.stem}.db"
        p = llmid("ingest", str(log), "--store", f"sqlite:///{db}", "--json", "-q")
        assert p.returncode == 0, p.stderr
        _refs[str(log)] = {"json": json.loads(p.stdout), "dump": dump(db), "stats": stats(f"sqlite:///{db}"),
                           "lines": line_ids(db)}
    return _refs[str(log)]


def ingest_cmd(log: Path, broker: str, db: Path, timeout: float = 150) -> list[str]:
    return [sys.executable, "-m", "llmid", "ingest", str(log), "--broker", broker, "--store", f"sqlite:///{db}",
            "--wait", "--json", "-q", "--timeout", str(timeout)]


def background(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **FAST, **(env or {})})


def finish(proc: subprocess.Popen[str], timeout: float = 170) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def assert_like_in_process(db: Path, out: str, ref: dict) -> None:
    assert json.loads(out) == ref["json"]
    assert_same(dump(db), ref["dump"])
    assert stats(f"sqlite:///{db}") == ref["stats"]
    assert line_ids(db) == ref["lines"]  # every line stored exactly once


@pytest.fixture
def tmp_ref(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "refs"


@pytest.fixture(autouse=True)
def _refs_dir(tmp_ref: Path) -> None:
    tmp_ref.mkdir(exist_ok=True)


def test_broker_run_equals_in_process_run(tmp_path: Path, broker: str, sim_log: Path, tricky_log: Path,
                                          tmp_ref: Path) -> None:
    """Two worker processes (one prefork, one solo): documents, stats and --json output as in-process."""
    workers = [Worker(broker, f"sqlite:///{tmp_path / 'dl.db'}", tmp_path / f"w{i}.log", pool=pool)
               for i, pool in enumerate(("prefork", "solo"))]
    try:
        for log in (sim_log, tricky_log):
            db = tmp_path / f"{log.stem}.db"
            p = subprocess.run(ingest_cmd(log, broker, db), capture_output=True, text=True, timeout=170,
                               env={**os.environ, **FAST})
            assert p.returncode == 0, p.stderr
            assert_like_in_process(db, p.stdout, reference(log, tmp_ref))
            assert not [k for k in dump(db)["state"] if k.startswith("workers.")]  # bookkeeping removed
        for w in workers:  # both took part
            assert b"succeeded" in w.log.read_bytes(), w.log.read_text(errors="replace")[-2000:]
    finally:
        for w in workers:
            w.stop()


@pytest.mark.parametrize("victim", ["whole worker", "pool child"])
def test_worker_killed_mid_batch(tmp_path: Path, broker: str, sim_log: Path, tmp_ref: Path, victim: str) -> None:
    """SIGKILL while a batch is computed but not committed; then a worker goes on: every line stored once."""
    db, mark = tmp_path / "s.db", tmp_path / "mark"
    slow = {"LLMID_WORKERS_TEST_DELAY": "0.2", "LLMID_WORKERS_TEST_MARK": str(mark)}
    pool = "solo" if victim == "whole worker" else "prefork"
    first = Worker(broker, f"sqlite:///{db}", tmp_path / "w1.log", pool=pool, env=slow)
    second = None
    try:
        first.wait_ready()
        proc = background(ingest_cmd(sim_log, broker, db))
        wait_for(lambda: mark.exists() and "structure 2" in mark.read_text(), 60, "the worker to be mid-batch")
        pid = int(mark.read_text().splitlines()[-1].split()[0])
        if victim == "whole worker":
            first.kill()  # the process holding the message dies: nothing acknowledged, nothing committed
            second = Worker(broker, f"sqlite:///{db}", tmp_path / "w2.log", pool="solo")
        else:
            assert pid in first.children()
            os.kill(pid, 9)  # the pool replaces its child and gives the message back (reject_on_worker_lost)
        rc, out, err = finish(proc)
        assert rc == 0, err
        assert_like_in_process(db, out, reference(sim_log, tmp_ref))
        if victim == "pool child":
            assert "WorkerLostError" in first.log.read_text(errors="replace")
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_broker_restarted_mid_run(tmp_path: Path, sim_log: Path, tmp_ref: Path) -> None:
    """Redis stopped (without persistence: every queued message is lost) and started again: the run completes."""
    server = RedisServer(tmp_path / "redis").start()
    db, mark = tmp_path / "s.db", tmp_path / "mark"
    # prefork: a solo-pool worker whose acknowledgement fails while Redis is down stops consuming (Celery)
    worker = Worker(server.url(), f"sqlite:///{db}", tmp_path / "w.log", pool="prefork",
                    env={"LLMID_WORKERS_TEST_DELAY": "0.1", "LLMID_WORKERS_TEST_MARK": str(mark)})
    try:
        worker.wait_ready()
        proc = background(ingest_cmd(sim_log, server.url(), db))
        wait_for(lambda: structured_chunks(db) >= 3, 60, "the run to start")
        server.stop()
        time.sleep(1.0)
        server.start()
        rc, out, err = finish(proc)
        assert rc == 0, err
        assert_like_in_process(db, out, reference(sim_log, tmp_ref))
    finally:
        worker.stop()
        server.stop()


def test_store_unavailable_for_30_seconds(tmp_path: Path, broker: str, sim_log: Path, tmp_ref: Path) -> None:
    """Another process holds the store's write lock for 30 s mid-run: retries with backoff, nothing lost."""
    db = tmp_path / "s.db"
    worker = Worker(broker, f"sqlite:///{db}", tmp_path / "w.log", pool="solo",
                    env={"LLMID_WORKERS_TEST_DELAY": "0.05"})
    try:
        proc = background(ingest_cmd(sim_log, broker, db))
        wait_for(lambda: structured_chunks(db) >= 2, 60, "the run to start")
        locked = threading.Event()

        def hold() -> None:
            with sqlite3.connect(db, timeout=60, isolation_level=None) as c:
                c.execute("BEGIN EXCLUSIVE")
                locked.set()
                time.sleep(30)
                c.execute("ROLLBACK")

        holder = threading.Thread(target=hold)
        holder.start()
        assert locked.wait(30)
        during = structured_chunks(db)
        time.sleep(20)
        assert structured_chunks(db) == during  # really unavailable: nothing committed meanwhile
        holder.join(40)
        rc, out, err = finish(proc)
        assert rc == 0, err
        assert_like_in_process(db, out, reference(sim_log, tmp_ref))
    finally:
        worker.stop()


def test_malformed_messages_are_dead_lettered(tmp_path: Path, broker: str, redis_server: RedisServer,
                                              tricky_log: Path, tmp_ref: Path) -> None:
    """Bad payloads, an undecodable body, an unknown task, raw garbage in the list: each becomes a dead letter
    (`llmid failures`, `llmid stats`), and the worker goes on with real work."""
    from llmid.config import Settings
    from llmid.workers.app import configure

    db = tmp_path / "s.db"
    store = f"sqlite:///{db}"
    worker = Worker(broker, store, tmp_path / "w.log", pool="prefork")
    try:
        worker.wait_ready()
        app = configure(broker, Settings())
        app.send_task("llmid.structure", args=[{"run": 7}], queue="llmid.structure")
        app.send_task("llmid.plan", args=[1, 2, 3], queue="llmid.plan")
        app.send_task("llmid.no_such_task", args=[1], queue="llmid.reason")
        with app.connection_for_write() as conn:
            conn.Producer().publish(b"\x00{not json", routing_key="llmid.structure", content_type="application/json",
                                    content_encoding="utf-8", headers={"task": "llmid.structure", "id": "bad-body"})
        db_index = int(broker.rsplit("/", 1)[1])
        redis_server.client(db_index).lpush("llmid.structure", b"\xffnot a kombu message")
        wait_for(lambda: db.exists() and stats(store).get("failures", 0) >= 5, 60, "five dead letters")
        p = subprocess.run(ingest_cmd(tricky_log, broker, db), capture_output=True, text=True, timeout=170,
                           env={**os.environ, **FAST})
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout) == reference(tricky_log, tmp_ref)["json"]
        assert worker.proc.poll() is None
        failures = json.loads(llmid("failures", "--json", "--store", store).stdout)
        assert failures["total"] == 5
        assert {f["task"] for f in failures["failures"]} >= {"llmid.structure", "llmid.plan", "llmid.no_such_task"}
        assert all(f["error"] and f["payload"] is not None for f in failures["failures"])
        assert stats(store)["failures"] == 5
        table = llmid("failures", "--store", store)
        assert table.returncode == 0 and "5 dead letters" in table.stdout
    finally:
        worker.stop()


def test_backpressure_bounds_the_broker(tmp_path: Path, broker: str, redis_server: RedisServer,
                                        sim_log: Path) -> None:
    """With no worker, `ingest --broker` sends `broker_max_inflight` chunks and waits; a worker lets it finish."""
    db = tmp_path / "s.db"
    db_index = int(broker.rsplit("/", 1)[1])
    r = redis_server.client(db_index)
    cmd = [sys.executable, "-m", "llmid", "ingest", str(sim_log), "--broker", broker, "--store", f"sqlite:///{db}",
           "-q", "--timeout", "120"]
    proc = background(cmd, env={"LLMID_BROKER_MAX_INFLIGHT": "3"})
    worker = None
    try:
        wait_for(lambda: r.llen("llmid.structure") >= 3, 60, "three chunks on the queue")
        time.sleep(2.0)
        assert proc.poll() is None, proc.communicate()
        assert r.llen("llmid.structure") == 3
        memory = r.info("memory")["used_memory"]
        worker = Worker(broker, f"sqlite:///{db}", tmp_path / "w.log", pool="solo")
        rc, _out, err = finish(proc)
        assert rc == 0, err
        assert memory < 64 << 20
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if worker is not None:
            worker.stop()
