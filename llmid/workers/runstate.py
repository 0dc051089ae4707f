"""What a run keeps in the store between tasks, so no worker holds state that dies with it.

The in-process `Pipeline` keeps the template miner, the template documents and the open windows in memory for
the whole run. Workers persist them after every chunk instead (in the store's `state`, keyed per run), so any
worker can take the next chunk, and a worker killed mid-batch loses nothing: its batch is simply done again from
the last committed state. Results must equal the in-process run's exactly, so the miner's exact-match cache is
persisted too (its hits decide which template a line joins) and open windows are restored with placeholders
for the records already staged (the windower only counts them).

Engine objects are reached through a few private attributes here and nowhere else in the workers; the equality
tests (tests/workers) fail if the engine changes under them.
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
from typing import Any

from llmid.config import Settings
from llmid.documents import Incident, LogRecord, RankedEvent, Template
from llmid.engine.structurer import Structurer
from llmid.engine.windows import Window, Windower

PREFIX = "workers.run."


class Keys:
    """State keys of one run; everything under `workers.run.<id>.` is removed when the run is finished."""

    def __init__(self, run: str) -> None:
        p = f"{PREFIX}{run}."
        self.run = run
        self.meta = p + "meta"
        self.s_next = p + "structure.next"
        """Next chunk sequence number to structure (the structure stage's compare-and-set cursor)."""
        self.s_state = p + "structure.state"
        self.s_progress = p + "structure.progress"
        self.r_next = p + "reason.next"
        """Next window index to reason about (the reason stage's compare-and-set cursor)."""
        self.r_state = p + "reason.state"
        self.piece_prefix = p + "piece."

    def piece(self, window: int, seq: int) -> str:
        """Records of chunk `seq` that belong to window `window`, structured, waiting for the window's verdict."""
        return f"{self.piece_prefix}{window}.{seq}"

    def window(self, window: int) -> str:
        return f"{PREFIX}{self.run}.window.{window}"

    def verdict(self, window: int) -> str:
        return f"{PREFIX}{self.run}.verdict.{window}"

    def fixed(self) -> list[str]:
        return [self.meta, self.s_next, self.s_state, self.s_progress, self.r_next, self.r_state]


# -- records -------------------------------------------------------------------------------------------------
_COLUMNS = ("line_id", "offset", "message", "content", "timestamp", "level", "service", "host", "fields",
            "log_format", "template_id", "template", "params", "template_origin")


def records_to_json(records: list[LogRecord]) -> dict[str, list[Any]]:
    """Columns (one list per field): compact, and fast to encode and decode."""
    return {c: [getattr(r, c) for r in records] for c in _COLUMNS}


_POSITIONAL = ([f.name for f in dataclasses.fields(LogRecord)][: len(_COLUMNS) + 1]
               == ["line_id", "source", *_COLUMNS[1:]])
"""LogRecord takes these fields in this order: then records are built positionally (3x faster than keywords)."""


def records_from_json(cols: dict[str, list[Any]], source: str) -> list[LogRecord]:
    n = len(cols["line_id"])
    columns = [cols[c] if c in cols else [None] * n for c in _COLUMNS]  # a piece written before a column existed
    if _POSITIONAL:
        return list(map(LogRecord, columns[0], itertools.repeat(source), *columns[1:]))
    return [LogRecord(source=source, **dict(zip(_COLUMNS, row, strict=True))) for row in zip(*columns, strict=True)]


# -- incidents -----------------------------------------------------------------------------------------------
def incident_to_json(inc: Incident) -> dict[str, Any]:
    """The incident's fields; a chain event that is one of the ranked events is kept as {"ref": index}, because
    the planner tells the root cause from the rest of the chain by identity."""
    d = dataclasses.asdict(inc)
    where = {id(e): i for i, e in enumerate(inc.ranking)}
    d["chain"] = [{"ref": where[id(e)]} if id(e) in where else dataclasses.asdict(e) for e in inc.chain]
    return d


def incident_from_json(d: dict[str, Any]) -> Incident:
    d = dict(d)
    ranking = [RankedEvent(**e) for e in d["ranking"]]
    d["ranking"] = ranking
    d["chain"] = [ranking[e["ref"]] if "ref" in e else RankedEvent(**e) for e in d["chain"]]
    return Incident(**d)


# -- the structurer ------------------------------------------------------------------------------------------
_TEMPLATE_FIELDS = [f.name for f in dataclasses.fields(Template)]


def structurer_to_json(s: Structurer) -> dict[str, Any]:
    """Miner clusters, the miner's exact-match cache in insertion order, and this run's template documents."""
    return {
        "miner": s.miner.to_state(),
        "exact": [[list(k), c.template_id] for k, c in s.miner._exact.items()],
        "docs": [{f: getattr(d, f) for f in _TEMPLATE_FIELDS} for d in s._docs.values()],
    }


_KINDS = len(inspect.signature(Structurer.from_state).parameters) >= 4
"""The engine picks a structurer kind (baseline, learned) from the settings."""


def make_structurer(miner: dict[str, Any] | None, settings: Settings) -> Structurer:
    """The structurer the in-process Pipeline would build for these settings, from a miner state."""
    if _KINDS:
        return Structurer.from_state(miner, settings.similarity, getattr(settings, "structurer", None),
                                     getattr(settings, "structurer_model", None))
    return Structurer.from_state(miner, settings.similarity)


def structurer_from_json(d: dict[str, Any] | None, settings: Settings) -> Structurer:
    d = d or {}
    s = make_structurer(d.get("miner"), settings)
    clusters = s.miner._clusters
    s.miner._exact = {tuple(k): clusters[cid] for k, cid in d.get("exact", []) if cid in clusters}
    s._docs = {t["template_id"]: Template(**t) for t in d.get("docs", [])}
    for tid in s._docs:
        # In-process, a cluster that matched a line during the run has its template string cached, and
        # Cluster.generalize records a refinement in `previous` only when it is (a cold one loses it): warm
        # exactly those, so refinements are recorded as in the in-process run.
        if tid in clusters:
            clusters[tid].template  # noqa: B018 - fills the cache
    return s


# -- the windower --------------------------------------------------------------------------------------------
class Staged:
    """Stands in an open window for a record already staged by an earlier chunk (`seq`)."""

    __slots__ = ("seq",)

    def __init__(self, seq: int) -> None:
        self.seq = seq


def window_pieces(win: Window, seq: int) -> tuple[list[list[int]], list[LogRecord]]:
    """([[chunk seq, records], ...] of the window's earlier pieces, and this chunk's records in it)."""
    pieces: list[list[int]] = []
    mine: list[LogRecord] = []
    for rec in win.records:
        if isinstance(rec, Staged):
            if pieces and pieces[-1][0] == rec.seq:
                pieces[-1][1] += 1
            else:
                pieces.append([rec.seq, 1])
        else:
            mine.append(rec)
    if mine:
        pieces.append([seq, len(mine)])
    return pieces, mine


def windower_to_json(w: Windower, seq: int) -> dict[str, Any]:
    """Open windows as piece lists (after chunk `seq` was added); counts and clocks per source."""
    return {
        "open": {src: {"index": win.index, "start": win.start, "end": win.end,
                       "pieces": window_pieces(win, seq)[0]}
                 for src, win in w._open.items()},
        "count": dict(w._count),
        "clock": dict(w._clock),
    }


def windower_from_json(d: dict[str, Any] | None, seconds: float, max_lines: int) -> Windower:
    w = Windower(seconds, max_lines)
    d = d or {}
    for src, o in d.get("open", {}).items():
        records: list[Any] = []
        for seq, n in o["pieces"]:
            records.extend([Staged(seq)] * n)
        w._open[src] = Window(source=src, index=o["index"], records=records, start=o["start"], end=o["end"])
    w._count = {k: int(v) for k, v in d.get("count", {}).items()}
    w._clock = {k: float(v) for k, v in d.get("clock", {}).items()}
    return w


# -- the reasoner --------------------------------------------------------------------------------------------
def reasoner_to_json(reasoner: Any) -> dict[str, Any]:
    """The reasoner's history for the next worker: its `exact_state()` where it has one (what one process would
    hold, at full precision), else its own state()."""
    if hasattr(reasoner, "exact_state"):
        return {"exact": reasoner.exact_state()}
    return {"state": reasoner.state()}


def reasoner_load(reasoner: Any, d: dict[str, Any]) -> None:
    if "exact" in d:
        reasoner.load_exact_state(d["exact"])
    elif d.get("state"):
        reasoner.load_state(d["state"])
