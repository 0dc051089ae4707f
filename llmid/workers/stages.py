"""The three worker stages as plain functions of (context, message) → follow-up messages: engine in, store out.

A run (one `ingest --broker` of one source) flows through three queues:

- **structure** (`llmid.structure`), one message per chunk of input: parse the chunk and mask its tokens (the
  costly part, in parallel on every worker), then, in input order, assign templates and windows and commit the
  structured records to the store, grouped per window ("pieces"), with the miner and windower state. A window
  closes exactly as in-process: when a record of the same source falls past its end on the source's clock, at
  `window_max_lines`, or at end of input. Chunks are processed in input order (a compare-and-set cursor in the
  store), so the source clock seen at a chunk is final and no grace period is needed.
- **reason** (`llmid.reason`), one message per closed window: read its records from the store, score it with
  the reasoner's history (in window order, another cursor) and commit the verdict.
- **plan**: recommend and safety-gate an action for an incident, and write the window's final documents
  (records with their scores, incident, recommendations) in one transaction. The worker that committed the
  verdicts does this right away, with the records and incidents still in memory, before its reason message is
  acknowledged; a plan message (`llmid.plan`) is sent only when that did not happen (the worker died or the
  write failed: the re-delivered reason message finds its verdicts committed and sends it).

Every step is idempotent: a message delivered twice, or re-done after its worker died before acknowledging it,
finds its cursor already moved (or its verdict already consumed) and only re-sends what it would have sent. The
same functions run in-process without a broker (`llmid.workers.local`), which is how the tests hold them to
the in-process pipeline's results.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from llmid.config import Settings
from llmid.documents import Batch, Incident, LogRecord
from llmid.engine.pipeline import REASONER_STATE_KEY, Pipeline
from llmid.engine.structurer import STATE_KEY, Structurer
from llmid.engine.tokens import mask_tokens, tokenize
from llmid.engine.windows import Window, Windower
from llmid.store import Store, open_store
from llmid.workers.chunks import parse_chunk
from llmid.workers.runstate import (
    Keys,
    incident_from_json,
    incident_to_json,
    reasoner_load,
    reasoner_to_json,
    records_from_json,
    records_to_json,
    structurer_from_json,
    structurer_to_json,
    window_pieces,
    windower_from_json,
    windower_to_json,
)

log = logging.getLogger("llmid.workers")

STRUCTURE, REASON, PLAN, KICK = "structure", "reason", "plan", "kick"
QUEUES = {STRUCTURE: "llmid.structure", REASON: "llmid.reason", PLAN: "llmid.plan", KICK: "llmid.reason"}
"""Queue of each task: per stage, so model-heavy stages can get their own (GPU) workers."""

WAITED_S = 0.005
"""A step whose turn took longer than this to come was not on its chain's worker (see Context.prefer)."""
TURN_WAIT_S = 0.25
"""How long a message waits for its predecessor to commit before it is put back on its queue (with a growing
delay): long enough for a predecessor another worker is finishing, short enough not to block a worker behind a
predecessor that was lost (it comes back when the ingesting side re-sends it)."""
STATE_EVERY_CHUNKS = 50
"""Save the global miner state this often during a run, as the in-process runner does."""
PIECE_CACHE_RECORDS = 200_000
"""Records of committed pieces a worker keeps decoded in memory (Context.piece): the reason and plan steps of a
window that run on the worker that structured it skip decoding its pieces from the store again."""
PAYLOAD_VERSION = 1

FollowUp = tuple[str, dict[str, Any]]


class Malformed(Exception):
    """The message cannot be a task of ours (missing or mistyped fields): dead-lettered, never retried."""


class NotYet(Exception):
    """The message's predecessor has not committed yet: put it back on the queue for later."""


class UnknownRun(Exception):
    """The message belongs to no run in the store (finished and cleaned up, or never created): dropped."""


