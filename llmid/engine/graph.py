"""The event graph of one window: what the reasoners (baseline now, learned later) look at.

An *event* is one (template, service) pair inside a window, with every line it covers. The graph adds two small
dense arrays over those events: temporal precedence (who appeared first, within a horizon) and co-occurrence
(how often records of two events fall close together). The learned reasoner's message passing runs on exactly
these arrays, so they stay plain numpy and small (events, not records, are the nodes).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from llmid.documents import LogRecord, stable_id
from llmid.engine.windows import Window

LEVEL_RANK: dict[str, int] = {
    "TRACE": 0,
    "DEBUG": 1,
    "INFO": 2,
    "NOTICE": 2,
    "WARN": 3,
    "ERROR": 4,
    "FATAL": 5,
}
"""Canonical severities, ordered; `normalize_level` maps the many spellings found in logs onto these."""

_LEVEL_ALIASES: dict[str, str] = {
    "WARNING": "WARN",
    "W": "WARN",
    "ERR": "ERROR",
    "E": "ERROR",
    "SEVERE": "ERROR",
    "FAILURE": "FATAL",
    "CRITICAL": "FATAL",
    "CRIT": "FATAL",
    "ALERT": "FATAL",
    "EMERG": "FATAL",
    "PANIC": "FATAL",
    "I": "INFO",
    "INFORMATION": "INFO",
    "D": "DEBUG",
    "V": "TRACE",
    "VERBOSE": "TRACE",
    "FINE": "DEBUG",
    "FINER": "TRACE",
    "FINEST": "TRACE",
}

_ERRORISH = re.compile(
    r"\b(exception|error|fail(ed|ure|ing)?|fatal|panic|refused|timed? ?out|unreachable|corrupt\w*|"
    r"denied|unable|cannot|can't|lost|killed|abort\w*|crash\w*|interrupted|terminat\w*)\b",
    re.IGNORECASE,
)


_RECOVERED = re.compile(r"\b(corrected|recovered|resolved|succeeded|successful(ly)?)\b", re.IGNORECASE)


def normalize_level(level: str | None) -> str | None:
    """Map a raw level string (WARNING, SEVERE, E, ...) to a canonical one; None/unknown stays None."""
    if not level:
        return None
    up = level.strip().upper()
    up = _LEVEL_ALIASES.get(up, up)
    return up if up in LEVEL_RANK else None


def level_rank(level: str | None) -> int:
    """Severity rank of a raw level; unknown levels rank like INFO (neither hidden nor promoted)."""
    norm = normalize_level(level)
    return LEVEL_RANK[norm] if norm is not None else LEVEL_RANK["INFO"]


def errorish(text: str | None) -> bool:
    """True when a template reads like a failure even if its level says INFO (HDFS logs exceptions at INFO).

    Text that also says the problem was handled ("error(s) detected and corrected") is not failure-like.
    """
    if not text or _RECOVERED.search(text):
        return False
    return _ERRORISH.search(text) is not None


def template_text_of(rec: LogRecord) -> str:
    """The text an event is read by: the template's first string (see `LogRecord.template_origin`)."""
    return rec.template_origin or rec.template or rec.content


def event_key(rec: LogRecord) -> tuple[str, str | None]:
    """Events are (template, service): the same message from two services are two different events."""
    tid = rec.template_id or stable_id("raw", rec.template or rec.content)
    return tid, rec.service


@dataclass(slots=True)
class Event:
    """All records of one (template, service) inside a window."""

    template_id: str
    template: str
    service: str | None
    host: str | None
    """Host of the first occurrence (what a node-level action would target)."""
    level: str | None
    """Most severe level seen on any of its records (canonical spelling when known)."""
    lines: list[int] = field(default_factory=list)
    count: int = 0
    first_ts: float | None = None
    first_index: int = 0
    """Position of the first occurrence within the window (0-based record index)."""
    last_index: int = 0

    @property
    def key(self) -> str:
        """A string key for per-source history (template id and service)."""
        return f"{self.template_id}|{self.service or ''}"


