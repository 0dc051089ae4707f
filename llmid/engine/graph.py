"""The event graph of one window: what the reasoners (baseline now, learned later) look at.

An *event* is one (template, service) pair inside a window, with every line it covers. The graph adds two small
dense arrays over those events: temporal precedence (who appeared first, within a horizon) and co-occurrence
(how often records of two events fall close together). The learned reasoner's message passing runs on exactly
these arrays, so they stay plain numpy and small (events, not records, are the nodes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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
                template=rec.template or rec.content,
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