def _test_delay(what: str) -> None:
    """Fault-injection hook of the crash tests: sleep LLMID_WORKERS_TEST_DELAY seconds before each commit, after
    noting `pid what` in the file LLMID_WORKERS_TEST_MARK, so a test can kill a worker in the middle of a batch."""
    delay = float(os.environ.get("LLMID_WORKERS_TEST_DELAY") or 0)
    if delay > 0:
        mark = os.environ.get("LLMID_WORKERS_TEST_MARK")
        if mark:
            with open(mark, "a", encoding="utf-8") as fh:
                fh.write(f"{os.getpid()} {what}\n")
        time.sleep(delay)


# -- message checks ------------------------------------------------------------------------------------------
_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    STRUCTURE: {"run": str, "store": str, "seq": int, "data": str, "line": int, "offset": int, "adjust": list,
                "context": list},
    REASON: {"run": str, "store": str, "window": int},
    PLAN: {"run": str, "store": str, "window": int},
    KICK: {"run": str, "store": str},
}


def check(task: str, payload: Any) -> dict[str, Any]:
    """The payload if it has every field of its task with the right type; Malformed (one sentence) otherwise."""
    if task not in _FIELDS:
        raise Malformed(f"Unknown task {task!r}.")
    if not isinstance(payload, dict):
        raise Malformed(f"The {task} message is a {type(payload).__name__}, not an object.")
    if payload.get("v", PAYLOAD_VERSION) != PAYLOAD_VERSION:
        raise Malformed(f"The {task} message has version {payload.get('v')!r}; this worker reads {PAYLOAD_VERSION}.")
    for name, kind in _FIELDS[task].items():
        value = payload.get(name)
        if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
            raise Malformed(f"The {task} message has no valid {name!r} field.")
    for name in ("seq", "window", "line", "offset"):
        if name in _FIELDS[task] and payload[name] < 0:
            raise Malformed(f"The {task} message has a negative {name!r}.")
    return payload


# -- the per-process context ---------------------------------------------------------------------------------
@dataclass(slots=True)
class _Structuring:
    next_seq: int
    structurer: Structurer
    windower: Windower
    progress: dict[str, Any]


@dataclass(slots=True)
class _Reasoning:
    next_window: int
    pipe: Pipeline
    state: dict[str, Any]