def build_events(window: Window) -> list[Event]:
    """Group a window's records by (template_id, service), in order of first occurrence."""
    events: dict[tuple[str, str | None], Event] = {}
    for i, rec in enumerate(window.records):
        k = event_key(rec)
        ev = events.get(k)
        if ev is None:
            ev = Event(
                template_id=k[0],
                template=template_text_of(rec),
                service=rec.service,
                host=rec.host,
                level=normalize_level(rec.level) or rec.level,
                first_ts=rec.timestamp,
                first_index=i,
                last_index=i,
            )
            events[k] = ev
        elif level_rank(rec.level) > level_rank(ev.level):
            ev.level = normalize_level(rec.level) or rec.level
        if ev.first_ts is None and rec.timestamp is not None:
            ev.first_ts = rec.timestamp
        ev.lines.append(rec.line_id)
        ev.count += 1
        ev.last_index = i
    return list(events.values())


@dataclass(slots=True)
class EventGraph:
    """Events of one window plus dense edge arrays (n × n, n = number of events).

    - `precedence[i, j] = 1` when event i first occurs before event j and j's first occurrence is at most
      `horizon` records after i's: a candidate causal edge i → j.
    - `cooccurrence[i, j]` = number of record pairs (one of i, one of j, i ≠ j) at most `horizon` records apart;
      symmetric, zero diagonal.
    - `features()` gives per-event numeric features (count share, first position, severity, errorish text).
    """

    events: list[Event]
    precedence: np.ndarray
    cooccurrence: np.ndarray
    n_records: int
    horizon: int

    @classmethod
    def from_window(cls, window: Window, horizon: int = 32) -> EventGraph:
        events = build_events(window)
        return cls.from_events(events, window.records, horizon)

    @classmethod
    def from_events(cls, events: list[Event], records: list[LogRecord], horizon: int = 32) -> EventGraph:
        n = len(events)
        index = {(e.template_id, e.service): i for i, e in enumerate(events)}
        seq = np.fromiter((index[event_key(r)] for r in records), dtype=np.int64, count=len(records))
        first = np.array([e.first_index for e in events], dtype=np.int64)
        gap = first[None, :] - first[:, None]
        precedence = ((gap > 0) & (gap <= horizon)).astype(np.float32)
        co = np.zeros((n, n), dtype=np.int64)
        for lag in range(1, min(horizon, len(seq) - 1) + 1):
            np.add.at(co, (seq[:-lag], seq[lag:]), 1)
        co = co + co.T
        np.fill_diagonal(co, 0)
        return cls(events=events, precedence=precedence, cooccurrence=co, n_records=len(records), horizon=horizon)

    def features(self) -> np.ndarray:
        """(n, 4) float32: count share, relative first position, severity rank / 5, errorish text (0/1)."""
        n_rec = max(self.n_records, 1)
        return np.array(
            [
                [e.count / n_rec, e.first_index / n_rec, level_rank(e.level) / 5.0, float(errorish(e.template))]
                for e in self.events
            ],
            dtype=np.float32,
        ).reshape(len(self.events), 4)


