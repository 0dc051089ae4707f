"""The embedded SQLite store: the default backend, one file, no server.

Durability: WAL journal + `synchronous=NORMAL` + one `BEGIN IMMEDIATE` transaction per batch, so a crash,
SIGKILL or Ctrl-C mid-batch loses at most that batch and never half-writes it; everything committed before
survives. Every sqlite3 error is turned into a one-sentence `StoreError`, never a traceback.

Threads: one connection per store object, opened with `check_same_thread=False` and serialised by a lock, so a
store may be shared between threads (e.g. a web app's worker threads), but calls never run concurrently. For
parallel writers open one store per process; SQLite's busy timeout queues them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any, TypeVar

from llmid.documents import RECOMMENDATION_STATUSES, Incident, LogRecord, Recommendation, Template, iso
from llmid.errors import StoreError
from llmid.store.base import AGG_FIELDS, Batch, Page, SearchQuery, Store, nice_interval
from llmid.store.sqlite_schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION, TABLES

BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for another process's write lock before giving up with a StoreError."""

MAX_LIMIT = 10_000
"""Largest page a query returns; bigger requests are clamped so one call cannot load the whole store."""

WRITER_GATE_POLL_S = 0.0005
"""How often a writer waiting at the writer gate (`_WriterGate`) looks again."""

CHECKPOINT_BYTES = 4 << 20
"""A writer checkpoints the WAL itself after about this much written (documents and state values as encoded,
another write as one page), once its transaction is committed and the writer gate released.

SQLite's automatic checkpoint runs inside COMMIT, so it held the gate and every other writer waited for its
copying and fsyncs (about a quarter of a large write's time); after the gate it overlaps their writes (a passive
checkpoint never takes the write lock). About as often as SQLite's default of 1000 pages."""

_T = TypeVar("_T")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_CORRUPT = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}