@dataclass(slots=True)
class Context:
    """What one worker process keeps between messages: open stores and warm engine objects.

    Nothing here is needed for correctness: a cache that does not match the store's cursor is thrown away and
    rebuilt from the store, so a fresh process (or one that lost a race) continues exactly where the run is."""

    warn: Callable[[str], None] | None = None
    _stores: dict[str, Store] = field(default_factory=dict)
    _pid: int = field(default_factory=os.getpid)
    _meta: OrderedDict[str, tuple[dict[str, Any], Settings]] = field(default_factory=OrderedDict)
    _structuring: dict[str, _Structuring] = field(default_factory=dict)
    _reasoning: dict[str, _Reasoning] = field(default_factory=dict)
    _planners: dict[str, Pipeline] = field(default_factory=dict)
    _pieces: OrderedDict[tuple[str, str], dict[str, list[Any]]] = field(default_factory=OrderedDict)
    _piece_records: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)
    prefer: str | None = None
    """The stage whose message this worker should take next (app.ChainCycle): the chain (structure or reason)
    whose turn came at once, else the other one."""

    def store(self, url: str) -> Store:
        """One open store per URL and process (a forked child never reuses its parent's connections)."""
        if os.getpid() != self._pid:
            self._stores, self._pid = {}, os.getpid()
        s = self._stores.get(url)
        if s is None:
            s = self._stores[url] = open_store(url)
        return s

    def reset_store(self, url: str) -> None:
        """Drop a store after an error, so the next message reconnects."""
        s = self._stores.pop(url, None)
        if s is not None:
            try:
                s.close()
            except Exception:  # noqa: BLE001 - it is being thrown away
                pass

    def keep_pieces(self, url: str, pieces: dict[str, dict[str, list[Any]]]) -> None:
        """Remember pieces this worker has just committed (their columns, as written). A piece never changes
        once its chunk is committed (its key names the run, the window and the chunk), so a copy is as good as
        the store's until the piece is deleted; the oldest are forgotten beyond PIECE_CACHE_RECORDS."""
        with self._lock:
            for key, cols in pieces.items():
                old = self._pieces.pop((url, key), None)
                if old is not None:
                    self._piece_records -= len(old["line_id"])
                self._pieces[(url, key)] = cols
                self._piece_records += len(cols["line_id"])
            while self._piece_records > PIECE_CACHE_RECORDS and self._pieces:
                _, cols = self._pieces.popitem(last=False)
                self._piece_records -= len(cols["line_id"])

    def piece(self, store: Store, key: str) -> dict[str, list[Any]] | None:
        """A piece's columns: from this worker's memory if it committed the piece, else from the store."""
        hit = self._pieces.get((store.url, key))
        return hit if hit is not None else store.load_state(key)

    def drop_pieces(self, url: str, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                cols = self._pieces.pop((url, key), None)
                if cols is not None:
                    self._piece_records -= len(cols["line_id"])

    def run(self, store: Store, keys: Keys) -> tuple[dict[str, Any], Settings]:
        """The run's metadata and settings (the ingesting side's, not this worker's)."""
        hit = self._meta.get(keys.run)
        if hit is None:
            meta = store.load_state(keys.meta)
            if not isinstance(meta, dict):
                raise UnknownRun(f"No run {keys.run} in {store.url}.")
            names = {f.name for f in dataclasses.fields(Settings)}
            settings = Settings(**{k: v for k, v in meta.get("settings", {}).items() if k in names})
            hit = self._meta[keys.run] = (meta, settings)
            while len(self._meta) > 8:
                old, _ = self._meta.popitem(last=False)
                for cache in (self._structuring, self._reasoning, self._planners):
                    cache.pop(old, None)
        return hit


def wait_turn(store: Store, key: str, expected: int, timeout: float = TURN_WAIT_S,
              meanwhile: Iterator[object] | None = None) -> bool:
    """Wait until the cursor `key` reaches `expected` (True), or has passed it: already done (False). While it
    waits, it takes steps of `meanwhile` (each short) instead of sleeping, until they run out."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        cur = store.load_state(key)
        if cur is None:
            raise UnknownRun(f"The run of cursor {key} is gone.")
        if cur == expected:
            return True
        if cur > expected:
            return False
        if time.monotonic() >= deadline:
            raise NotYet(f"{key} is at {cur}, waiting for {expected}.")
        if meanwhile is not None and next(meanwhile, None) is not None:
            continue
        time.sleep(delay)
        delay = min(delay * 1.5, 0.004)


def _warm_masks(records: list[LogRecord], step: int = 50) -> Iterator[object]:
    """Mask the records' tokens, `step` records at a time, for the masking cache (`tokens._mask_cached`) that
    the template miner then reads: done while a chunk waits for its turn, it takes masking off the in-order
    part of the structure step (about a third of it), where it would otherwise be idle time."""
    for i in range(0, len(records), step):
        for rec in records[i:i + step]:
            mask_tokens(tokenize(rec.head))
        yield i


def _msg(task: str, payload: dict[str, Any], **extra: Any) -> FollowUp:
    return task, {"v": PAYLOAD_VERSION, "run": payload["run"], "store": payload["store"], **extra}


# -- structure -----------------------------------------------------------------------------------------------
def structure(ctx: Context, p: dict[str, Any]) -> list[FollowUp]:
    """Structure one chunk (see the module docstring); returns the reason messages of the windows it closed."""
    check(STRUCTURE, p)
    store = ctx.store(p["store"])
    keys = Keys(p["run"])
    meta, settings = ctx.run(store, keys)
    seq = p["seq"]
    nxt = store.load_state(keys.s_next)
    if nxt is None:
        raise UnknownRun(f"No run {keys.run} in {store.url}.")
    if nxt > seq:
        return []
    skip = bool(p.get("skip"))
    records = [] if skip else parse_chunk(p, meta["source"], settings.log_format, settings.max_line_bytes, ctx.warn)
    asked = time.monotonic()
    if not wait_turn(store, keys.s_next, seq, meanwhile=_warm_masks(records)):
        return []
    ctx.prefer = STRUCTURE if time.monotonic() - asked < WAITED_S else REASON
    with ctx._lock:
        st = ctx._structuring.pop(keys.run, None)
        if st is None or st.next_seq != seq:
            st = _load_structuring(store, keys, seq, settings)
        flush = bool(p.get("flush") or p.get("final"))
        state: dict[str, Any] = {}
        closed: list[Window] = []
        if skip:
            st.progress["failed"] = [*st.progress.get("failed", []), seq]
        else:
            st.structurer.structure(records)
            closed = list(st.windower.add(records))
        if flush:
            closed += list(st.windower.flush())
        follow: list[FollowUp] = []
        closed_ids = {id(win) for win in closed}
        written: dict[str, dict[str, list[Any]]] = {}
        for win in [*closed, *st.windower._open.values()]:
            pieces, mine = window_pieces(win, seq)
            if mine:
                written[keys.piece(win.index, seq)] = records_to_json(mine)
            if id(win) in closed_ids:
                state[keys.window(win.index)] = {"index": win.index, "source": win.source, "start": win.start,
                                                 "end": win.end, "pieces": pieces, "save": flush}
        if closed:  # windows close in index order: one message for all of them
            follow.append(_msg(REASON, p, window=closed[0].index, count=len(closed)))
        st.progress["records"] = st.progress.get("records", 0) + len(records)
        st.progress["windows"] = st.progress.get("windows", 0) + len(closed)
        st.progress["chunks"] = seq + 1
        if p.get("final"):
            st.progress["done"] = True
        state[keys.s_state] = {"structurer": structurer_to_json(st.structurer),
                               "windower": windower_to_json(st.windower, seq)}
        state.update(written)
        state[keys.s_progress] = st.progress
        state[keys.s_next] = seq + 1
        if flush or (seq + 1) % STATE_EVERY_CHUNKS == 0:
            state[STATE_KEY] = st.structurer.state()
        batch = Batch(templates=st.structurer.take_changed_templates(), state=state)
        _test_delay(f"structure {seq}")
        if not store.write_guarded(batch, keys.s_next, seq):
            return []
        ctx.keep_pieces(store.url, written)
        # Open windows now hold this chunk's records: keep placeholders instead, as a reload would.
        st.windower = windower_from_json(state[keys.s_state]["windower"], settings.window_seconds,
                                         settings.window_max_lines)
        st.next_seq = seq + 1
        ctx._structuring[keys.run] = st
    return follow


def _load_structuring(store: Store, keys: Keys, seq: int, settings: Settings) -> _Structuring:
    saved = store.load_state(keys.s_state) or {}
    return _Structuring(
        next_seq=seq,
        structurer=structurer_from_json(saved.get("structurer"), settings),
        windower=windower_from_json(saved.get("windower"), settings.window_seconds, settings.window_max_lines),
        progress=dict(store.load_state(keys.s_progress) or {}),
    )


def _window_records(ctx: Context, store: Store, keys: Keys, wmeta: dict[str, Any], source: str) -> list[Any]:
    records = []
    for seq, _n in wmeta["pieces"]:
        cols = ctx.piece(store, keys.piece(wmeta["index"], seq))
        if cols is None:
            raise UnknownRun(f"Piece {seq} of window {wmeta['index']} of run {keys.run} is gone.")
        records.extend(records_from_json(cols, source))
    return records


# -- reason --------------------------------------------------------------------------------------------------
def _window_span(p: dict[str, Any]) -> range:
    return range(p["window"], p["window"] + max(1, int(p.get("count", 1))))


def _verdicts_left(store: Store, keys: Keys, span: range) -> list[int]:
    return [w for w in span if store.load_state(keys.verdict(w)) is not None]


def _plan_msgs(p: dict[str, Any], windows: list[int]) -> list[FollowUp]:
    """One plan message for the windows (their verdicts are written together), if any."""
    if not windows:
        return []
    return [_msg(PLAN, p, window=windows[0], count=windows[-1] - windows[0] + 1)]


def reason(ctx: Context, p: dict[str, Any]) -> list[FollowUp]:
    """Score closed windows (`window`, `count` of them) with the run's reasoner history, in window order, and
    commit their verdicts together (a sparse log closes many small windows per chunk: one transaction)."""
    check(REASON, p)
    store = ctx.store(p["store"])
    keys = Keys(p["run"])
    meta, settings = ctx.run(store, keys)
    span = _window_span(p)
    nxt = store.load_state(keys.r_next)
    if nxt is None:
        raise UnknownRun(f"No run {keys.run} in {store.url}.")
    if nxt >= span.stop:
        return _plan_msgs(p, _verdicts_left(store, keys, span))
    metas = [store.load_state(keys.window(w)) for w in span]
    if any(m is None for m in metas):
        raise NotYet(f"Windows {span.start}..{span.stop - 1} of run {keys.run} are not all closed yet.")
    skip = bool(p.get("skip"))
    windows = [] if skip else [_window_records(ctx, store, keys, m, meta["source"]) for m in metas]
    asked = time.monotonic()
    start = _wait_from(store, keys.r_next, span)
    ctx.prefer = REASON if time.monotonic() - asked < WAITED_S else STRUCTURE
    if start >= span.stop:
        return _plan_msgs(p, _verdicts_left(store, keys, span))
    with ctx._lock:
        rs = ctx._reasoning.pop(keys.run, None)
        if rs is None or rs.next_window != start:
            saved = store.load_state(keys.r_state) or {}
            pipe = Pipeline(settings)
            if saved.get("reasoner"):
                reasoner_load(pipe.reasoner, saved["reasoner"])
            elif saved.get("history"):  # the run's start: the history saved by earlier runs
                pipe.reasoner.load_state(saved["history"])
            rs = _Reasoning(start, pipe, saved)
        state: dict[str, Any] = {}
        incidents: dict[int, Incident] = {}
        save = False
        for w in range(start, span.stop):
            wmeta = metas[w - span.start]
            save = save or bool(wmeta.get("save"))
            if skip:
                state[keys.verdict(w)] = {"failed": True}
                continue
            records = windows[w - span.start]
            win = Window(source=wmeta["source"], index=w, records=records, start=wmeta["start"], end=wmeta["end"])
            incident = rs.pipe.reasoner.reason(win)
            state[keys.verdict(w)] = {
                "anomaly": [r.anomaly_score for r in records],
                "root_cause": [r.root_cause_score for r in records],
                "incident_id": [r.incident_id for r in records],
                "incident": None if incident is None else incident_to_json(incident),
            }
            if incident is not None:
                incidents[w] = incident
                rs.state["incidents"] = [*rs.state.get("incidents", []), incident.incident_id]
        rs.state["reasoner"] = reasoner_to_json(rs.pipe.reasoner)
        rs.state.pop("history", None)
        state[keys.r_state] = rs.state
        state[keys.r_next] = span.stop
        if save:
            state[REASONER_STATE_KEY] = rs.pipe.reasoner.state()
        _test_delay(f"reason {start}")
        if not store.write_guarded(Batch(state=state), keys.r_next, start):
            return _plan_msgs(p, _verdicts_left(store, keys, span))
        rs.next_window = span.stop
        ctx._reasoning[keys.run] = rs
    if skip:
        return _plan_msgs(p, list(range(start, span.stop)))
    done = [Verdict(w, metas[w - span.start], windows[w - span.start], incidents.get(w))
            for w in range(start, span.stop)]
    write_windows(ctx, store, keys, settings, done)
    return []


def _wait_from(store: Store, key: str, span: range) -> int:
    """Wait until the cursor reaches the span; return where it is (the first window still to do, or past it)."""
    wait_turn(store, key, span.start)
    cur = store.load_state(key)
    if cur is None:
        raise UnknownRun(f"The run of cursor {key} is gone.")
    return int(cur)


# -- plan ----------------------------------------------------------------------------------------------------
def plan(ctx: Context, p: dict[str, Any]) -> list[FollowUp]:
    """Write the windows whose verdicts are committed but not yet written (the reason step does this itself;
    this message comes when it could not), from the store."""
    check(PLAN, p)
    store = ctx.store(p["store"])
    keys = Keys(p["run"])
    meta, settings = ctx.run(store, keys)
    done = []
    for w in _window_span(p):
        verdict = store.load_state(keys.verdict(w))
        wmeta = store.load_state(keys.window(w))
        if verdict is None or wmeta is None:
            continue  # already written (a duplicate), or given up
        win_records = _window_records(ctx, store, keys, wmeta, meta["source"])
        incident = None
        if not verdict.get("failed"):
            for rec, a, rc, iid in zip(win_records, verdict["anomaly"], verdict["root_cause"],
                                       verdict["incident_id"], strict=True):
                rec.anomaly_score, rec.root_cause_score, rec.incident_id = a, rc, iid
            if verdict.get("incident") is not None:
                incident = incident_from_json(verdict["incident"])
        done.append(Verdict(w, wmeta, win_records, incident))
    write_windows(ctx, store, keys, settings, done)
    return []


@dataclass(slots=True)
class Verdict:
    """A window reasoned about: its metadata, its records with their scores, its incident (if any)."""

    window: int
    meta: dict[str, Any]
    records: list[Any]
    incident: Incident | None


def write_windows(ctx: Context, store: Store, keys: Keys, settings: Settings, done: list[Verdict]) -> None:
    """Recommend for the windows' incidents and write their final documents in one transaction, consuming
    their verdicts and pieces (so a second write of the same windows finds nothing to do)."""
    if not done:
        return
    records: list[Any] = []
    incidents, recs = [], []
    state: dict[str, Any] = {}
    for v in done:
        if v.incident is not None:
            pipe = ctx._planners.get(keys.run)
            if pipe is None:
                pipe = ctx._planners[keys.run] = Pipeline(settings)
            incidents.append(v.incident)
            recs += pipe.recommend(v.incident, v.records)
        records += v.records
        state[keys.verdict(v.window)] = None
        state[keys.window(v.window)] = None
        for seq, _n in v.meta["pieces"]:
            state[keys.piece(v.window, seq)] = None
    _test_delay(f"plan {done[0].window}")
    store.write(Batch(records=records, incidents=incidents, recommendations=recs, state=state))
    ctx.drop_pieces(store.url, [k for k in state if k.startswith(keys.piece_prefix)])


# -- recovery ------------------------------------------------------------------------------------------------
def kick(ctx: Context, p: dict[str, Any]) -> list[FollowUp]:
    """Re-send what a stalled run is waiting for (messages lost with a broker, say): the windows closed but not
    reasoned about, and every verdict not yet written. Duplicates are harmless, so this may run any time."""
    check(KICK, p)
    store = ctx.store(p["store"])
    keys = Keys(p["run"])
    prog = store.load_state(keys.s_progress) or {}
    nxt = store.load_state(keys.r_next)
    if nxt is None:
        return []
    follow: list[FollowUp] = []
    closed = int(prog.get("windows", 0))
    if nxt < closed:
        follow.append(_msg(REASON, p, window=nxt, count=closed - nxt))
    follow += [_msg(PLAN, p, window=w, count=1) for w in range(nxt) if store.load_state(keys.verdict(w)) is not None]
    return follow


def give_up(ctx: Context, task: str, p: dict[str, Any]) -> list[FollowUp]:
    """What to do with a message of a run that failed too often, so the run still ends (the failure itself
    is recorded as a dead letter by the caller): a chunk is skipped, windows are written without scores, a
    failed write keeps its staged records in the store for inspection."""
    if task in (STRUCTURE, REASON):
        return [(task, {**p, "skip": True})]
    if task == PLAN:
        keys = Keys(p["run"])
        ctx.store(p["store"]).write(Batch(state={keys.verdict(w): None for w in _window_span(p)}))
    return []


STAGES: dict[str, Callable[[Context, dict[str, Any]], list[FollowUp]]] = {
    STRUCTURE: structure, REASON: reason, PLAN: plan, KICK: kick,
}