# -- inputs of the learned reasoner --------------------------------------------------------------------------------
NODE_FEATURES: tuple[str, ...] = (
    "level_rank",          # canonical severity / 5
    "is_warn",
    "is_error",            # ERROR or FATAL
    "errorish_text",       # failure-like wording (exception, refused, timed out, ...), any level
    "novel",               # (template, service) never seen in the normal period
    "novel_template",      # template never seen in the normal period, for any service
    "level_escalated",     # known event, now at a higher level than it ever had
    "log_count",           # log(1 + records) / 5
    "share",               # records / records in the graph
    "surprise",            # 1 - exp(-(Poisson deviance - 1)+ / 3); 1 when novel
    "log_rate_ratio",      # log((k + .5) / (expected + .5)) / 5, clipped to [-1, 1]
    "first_position",      # index of the first record / records in the graph
    "first_time",          # (first timestamp - graph start) / graph span
    "context",             # first seen in the previous window (kept as context)
    "earliness",           # 1 - r/m among the m anomalous-looking events (0 if not one of them)
    "anomalous_after",     # share of anomalous-looking events that first occur after this one
    "anomalous_before",    # share of anomalous-looking events that first occur before this one
    "anomalous_soon_after",  # share of anomalous-looking events first occurring within CLOSE_SECONDS after it
    "related_after",       # share of anomalous-looking events after it on the same service or host
    "single",              # exactly one record
    "active_span",         # (last - first occurrence) / graph span
    "candidate",           # anomalous-looking: novel, escalated, or surprise >= 0.5
    "gap_to_next",         # log(1 + time to the next anomalous-looking event's first occurrence) / log(601); 1 if none
    "gap_from_previous",   # log(1 + time since the previous anomalous-looking event's first occurrence) / log(601)
    "named_by_later",      # share of later anomalous-looking events whose text names this event's service or host
    "names_earlier",       # this event's text names the service or host of an earlier anomalous-looking event
    "presence",            # share of normal windows (sessions) that hold this event; 0 when novel
    "missing_expected",    # graph-level: share of the events nearly every normal window holds that this one lacks
    "missing_expected_log",  # graph-level: log(1 + how many of them are missing) / log(11), at most 1
)
"""Per-node numeric features of the learned reasoner, in order (the model card lists them too)."""
EDGE_FEATURES: tuple[str, ...] = ("precedes", "lag", "close", "same_service", "same_host", "cooccurrence", "cosine")
"""Per-edge features, computed inside the model from `t`, `svc`, `host`, `cooc` and the embeddings."""
CLOSE_SECONDS = 60.0
"""Two events whose first occurrences are at most this far apart are 'close' (seconds; records without time)."""
MAX_NODES = 192
"""Nodes per graph; a bigger window keeps its anomalous-looking events first, then the most frequent others."""
COOC_HORIZON = 32
"""Records apart that still count as co-occurring."""
WARMUP_RECORDS = 100
"""Records of normal profile below which a window is not judged at all, even while warming up."""
EXPECTED_PRESENCE = 0.98
"""An event held by at least this share of normal windows is *expected*: its absence is evidence too (a
heartbeat that stopped, a session cut short before its usual closing events)."""
EXPECTED_MIN_UNITS = 6.0
"""Normal windows (decayed: seven at the default decay) needed before any event counts as expected: a short
normal period says too little about what is always there."""