def _unserialisable(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


if c_make_encoder is not None:
    # One C encoder built once: json.dumps builds a new one per call, a third of the cost of encoding a doc.
    _encode = c_make_encoder(None, _unserialisable, encode_basestring, None, ":", ",", False, False, True)

    def _dumps(value: Any) -> str:
        """Compact JSON, same text as json.dumps(value, ensure_ascii=False, separators=(",", ":"))."""
        return "".join(_encode(value, 0))

else:  # pragma: no cover - CPython always has the C accelerator
    _dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _sentence(err: BaseException) -> str:
    """The error's text without a trailing period, so it can end one of our sentences."""
    text = str(err).strip() or type(err).__name__
    return text.rstrip(".")


def _parse_url(url: str) -> str:
    """`sqlite:///rel/path`, `sqlite:////abs/path`, `sqlite:///:memory:` (as SQLAlchemy) → the path."""
    scheme, sep, rest = url.partition(":")
    if not sep or scheme.lower() != "sqlite":
        raise StoreError(f"Invalid SQLite store URL {url!r}: it must start with sqlite:///.")
    if rest in ("", "//"):
        return ":memory:"
    if not rest.startswith("///"):
        raise StoreError(
            f"Invalid SQLite store URL {url!r}: expected sqlite:///RELATIVE/PATH or sqlite:////ABSOLUTE/PATH."
        )
    path = rest[3:]
    return path or ":memory:"


class _WriterGate:
    """Makes this host's writers to one database file take turns at an flock'ed file (in the temp directory)
    before they ask for SQLite's own write lock.

    SQLite's busy handler sleeps in growing steps (1, 2, 5, 10, ... up to 100 ms) while another connection writes,
    so with several processes writing (workers) a waiter typically starts 5-20 ms after the lock came free, which
    is longer than most writes take; at the gate it starts within WRITER_GATE_POLL_S. Best effort, and never
    stricter than SQLite: a gate file that cannot be used, or a wait past BUSY_TIMEOUT_S (the holder stuck), and
    the writer goes on to SQLite's own locking, which still decides alone. The file is opened once per process
    (flock belongs to the open file, which a forked child would otherwise share with its parent)."""

    def __init__(self, path: str) -> None:
        digest = hashlib.sha1(os.path.realpath(path).encode("utf-8", "surrogateescape")).hexdigest()[:20]
        self.name = os.path.join(tempfile.gettempdir(), f"llmid-sqlite-{digest}.lock")
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int | None:
        if self._pid != os.getpid():
            self._fd, self._pid = None, os.getpid()
            try:
                self._fd = os.open(self.name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            except OSError:
                pass
        return self._fd

    def acquire(self) -> int | None:
        """The gate's file descriptor once held, or None (go on without the gate)."""
        fd = self._file()
        if fd is None:
            return None
        deadline = 0.0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                now = time.monotonic()
                if not deadline:
                    deadline = now + BUSY_TIMEOUT_S
                elif now > deadline:
                    return None
                time.sleep(WRITER_GATE_POLL_S)
            except OSError:
                return None

    @staticmethod
    def release(fd: int | None) -> None:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError:
                pass

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass
        self._fd, self._pid = None, 0


class SQLiteStore(Store):
    """A Store in one SQLite file (or in memory); see the module docstring for durability and threads."""

    def __init__(self, path: str, url: str | None = None) -> None:
        self.path = path
        self.url = url or ("sqlite:///:memory:" if path == ":memory:" else f"sqlite:///{path}")
        self._lock = threading.RLock()
        self._gate = None if path == ":memory:" else _WriterGate(path)
        self._unckpt = 0
        """Bytes written through this store since its last checkpoint (see CHECKPOINT_BYTES)."""
        self._conn: sqlite3.Connection | None = None
        self._conn = self._open()

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        return cls(_parse_url(url), url)

    # ------------------------------------------------------------------ opening

    def _invalid(self, reason: str) -> StoreError:
        return StoreError(f"{self.path} is not a valid LLM-ID SQLite store ({reason}).")

    def _precheck(self) -> None:
        """Catch the common path mistakes before sqlite3 reports them as a bare 'unable to open'."""
        p = Path(self.path)
        if p.is_dir():
            raise StoreError(f"Cannot open store {self.path}: it is a directory, not a file.")
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            raise StoreError(f"Cannot open store {self.path}: directory {parent} does not exist.")
        if p.exists():
            try:
                with p.open("rb") as fh:
                    head = fh.read(len(_SQLITE_MAGIC))
            except OSError as err:
                raise StoreError(f"Cannot open store {self.path}: {_sentence(err)}.") from err
            if head and head != _SQLITE_MAGIC:
                raise self._invalid("file is not a SQLite database")

    def _open(self) -> sqlite3.Connection:
        memory = self.path == ":memory:"
        if not memory:
            self._precheck()
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as err:
            raise StoreError(f"Cannot open store {self.path}: {_sentence(err)}.") from err
        try:
            self._conn = conn
            self._init_schema(conn)
            if not memory:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA wal_autocheckpoint=0")  # done after the gate instead (_checkpoint)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA cache_size=-16000")
        except StoreError:
            conn.close()
            raise
        except sqlite3.Error as err:
            conn.close()
            raise self._error("open", err) from err
        return conn

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        """Create the schema in a fresh file, refuse foreign or newer files, migrate older ones."""
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables:
            # Bigger pages suit ~1 KB log rows (about 10% faster writes); only takes effect on an empty file.
            conn.execute("PRAGMA page_size=8192")
            own = [t for t in tables if not t.startswith("sqlite_") and not t.startswith("logs_fts")]
            if own:
                raise self._invalid(f"it holds other tables ({', '.join(sorted(own)[:3])}) but no LLM-ID schema")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for stmt in SCHEMA:
                    conn.execute(stmt)
                conn.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?), ('created_at', ?)",
                    (str(SCHEMA_VERSION), str(time.time())),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        try:
            version = int(row[0]) if row else -1
        except ValueError:
            version = -1
        if version < 1:
            raise self._invalid("its meta table has no schema version")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer LLM-ID (store schema version {version}, this build "
                f"reads up to {SCHEMA_VERSION}); upgrade LLM-ID to use it."
            )
        if version < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for v in range(version, SCHEMA_VERSION):
                    for stmt in MIGRATIONS.get(v, ()):
                        conn.execute(stmt)
                for stmt in SCHEMA:
                    conn.execute(stmt)
                conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = [t for t in TABLES if t not in tables]
        if missing:
            raise self._invalid(f"tables {', '.join(missing)} are missing")

    # ------------------------------------------------------------------ plumbing

    def _error(self, action: str, err: BaseException) -> StoreError:
        """One sentence for any failure: corruption names the file, the rest says what could not be done."""
        if isinstance(err, StoreError):
            return err
        if isinstance(err, sqlite3.DatabaseError) and getattr(err, "sqlite_errorname", "") in _CORRUPT:
            return self._invalid(_sentence(err))
        return StoreError(f"Cannot {action} store {self.path}: {_sentence(err)}.")

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"The store {self.path} is closed.")
        return self._conn

    @contextmanager
    def _tx(self, action: str, write: bool = True, size: int = 8192) -> Iterator[sqlite3.Connection]:
        """One transaction: IMMEDIATE for writes (take the lock up front, no upgrade deadlock), a consistent
        snapshot for reads. Rolled back on any error; Ctrl-C is re-raised as is after the rollback. A write of
        about `size` bytes may checkpoint the WAL once committed (`_checkpoint`)."""
        with self._lock:
            conn = self._db
            gate = self._gate.acquire() if write and self._gate is not None else None
            try:
                try:
                    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                except sqlite3.Error as err:
                    raise self._error(action, err) from err
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException as err:
                    try:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                    if isinstance(err, Exception):
                        raise self._error(action, err) from err
                    raise
            finally:
                _WriterGate.release(gate)
            if write and self._gate is not None:
                self._checkpoint(conn, size)

    def _checkpoint(self, conn: sqlite3.Connection, size: int) -> None:
        """Copy the WAL into the database file every CHECKPOINT_BYTES, outside the write lock. Best effort: a
        checkpoint that fails or stops short (readers still on old pages) is done again by a later write."""
        self._unckpt += size
        if self._unckpt < CHECKPOINT_BYTES:
            return
        self._unckpt = 0
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            pass

    def close(self) -> None:
        """Close the connection (a WAL checkpoint runs when the last connection to the file closes)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._gate is not None:
                self._gate.close()

    def check(self) -> list[str]:
        """`PRAGMA quick_check` (O(file size), so not run at open): [] when healthy, else the problems.

        A file too damaged to check raises StoreError like any other access to it.
        """
        with self._tx("check", write=False) as conn:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check")]
        return [] if rows == ["ok"] else rows

    # ------------------------------------------------------------------ writing

    def write(self, batch: Batch) -> None:
        """Upsert everything in one transaction and keep every template's `count` equal to its stored records.

        Counts move by the batch's delta (records added to a template, records an upsert moved away from one),
        so re-writing a batch changes nothing and a write costs O(batch), not O(store); a template row that is
        new to the store is counted from scratch, since its records may have arrived in earlier batches.
        """
        if not batch:
            return
        rows, states = self._encode(batch)  # before the lock: parallel writers wait less
        with self._tx("write to", size=self._size(rows, states)) as conn:
            self._write_batch(conn, batch, rows, states)

    def _encode(self, batch: Batch) -> tuple[list[tuple[Any, ...]], list[tuple[str, str | None]]]:
        """The batch's record rows and state values (None: delete), JSON-encoded."""
        try:
            states = [(key, None if value is None else _dumps(value)) for key, value in batch.state.items()]
            return self._record_rows(batch.records), states
        except Exception as err:  # noqa: BLE001 - e.g. an unserialisable parameter: one sentence, as in _tx
            raise self._error("write to", err) from err

    @staticmethod
    def _size(rows: list[tuple[Any, ...]], states: list[tuple[str, str | None]]) -> int:
        """About what a batch adds to the WAL: its records' documents and its state values, a page at least."""
        return max(8192, sum(len(r[-1]) for r in rows) + sum(len(t) for _, t in states if t is not None))

    def write_guarded(self, batch: Batch, key: str, expected: Any) -> bool:
        """Write `batch` only while state `key` still holds `expected`, check and write in one transaction, so
        several worker processes can advance one cursor without a lock manager (see Store.write_guarded)."""
        rows, states = self._encode(batch)
        with self._tx("write to", size=self._size(rows, states)) as conn:
            row = conn.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
            if (None if row is None else json.loads(row[0])) != expected:
                return False
            self._write_batch(conn, batch, rows, states)
        return True

    def _write_batch(self, conn: sqlite3.Connection, batch: Batch, rows: list[tuple[Any, ...]],
                     states: list[tuple[str, str | None]]) -> None:
        """The body of `write`, inside the caller's transaction; a state value of None deletes that key."""
        delta: Counter[str] = Counter()
        if rows:
            delta = self._write_records(conn, rows)
        fresh: set[str] = set()
        if batch.templates:
            fresh = self._write_templates(conn, batch.templates)
        if batch.incidents:
            self._write_incidents(conn, batch.incidents)
        if batch.recommendations:
            self._write_recommendations(conn, batch.recommendations)
        deleted = [(key,) for key, text in states if text is None]
        if deleted:
            conn.executemany("DELETE FROM state WHERE key=?", deleted)
        put = [(key, text) for key, text in states if text is not None]
        if put:
            conn.executemany(
                "INSERT INTO state(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", put
            )
        moved = [(n, n, tid) for tid, n in delta.items() if n and tid not in fresh]
        if moved:
            conn.executemany(
                "UPDATE templates SET count = count + ?, doc = json_set(doc, '$.count', count + ?)"
                " WHERE template_id = ?",
                moved,
            )
        if fresh:
            self._recount(conn, fresh)

    @staticmethod
    def _record_rows(records: list[LogRecord]) -> list[tuple[Any, ...]]:
        """The `logs` rows of the records, documents encoded (the costly part of a write, done outside the lock)."""
        rows = []
        for r in records:
            rows.append(
                (
                    r.record_id,
                    r.timestamp,
                    r.level,
                    r.service,
                    r.host,
                    r.template_id,
                    r.incident_id,
                    float(r.anomaly_score),
                    float(r.root_cause_score),
                    r.source,
                    r.line_id,
                    r.offset,
                    r.message,
                    _dumps(r.to_doc()),
                )
            )
        return rows

    def _write_records(self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> Counter[str]:
        """Upsert encoded record rows; return how many records each template gained (negative: lost)."""
        # The template each already-stored record belongs to now, to count records an upsert moves.
        current: dict[str, str | None] = dict(
            conn.execute(
                "SELECT id, template_id FROM logs WHERE id IN (SELECT value FROM json_each(?))",
                (_dumps([row[0] for row in rows]),),
            ).fetchall()
        )
        delta: Counter[str] = Counter()
        missing = object()
        fresh: list[tuple[Any, ...]] = []
        again: list[tuple[Any, ...]] = []
        for row in rows:
            rid, new = row[0], row[5]
            old = current.get(rid, missing)
            (fresh if old is missing else again).append(row)
            if old is missing or old != new:
                if new is not None:
                    delta[new] += 1
                if old is not missing and old is not None:
                    delta[old] -= 1  # type: ignore[index]
                current[rid] = new
        # New rows get rids above the current maximum (we hold the write lock), so one INSERT ... SELECT
        # indexes exactly them in FTS afterwards. Rows new to the store take a plain INSERT (an upsert costs
        # SQLite three times as much per row), in batch order, so they get the rids the upsert would give
        # them; the rest (stored before, or repeated in the batch) are upserted after them, in batch order.
        (last_rid,) = conn.execute("SELECT coalesce(max(rid), 0) FROM logs").fetchone()
        insert = """INSERT INTO logs(id, ts, level, service, host, template_id, incident_id, anomaly_score,
                                root_cause_score, source, line_id, "offset", message, doc)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
        if fresh:
            conn.executemany(insert, fresh)
        if again:
            conn.executemany(
                insert + """
               ON CONFLICT(id) DO UPDATE SET
                 ts=excluded.ts, level=excluded.level, service=excluded.service, host=excluded.host,
                 template_id=excluded.template_id, incident_id=excluded.incident_id,
                 anomaly_score=excluded.anomaly_score, root_cause_score=excluded.root_cause_score,
                 source=excluded.source, line_id=excluded.line_id, "offset"=excluded."offset",
                 message=excluded.message, doc=excluded.doc
               WHERE logs.doc IS NOT excluded.doc""",
                again,
            )
        conn.execute("INSERT INTO logs_fts(rowid, message) SELECT rid, message FROM logs WHERE rid > ?", (last_rid,))
        return delta

    def _write_templates(self, conn: sqlite3.Connection, templates: list[Template]) -> set[str]:
        """Upsert template documents keeping the stored count; return the ids new to the store."""
        ids = [t.template_id for t in templates]
        known = {
            r[0]
            for r in conn.execute(
                "SELECT template_id FROM templates WHERE template_id IN (SELECT value FROM json_each(?))",
                (_dumps(ids),),
            )
        }
        conn.executemany(
            """INSERT INTO templates(template_id, template, service, count, doc) VALUES (?, ?, ?, 0, ?)
               ON CONFLICT(template_id) DO UPDATE SET
                 template=excluded.template, service=excluded.service,
                 doc=json_set(excluded.doc, '$.count', templates.count)""",
            [(t.template_id, t.template, t.service, _dumps(t.to_doc())) for t in templates],
        )
        return set(ids) - known

    def _recount(self, conn: sqlite3.Connection, template_ids: set[str] | None = None) -> None:
        """Set `count` (column and document) from the stored records, for the given templates or all."""
        target = (
            "SELECT template_id AS value FROM templates" if template_ids is None else "SELECT value FROM json_each(?)"
        )
        conn.execute(
            f"""UPDATE templates SET count = x.c, doc = json_set(templates.doc, '$.count', x.c)
               FROM (SELECT t.value AS tid,
                            (SELECT count(*) FROM logs WHERE logs.template_id = t.value) AS c
                     FROM ({target}) AS t) AS x
               WHERE templates.template_id = x.tid
                 AND (templates.count IS NOT x.c OR json_extract(templates.doc, '$.count') IS NOT x.c)""",
            () if template_ids is None else (_dumps(sorted(template_ids)),),
        )

    def recount(self) -> None:
        """Recompute every template's count from scratch (maintenance; writes keep counts exact already)."""
        with self._tx("recount templates in") as conn:
            self._recount(conn)

    def _write_incidents(self, conn: sqlite3.Connection, incidents: list[Incident]) -> None:
        rows = []
        for inc in incidents:
            first = inc.ranking[0].first_seen if inc.ranking else None
            rows.append(
                (
                    inc.incident_id,
                    float(inc.anomaly_score),
                    inc.window_start if first is None else first,
                    inc.source,
                    inc.status,
                    _dumps(inc.to_doc()),
                )
            )
        conn.executemany(
            """INSERT INTO incidents(incident_id, anomaly_score, ts, source, status, doc)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT(incident_id) DO UPDATE SET
                 anomaly_score=excluded.anomaly_score, ts=excluded.ts, source=excluded.source,
                 status=excluded.status, doc=excluded.doc""",
            rows,
        )

    def _write_recommendations(self, conn: sqlite3.Connection, recs: list[Recommendation]) -> None:
        """Upsert; a status a person already set (approved, ...) survives the engine re-proposing it."""
        ids = _dumps([r.recommendation_id for r in recs])
        stored = {
            rid: (status, json.loads(doc))
            for rid, status, doc in conn.execute(
                "SELECT recommendation_id, status, doc FROM recommendations"
                " WHERE recommendation_id IN (SELECT value FROM json_each(?))",
                (ids,),
            )
        }
        rows = []
        for r in recs:
            doc = r.to_doc()
            prev = stored.get(r.recommendation_id)
            if prev is not None and prev[0] != "proposed" and r.status == "proposed":
                doc["status"] = prev[0]
                if doc.get("outcome") is None:
                    doc["outcome"] = prev[1].get("outcome")
            rows.append((r.recommendation_id, r.incident_id, doc["status"], _dumps(doc)))
        conn.executemany(
            """INSERT INTO recommendations(recommendation_id, incident_id, status, doc) VALUES (?, ?, ?, ?)
               ON CONFLICT(recommendation_id) DO UPDATE SET
                 incident_id=excluded.incident_id, status=excluded.status, doc=excluded.doc""",
            rows,
        )

    # ------------------------------------------------------------------ state

    @staticmethod
    def _put_state(conn: sqlite3.Connection, key: str, value: Any) -> None:
        conn.execute(
            "INSERT INTO state(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, _dumps(value)),
        )

    def save_state(self, key: str, value: Any) -> None:
        with self._tx("save state to") as conn:
            self._put_state(conn, key, value)

    def load_state(self, key: str) -> Any | None:
        with self._tx("read state from", write=False) as conn:
            row = conn.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    # ------------------------------------------------------------------ reading

    @staticmethod
    def _page_args(limit: int, offset: int) -> tuple[int, int]:
        return max(0, min(int(limit), MAX_LIMIT)), max(0, int(offset))

    @staticmethod
    def _hit(doc_id: str, doc: str) -> dict[str, Any]:
        hit: dict[str, Any] = json.loads(doc)
        hit["_id"] = doc_id
        return hit

    def stats(self) -> dict[str, int]:
        with self._tx("read", write=False) as conn:
            return {
                name: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                for name, table in (
                    ("records", "logs"),
                    ("templates", "templates"),
                    ("incidents", "incidents"),
                    ("recommendations", "recommendations"),
                )
            }

    def search(self, query: SearchQuery) -> Page:
        """FTS5 match on messages plus filters, newest first (ts DESC, then later lines first).

        `level` compares case-insensitively; `since` and `until` are inclusive epoch seconds. A text query
        that is not valid FTS5 syntax (`foo"`, a bare `AND`) is retried with every word quoted as a literal.
        """
        where, args = self._filters(query)
        text = (query.text or "").strip()
        limit, offset = self._page_args(query.limit, query.offset)
        if not text:
            return self._search(where, args, limit, offset)
        return self._with_text(text, lambda w, a: self._search(w, a, limit, offset), where, args)

    @staticmethod
    def _filters(query: SearchQuery) -> tuple[list[str], list[Any]]:
        """WHERE terms and arguments of every filter of `query` but its text."""
        where: list[str] = []
        args: list[Any] = []
        if query.template_id is not None:
            where.append("template_id = ?")
            args.append(query.template_id)
        if query.level is not None:
            where.append("level = ? COLLATE NOCASE")
            args.append(query.level)
        if query.service is not None:
            where.append("service = ?")
            args.append(query.service)
        if query.since is not None:
            where.append("ts >= ?")
            args.append(float(query.since))
        if query.until is not None:
            where.append("ts <= ?")
            args.append(float(query.until))
        if query.incident_id is not None:
            where.append("incident_id = ?")
            args.append(query.incident_id)
        return where, args

    def _with_text(self, text: str, run: Callable[[list[str], list[Any]], _T], where: list[str],
                   args: list[Any]) -> _T:
        """Run a query with an FTS5 match added; invalid FTS5 syntax is retried with every word quoted."""
        fts_where = [*where, "rid IN (SELECT rowid FROM logs_fts WHERE logs_fts MATCH ?)"]
        try:
            return run(fts_where, [*args, text])
        except StoreError as err:
            if not isinstance(err.__cause__, sqlite3.OperationalError) or "locked" in str(err):
                raise
        quoted = " ".join('"' + word.replace('"', '""') + '"' for word in text.split())
        try:
            return run(fts_where, [*args, quoted])
        except StoreError as err:
            if not isinstance(err.__cause__, sqlite3.OperationalError) or "locked" in str(err):
                raise
            raise StoreError(
                f"Cannot search store {self.path}: {text!r} is not a valid full-text query "
                f"({_sentence(err.__cause__)})."
            ) from err

    def _search(self, where: list[str], args: list[Any], limit: int, offset: int) -> Page:
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        with self._tx("search", write=False) as conn:
            total = int(conn.execute(f"SELECT count(*) FROM logs{clause}", args).fetchone()[0])
            rows = conn.execute(
                f"SELECT id, doc FROM logs{clause} ORDER BY ts DESC, line_id DESC, rid DESC LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
        return Page(total, [self._hit(i, d) for i, d in rows])

    def _filtered(self, query: SearchQuery | None, run: Callable[[list[str], list[Any]], _T]) -> _T:
        where, args = self._filters(query) if query is not None else ([], [])
        text = ((query.text if query is not None else None) or "").strip()
        return self._with_text(text, run, where, args) if text else run(where, args)

    def histogram(self, query: SearchQuery | None = None, interval_s: float | None = None,
                  by: str | None = None) -> dict[str, Any]:
        """Counts per time bucket (and per `by`), one GROUP BY over the filtered records; see Store.histogram."""
        if by is not None and by not in AGG_FIELDS:
            raise StoreError(f"Cannot group by {by!r}: expected one of {', '.join(AGG_FIELDS)}.")
        if interval_s is not None and not interval_s > 0:
            raise StoreError("The histogram interval must be a positive number of seconds.")

        def run(where: list[str], args: list[Any]) -> dict[str, Any]:
            clause = " WHERE " + " AND ".join([*where, "ts IS NOT NULL"])
            with self._tx("aggregate", write=False) as conn:
                step = interval_s
                if step is None:
                    lo, hi = conn.execute(f"SELECT min(ts), max(ts) FROM logs{clause}", args).fetchone()
                    step = nice_interval((hi - lo) if lo is not None else 0.0)
                key = by or "NULL"
                rows = conn.execute(
                    f"SELECT CAST(ts / ? AS INTEGER) AS b, {key} AS k, count(*) FROM logs{clause}"
                    " GROUP BY b, k ORDER BY b, k",
                    [step, *args],
                ).fetchall()
            return {"interval_s": step, "buckets": [{"t": iso(b * step), "key": k, "count": n} for b, k, n in rows]}

        return self._filtered(query, run)

    def facet(self, field: str, query: SearchQuery | None = None, size: int = 20) -> list[dict[str, Any]]:
        """Most frequent values of `field` among the filtered records (one GROUP BY)."""
        if field not in AGG_FIELDS:
            raise StoreError(f"Cannot count values of {field!r}: expected one of {', '.join(AGG_FIELDS)}.")

        def run(where: list[str], args: list[Any]) -> list[dict[str, Any]]:
            clause = (" WHERE " + " AND ".join(where)) if where else ""
            with self._tx("aggregate", write=False) as conn:
                rows = conn.execute(
                    f"SELECT {field}, count(*) AS c FROM logs{clause} GROUP BY {field} ORDER BY c DESC, {field}"
                    " LIMIT ?",
                    [*args, max(0, min(int(size), MAX_LIMIT))],
                ).fetchall()
            return [{"key": k, "count": n} for k, n in rows]

        return self._filtered(query, run)

    def templates(self, limit: int = 100, offset: int = 0) -> Page:
        limit, offset = self._page_args(limit, offset)
        with self._tx("read templates from", write=False) as conn:
            total = int(conn.execute("SELECT count(*) FROM templates").fetchone()[0])
            rows = conn.execute(
                "SELECT template_id, doc FROM templates ORDER BY count DESC, template_id LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
        return Page(total, [self._hit(i, d) for i, d in rows])

    def _attach_recommendations(self, conn: sqlite3.Connection, incidents: list[dict[str, Any]]) -> None:
        by_id: dict[str, list[dict[str, Any]]] = {inc["_id"]: [] for inc in incidents}
        if by_id:
            for rid, iid, doc in conn.execute(
                "SELECT recommendation_id, incident_id, doc FROM recommendations"
                " WHERE incident_id IN (SELECT value FROM json_each(?)) ORDER BY rid",
                (_dumps(list(by_id)),),
            ):
                by_id[iid].append(self._hit(rid, doc))
        for inc in incidents:
            inc["recommendations"] = by_id[inc["_id"]]

    def incidents(self, limit: int = 100, offset: int = 0, min_score: float = 0.0) -> Page:
        limit, offset = self._page_args(limit, offset)
        with self._tx("read incidents from", write=False) as conn:
            total = int(
                conn.execute("SELECT count(*) FROM incidents WHERE anomaly_score >= ?", (float(min_score),)).fetchone()[
                    0
                ]
            )
            rows = conn.execute(
                "SELECT incident_id, doc FROM incidents WHERE anomaly_score >= ?"
                " ORDER BY anomaly_score DESC, ts DESC, incident_id LIMIT ? OFFSET ?",
                (float(min_score), limit, offset),
            ).fetchall()
            hits = [self._hit(i, d) for i, d in rows]
            self._attach_recommendations(conn, hits)
        return Page(total, hits)

    def get_incident(self, incident_id: str) -> dict[str, Any] | None:
        with self._tx("read incidents from", write=False) as conn:
            row = conn.execute("SELECT incident_id, doc FROM incidents WHERE incident_id=?", (incident_id,))
            found = row.fetchone()
            if found is None:
                return None
            hit = self._hit(*found)
            self._attach_recommendations(conn, [hit])
        return hit

    def recommendations(self, incident_id: str | None = None, limit: int = 100) -> Page:
        limit, _ = self._page_args(limit, 0)
        clause, args = ("WHERE incident_id = ?", [incident_id]) if incident_id is not None else ("", [])
        with self._tx("read recommendations from", write=False) as conn:
            total = int(conn.execute(f"SELECT count(*) FROM recommendations {clause}", args).fetchone()[0])
            rows = conn.execute(
                f"SELECT recommendation_id, doc FROM recommendations {clause} ORDER BY rid LIMIT ?",
                [*args, limit],
            ).fetchall()
        return Page(total, [self._hit(i, d) for i, d in rows])

    def get_recommendation(self, recommendation_id: str) -> dict[str, Any] | None:
        with self._tx("read recommendations from", write=False) as conn:
            row = conn.execute(
                "SELECT recommendation_id, doc FROM recommendations WHERE recommendation_id=?", (recommendation_id,)
            ).fetchone()
        return None if row is None else self._hit(*row)

    # ------------------------------------------------------------------ approvals and audit

    def set_recommendation_status(
        self, recommendation_id: str, status: str, actor: str, reason: str | None = None
    ) -> dict[str, Any]:
        """Change a recommendation's status and record who did it and why in the audit log, atomically."""
        if status not in RECOMMENDATION_STATUSES:
            raise StoreError(
                f"Invalid recommendation status {status!r}: expected one of {', '.join(RECOMMENDATION_STATUSES)}."
            )
        with self._tx("update recommendation in") as conn:
            row = conn.execute(
                "SELECT status, doc FROM recommendations WHERE recommendation_id=?", (recommendation_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"No recommendation {recommendation_id!r} in store {self.path}.")
            previous, doc_text = row
            doc = json.loads(doc_text)
            doc["status"] = status
            conn.execute(
                "UPDATE recommendations SET status=?, doc=? WHERE recommendation_id=?",
                (status, _dumps(doc), recommendation_id),
            )
            self._put_audit(
                conn,
                actor,
                f"recommendation.{status}",
                recommendation_id,
                {
                    "previous": previous,
                    "status": status,
                    "reason": reason,
                    "incident_id": doc.get("incident_id"),
                },
            )
        doc["_id"] = recommendation_id
        return doc

    # ------------------------------------------------------------------ objects (rules, tokens, firings)

    def put_object(self, kind: str, object_id: str, doc: dict[str, Any]) -> None:
        with self._tx("write to") as conn:
            conn.execute(
                "INSERT INTO objects(kind, id, ts, doc) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(kind, id) DO UPDATE SET ts=excluded.ts, doc=excluded.doc",
                (kind, object_id, time.time(), _dumps(doc)),
            )

    def get_object(self, kind: str, object_id: str) -> dict[str, Any] | None:
        with self._tx("read", write=False) as conn:
            row = conn.execute("SELECT id, doc FROM objects WHERE kind=? AND id=?", (kind, object_id)).fetchone()
        return None if row is None else self._hit(*row)

    def list_objects(self, kind: str, limit: int = 1000) -> list[dict[str, Any]]:
        limit, _ = self._page_args(limit, 0)
        with self._tx("read", write=False) as conn:
            rows = conn.execute(
                "SELECT id, doc FROM objects WHERE kind=? ORDER BY rowid LIMIT ?", (kind, limit)
            ).fetchall()
        return [self._hit(i, d) for i, d in rows]

    def delete_object(self, kind: str, object_id: str) -> bool:
        with self._tx("delete from") as conn:
            return conn.execute("DELETE FROM objects WHERE kind=? AND id=?", (kind, object_id)).rowcount > 0

    def claim_object(self, kind: str, object_id: str, doc: dict[str, Any], cooldown_s: float) -> bool:
        now = time.time()
        with self._tx("write to") as conn:
            row = conn.execute("SELECT ts FROM objects WHERE kind=? AND id=?", (kind, object_id)).fetchone()
            if row is not None and now - float(row[0]) < cooldown_s:
                return False
            conn.execute(
                "INSERT INTO objects(kind, id, ts, doc) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(kind, id) DO UPDATE SET ts=excluded.ts, doc=excluded.doc",
                (kind, object_id, now, _dumps(doc)),
            )
        return True

    @staticmethod
    def _put_audit(
        conn: sqlite3.Connection, actor: str, action: str, object_id: str | None, details: dict[str, Any]
    ) -> None:
        conn.execute(
            "INSERT INTO audit(ts, actor, action, object_id, details) VALUES (?, ?, ?, ?, ?)",
            (time.time(), actor, action, object_id, _dumps(details)),
        )

    def record_audit(
        self, actor: str, action: str, object_id: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        """Append one audit entry (for actions other than status changes, e.g. an executed runbook)."""
        with self._tx("write audit to") as conn:
            self._put_audit(conn, actor, action, object_id, details or {})

    def audit(self, limit: int = 100) -> list[dict[str, Any]]:
        """Audit entries, newest first."""
        limit, _ = self._page_args(limit, 0)
        with self._tx("read audit from", write=False) as conn:
            rows = conn.execute(
                "SELECT id, ts, actor, action, object_id, details FROM audit ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            {"id": i, "ts": ts, "actor": a, "action": act, "object_id": o, "details": json.loads(d)}
            for i, ts, a, act, o, d in rows
        ]