@dataclass(slots=True)
class Reference:
    """What normal looks like for one source: decayed counts per event key and per template, max level per key."""

    windows: int = 0
    lines: float = 0.0
    records: int = 0
    counts: dict[str, float] = field(default_factory=dict)
    templates: dict[str, float] = field(default_factory=dict)
    levels: dict[str, int] = field(default_factory=dict)
    units: float = 0.0
    """Decayed number of windows absorbed (the denominator of `presence`)."""
    presence: dict[str, float] = field(default_factory=dict)
    """Decayed number of absorbed windows that held each event key."""
    span_sum: float = 0.0
    """Decayed sum of the time spans of absorbed windows that had timestamps ..."""
    span_units: float = 0.0
    """... and how many (decayed) such windows: their mean span tells how much of a usual window a window covers."""

    def absorb(self, events: list[Event], n_records: int, decay: float = 0.98, span: float | None = None) -> None:
        if decay != 1.0:
            for d in (self.counts, self.templates, self.presence):
                for k in d:
                    d[k] *= decay
        self.lines = self.lines * decay + n_records
        self.units = self.units * decay + 1.0
        self.span_sum *= decay
        self.span_units *= decay
        if span is not None:
            self.span_sum += span
            self.span_units += 1.0
        self.records += n_records
        for e in events:
            self.counts[e.key] = self.counts.get(e.key, 0.0) + e.count
            self.templates[e.template_id] = self.templates.get(e.template_id, 0.0) + e.count
            self.presence[e.key] = self.presence.get(e.key, 0.0) + 1.0
            r = level_rank(e.level)
            if r > self.levels.get(e.key, -1):
                self.levels[e.key] = r
        self.windows += 1

    def absorb_records(self, records: list[LogRecord], decay: float = 0.98) -> None:
        """Absorb one normal window given as its records (events, size and time span taken from them)."""
        self.absorb(build_events_of(records), len(records), decay, records_span(records))

    def presence_rate(self, key: str) -> float:
        return self.presence.get(key, 0.0) / self.units if self.units > 0 else 0.0

    def expected_keys(self) -> list[str]:
        """Event keys nearly every normal window holds (none before EXPECTED_MIN_UNITS windows)."""
        if self.units < EXPECTED_MIN_UNITS:
            return []
        floor = EXPECTED_PRESENCE * self.units
        return [k for k, v in self.presence.items() if v >= floor]

    def coverage(self, span: float | None) -> float:
        """How much of a usual normal window a window of `span` seconds covers (1 when time is unknown): a window
        cut short by the end of the input is not blamed for what it had no time to hold."""
        if span is None or self.span_units <= 0:
            return 1.0
        usual = self.span_sum / self.span_units
        return 1.0 if usual <= 0 else max(0.0, min(1.0, span / usual))

    def copy(self) -> Reference:
        return Reference(self.windows, self.lines, self.records, dict(self.counts), dict(self.templates),
                         dict(self.levels), self.units, dict(self.presence), self.span_sum, self.span_units)

    def to_json(self, exact: bool = False) -> dict[str, Any]:
        """Rounded for storage between runs; `exact` keeps full precision (a run handed between workers)."""
        r: Any = (lambda v: v) if exact else (lambda v: round(v, 6))
        return {"windows": self.windows, "lines": r(self.lines), "records": self.records,
                "counts": {k: r(v) for k, v in self.counts.items()},
                "templates": {k: r(v) for k, v in self.templates.items()},
                "levels": dict(self.levels), "units": r(self.units),
                "presence": {k: r(v) for k, v in self.presence.items()},
                "span_sum": r(self.span_sum), "span_units": r(self.span_units)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Reference:
        return cls(int(d.get("windows", 0)), float(d.get("lines", 0.0)), int(d.get("records", 0)),
                   {str(k): float(v) for k, v in dict(d.get("counts", {})).items()},
                   {str(k): float(v) for k, v in dict(d.get("templates", {})).items()},
                   {str(k): int(v) for k, v in dict(d.get("levels", {})).items()},
                   float(d.get("units", 0.0)),
                   {str(k): float(v) for k, v in dict(d.get("presence", {})).items()},
                   float(d.get("span_sum", 0.0)), float(d.get("span_units", 0.0)))


@dataclass(slots=True)
class GraphInputs:
    """One graph for the learned reasoner: nodes (events) with their features and the pairwise data of edges."""

    events: list[Event]
    """Nodes in order of first occurrence; `lines` hold every line of the event in the graph's records."""
    x: np.ndarray
    """(n, len(NODE_FEATURES)) float32."""
    t: np.ndarray
    """(n,) float32 seconds from the graph's first record to the node's first occurrence (record index if no time)."""
    svc: np.ndarray
    """(n,) int64 service id (equal ids = same service; the names themselves are not model input)."""
    host: np.ndarray
    """(n,) int64 host id."""
    cooc: np.ndarray
    """(n, n) float32 co-occurrence within COOC_HORIZON records, normalised by sqrt(count_i count_j), ≤ 1."""
    templates: list[str]
    context: np.ndarray
    """(n,) bool: first seen in the context (previous window) part."""
    n_records: int
    n_context: int

    def __len__(self) -> int:
        return len(self.events)


_WORD = re.compile(r"[a-z][a-z0-9_.-]{2,}")


def _words(text: str) -> frozenset[str]:
    """Lower-case words of a template (for "does this text name that service or host")."""
    return frozenset(w.strip(".-_") for w in _WORD.findall(text.lower()))


def _names(service: str | None, host: str | None) -> frozenset[str]:
    """A service's and host's names as words of at least 3 characters (the service name is the generic
    `service.name` / program of the log line; no list of known services is involved)."""
    out = set()
    for name in (service, host):
        if name:
            n = name.lower()
            out.add(n)
            out.add(n.split(".")[0])  # a logger name (pkg.module) is named by its package
    return frozenset(x for x in out if len(x) >= 3)


def _gap(seconds: float | None) -> float:
    return 1.0 if seconds is None else min(math.log1p(max(float(seconds), 0.0)) / math.log1p(600.0), 1.0)


def _poisson_surprise(k: int, lam: float) -> tuple[float, float]:
    dev = k * math.log(k / lam) - (k - lam) if k > lam else 0.0
    return dev, 1.0 - math.exp(-max(dev - 1.0, 0.0) / 3.0)


def graph_inputs(records: list[LogRecord], ref: Reference, n_context: int = 0,
                 max_nodes: int = MAX_NODES) -> GraphInputs:
    """Build the learned reasoner's graph over `records` (the first `n_context` of them are the previous window,
    kept as context: only its anomalous-looking events become nodes) against the normal profile `ref`."""
    events: dict[tuple[str, str | None], Event] = {}
    last_ts: dict[tuple[str, str | None], float] = {}
    in_current: set[tuple[str, str | None]] = set()
    seq_keys: list[tuple[str, str | None]] = []
    ts_all: list[float] = []
    for i, rec in enumerate(records):
        k = event_key(rec)
        seq_keys.append(k)
        ev = events.get(k)
        if ev is None:
            ev = Event(template_id=k[0], template=template_text_of(rec), service=rec.service, host=rec.host,
                       level=normalize_level(rec.level) or rec.level, first_ts=rec.timestamp, first_index=i,
                       last_index=i)
            events[k] = ev
        elif level_rank(rec.level) > level_rank(ev.level):
            ev.level = normalize_level(rec.level) or rec.level
        if ev.first_ts is None and rec.timestamp is not None:
            ev.first_ts = rec.timestamp
        if rec.timestamp is not None:
            last_ts[k] = rec.timestamp
            ts_all.append(rec.timestamp)
        ev.lines.append(rec.line_id)
        ev.count += 1
        ev.last_index = i
        if i >= n_context:
            in_current.add(k)
    n_rec = max(len(records), 1)
    timed = len(ts_all) >= max(2, len(records) // 2)
    t_start = min(ts_all) if timed else 0.0
    span = max((max(ts_all) - t_start) if timed else float(n_rec), 1.0)
    missing_share, missing_log = _missing_expected(ref, {events[k].key for k in in_current},
                                                   records_span(records[n_context:]) if timed else None)

    stats: dict[tuple[str, str | None], tuple[bool, bool, bool, float, float, float]] = {}
    for k, ev in events.items():
        key = ev.key
        novel = key not in ref.counts
        novel_t = ev.template_id not in ref.templates
        escalated = (not novel) and level_rank(ev.level) > ref.levels.get(key, 99)
        lam = n_rec * (ref.counts.get(key, 0.0) + 0.5) / (ref.lines + 1.0)
        if novel:
            surprise = 1.0
        else:
            _, surprise = _poisson_surprise(ev.count, lam)
        ratio = max(-1.0, min(1.0, math.log((ev.count + 0.5) / ((0.0 if novel else lam) + 0.5)) / 5.0))
        stats[k] = (novel, novel_t, escalated, surprise, ratio, lam)

    def is_candidate(k: tuple[str, str | None]) -> bool:
        novel, _, escalated, surprise, _, _ = stats[k]
        return novel or escalated or surprise >= 0.5

    keys = [k for k in events if k in in_current or is_candidate(k)]
    if len(keys) > max_nodes:
        keys.sort(key=lambda k: (not is_candidate(k), -events[k].count, events[k].first_index))
        keys = keys[:max_nodes]
    keys.sort(key=lambda k: events[k].first_index)
    nodes = [events[k] for k in keys]
    n = len(nodes)
    index = {k: i for i, k in enumerate(keys)}

    def ts_of(ev: Event, k: tuple[str, str | None]) -> tuple[float, float]:
        if timed and ev.first_ts is not None:
            return ev.first_ts - t_start, last_ts.get(k, ev.first_ts) - t_start
        return float(ev.first_index), float(ev.last_index)

    times = [ts_of(events[k], k) for k in keys]
    t = np.array([a for a, _ in times], dtype=np.float32)
    cand = np.array([is_candidate(k) for k in keys], dtype=bool)
    m = int(cand.sum())
    close = CLOSE_SECONDS if timed else float(COOC_HORIZON)
    svc_ids: dict[str | None, int] = {}
    host_ids: dict[str | None, int] = {}
    svc = np.array([svc_ids.setdefault(events[k].service, len(svc_ids)) for k in keys], dtype=np.int64)
    host = np.array([host_ids.setdefault(events[k].host, len(host_ids)) for k in keys], dtype=np.int64)
    words = [_words(events[k].template) for k in keys]
    names = [_names(events[k].service, events[k].host) for k in keys]
    cand_t = t[cand]
    cand_idx = np.flatnonzero(cand)
    order = {int(j): r for r, j in enumerate(cand_idx[np.argsort(cand_t, kind="stable")])}
    x = np.zeros((n, len(NODE_FEATURES)), dtype=np.float32)
    for i, k in enumerate(keys):
        ev = events[k]
        novel, novel_t, escalated, surprise, ratio, _ = stats[k]
        rank = level_rank(ev.level)
        after = cand & (t > t[i])
        before = cand & (t < t[i])
        soon = after & (t - t[i] <= close)
        related = after & ((svc == svc[i]) | (host == host[i]))
        x[i] = (
            rank / 5.0, float(rank == 3), float(rank >= 4), float(errorish(ev.template)), float(novel),
            float(novel_t), float(escalated), math.log1p(ev.count) / 5.0, ev.count / n_rec, surprise, ratio,
            ev.first_index / n_rec, t[i] / span, float(ev.first_index < n_context),
            (1.0 - order[i] / m) if i in order and m else 0.0,
            after.sum() / m if m else 0.0, before.sum() / m if m else 0.0, soon.sum() / m if m else 0.0,
            related.sum() / m if m else 0.0, float(ev.count == 1), (times[i][1] - times[i][0]) / span,
            float(cand[i]), _gap(t[after].min() - t[i] if after.any() else None),
            _gap(t[i] - t[before].max() if before.any() else None),
            (sum(1 for j in np.flatnonzero(after) if names[i] & words[j]) / m) if m and names[i] else 0.0,
            float(any(names[j] & words[i] for j in np.flatnonzero(before) if svc[j] != svc[i])),
            ref.presence_rate(ev.key), missing_share, missing_log,
        )
    seq = np.fromiter((index.get(k, -1) for k in seq_keys), dtype=np.int64, count=len(seq_keys))
    co = np.zeros((n, n), dtype=np.float32)
    for lag in range(1, min(COOC_HORIZON, len(seq) - 1) + 1):
        a, b = seq[:-lag], seq[lag:]
        ok = (a >= 0) & (b >= 0) & (a != b)
        np.add.at(co, (a[ok], b[ok]), 1.0)
    co = co + co.T
    counts = np.array([events[k].count for k in keys], dtype=np.float32)
    co = np.minimum(co / np.sqrt(np.outer(counts, counts) * COOC_HORIZON + 1e-9), 1.0).astype(np.float32)
    context = np.array([events[k].first_index < n_context for k in keys], dtype=bool)
    return GraphInputs(nodes, x, t, svc, host, co, [e.template for e in nodes], context, len(records), n_context)


def records_span(records: list[LogRecord]) -> float | None:
    """Seconds from the first to the last timestamped record; None when fewer than two have a time."""
    ts = [r.timestamp for r in records if r.timestamp is not None]
    return (max(ts) - min(ts)) if len(ts) >= 2 else None


def _missing_expected(ref: Reference, present: set[str], span: float | None) -> tuple[float, float]:
    """(share, log-count) of the expected events absent from a window, scaled by how much of a usual window it
    covers."""
    expected = ref.expected_keys()
    if not expected:
        return 0.0, 0.0
    missing = sum(1 for k in expected if k not in present)
    cov = ref.coverage(span)
    return cov * missing / len(expected), cov * min(math.log1p(missing) / math.log(11.0), 1.0)


@dataclass(slots=True)
class _Pending:
    records: list[LogRecord]
    anomalous: bool
    end: float | None


@dataclass(slots=True)
class _SourceState:
    ref: Reference = field(default_factory=Reference)
    pending: _Pending | None = None


class GraphStream:
    """Per-source normal profile plus the previous window as context: what the learned reasoner runs and what its
    training data is made with, so training sees exactly the inputs inference sees.

    For each window: `inputs(window)` gives the graph (None during the normal period's first windows), the
    caller judges it, then `commit(window, anomalous)`. A window enters the normal profile one window late, when
    the next one is committed, and only if it was judged normal; until then it is the next graph's context, so a
    root cause logged at the very end of a window is still in the graph of the window its symptoms fill."""

    def __init__(self, baseline_windows: int = 3, baseline_records: int = 1000, *, decay: float = 0.98,
                 context_gap: float | None = 300.0, max_nodes: int = MAX_NODES) -> None:
        self.baseline_windows = baseline_windows
        self.baseline_records = baseline_records
        self.decay = decay
        self.context_gap = context_gap
        self.max_nodes = max_nodes
        self.sources: dict[str, _SourceState] = {}

    def in_baseline(self, source: str) -> bool:
        ref = self.sources.get(source, _SourceState()).ref
        return ref.windows < max(self.baseline_windows, 1) or ref.records < self.baseline_records

    def warming(self, source: str) -> bool:
        """Still in the normal period, but with enough of it to compare against (a short log whose fault starts
        a few minutes in would otherwise never be judged)."""
        ref = self.sources.get(source, _SourceState()).ref
        return self.in_baseline(source) and ref.windows >= 1 and ref.records >= WARMUP_RECORDS

    def inputs(self, window: Window, warm: bool = False) -> GraphInputs | None:
        """The window's graph; None during the normal period (with `warm`, only before `warming`)."""
        st = self.sources.setdefault(window.source, _SourceState())
        if self.in_baseline(window.source) and not (warm and self.warming(window.source)):
            return None
        ctx: list[LogRecord] = []
        p = st.pending
        if p is not None:
            gap_ok = (self.context_gap is None or p.end is None or window.start is None
                      or window.start - p.end <= self.context_gap)
            if gap_ok:
                ctx = p.records
        return graph_inputs(ctx + window.records, st.ref, len(ctx), self.max_nodes)

    def commit(self, window: Window, anomalous: bool) -> None:
        st = self.sources.setdefault(window.source, _SourceState())
        p = st.pending
        if p is not None and not p.anomalous:
            st.ref.absorb_records(p.records, self.decay)
        st.pending = _Pending(window.records, anomalous, window.end)

    def state(self) -> dict[str, Any]:
        """JSON-ready profiles; a pending normal window is folded in (on a copy), so a resumed stream has it."""
        out: dict[str, Any] = {}
        for src, st in self.sources.items():
            ref = st.ref
            if st.pending is not None and not st.pending.anomalous:
                ref = ref.copy()
                ref.absorb_records(st.pending.records, self.decay)
            out[src] = ref.to_json()
        return out

    def load_state(self, data: dict[str, Any]) -> None:
        self.sources = {str(s): _SourceState(Reference.from_json(d)) for s, d in data.items()}

    def exact_state(self) -> dict[str, Any]:
        """Everything, unfolded and at full precision, including the pending window's records (the next graph's
        context): a worker that resumes from it computes exactly what one process would have."""
        out: dict[str, Any] = {}
        for src, st in self.sources.items():
            p = st.pending
            out[src] = {"ref": st.ref.to_json(exact=True),
                        "pending": None if p is None else {"records": [_record_row(r) for r in p.records],
                                                           "anomalous": p.anomalous, "end": p.end}}
        return out

    def load_exact_state(self, data: dict[str, Any]) -> None:
        self.sources = {}
        for src, d in data.items():
            p = d.get("pending")
            pending = None if p is None else _Pending([_record_from_row(str(src), r) for r in p["records"]],
                                                      bool(p["anomalous"]), p["end"])
            self.sources[str(src)] = _SourceState(Reference.from_json(d["ref"]), pending)


def _record_row(r: LogRecord) -> list[Any]:
    """What a graph reads of a record (see `build_events` and `graph_inputs`)."""
    return [r.line_id, r.offset, r.timestamp, r.level, r.service, r.host, r.template_id, r.template, r.content,
            r.template_origin]


def _record_from_row(source: str, row: list[Any]) -> LogRecord:
    line_id, offset, ts, level, service, host, tid, template, content, origin = row
    return LogRecord(line_id=int(line_id), source=source, offset=int(offset), message=content, content=content,
                     timestamp=ts, level=level, service=service, host=host, template_id=tid, template=template,
                     template_origin=origin)


def build_events_of(records: list[LogRecord]) -> list[Event]:
    """`build_events` over a plain record list."""
    return build_events(Window(source="", index=0, records=records))
