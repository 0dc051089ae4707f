"""Window anomaly score, root-cause ranking and fault chain: the BASELINE reasoner.

`BaselineReasoner` is the rule-based reference every learned reasoner must beat. It keeps, per source, what
"normal" looks like (which events were seen, and an exponentially decayed count of each), scores a window by
how novel and how surprising its events are, and ranks the anomalous events with the rule "earliest anomalous
event first", modulated by anomaly strength and severity. A learned reasoner plugs in through the same
`Reasoner` protocol (`reason`, `state`, `load_state`) and sees the same `EventGraph`.

Scoring (all numbers are class attributes, so they are visible and tunable):

- severity weight `w(e)`: FATAL/ERROR 1.0, WARN 0.6, INFO 0.3, DEBUG/TRACE 0.15; an INFO-or-lower event whose
  template reads like a failure (exception, refused, timed out, ...) counts as `ERRORISH_WEIGHT` (0.8), because
  some systems (HDFS) log their failures at INFO.
- novelty of an event never seen in this source's normal period: `s = 1`, contribution
  `c = w · (NOVEL_BASE + (1 - NOVEL_BASE) · sqrt(share))`, share = the event's records / window records.
- frequency surprise of a known event with k records in a window of N records, expected `λ = N · p`,
  `p = (decayed count + 0.5) / (decayed lines + 1)`: Poisson deviance `D = k ln(k/λ) - (k - λ)` (0 when k <= λ),
  strength `s = 1 - exp(-max(D - D0, 0) / TAU)` (D0 = 1, TAU = 3), contribution `c = w · s`. Counting per
  record (not per second) keeps it meaningful without timestamps and for sampled logs; it detects changes of
  mix, not of volume.
- window score = `1 - Π(1 - c_e)` over the two largest contributions (so one strong event is enough, two
  medium ones add up, and the many tiny fluctuations of a big window do not).
- an event is *anomalous* when `c >= MIN_CONTRIBUTION`; its root-cause score is
  `0.5 · E + 0.3 · s + 0.2 · w`, with `E = 1 - r/m` the earliness (r = rank by first occurrence among the m
  anomalous events). So order dominates, and strength and severity break near-ties.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from llmid.config import Settings
from llmid.documents import Incident, RankedEvent, stable_id
from llmid.engine.graph import Event, build_events, errorish, event_key, level_rank
from llmid.engine.windows import Window
from llmid.errors import ConfigError

REASONERS = ("auto", "learned", "baseline")


class Reasoner(Protocol):
    """What the pipeline needs from any reasoner (baseline or learned)."""

    def reason(self, window: Window) -> Incident | None: ...

    def state(self) -> dict[str, Any]: ...

    def load_state(self, state: dict[str, Any]) -> None: ...


@dataclass(slots=True)
class SourceHistory:
    """The normal period of one source: windows absorbed, decayed record total and decayed count per event."""

    windows: int = 0
    lines: float = 0.0
    records: int = 0
    """Records absorbed in total (not decayed): the normal period must have seen enough data."""
    counts: dict[str, float] = field(default_factory=dict)
    """Event key (`template_id|service`) → decayed count; a key present here has been seen (not novel)."""

    def absorb(self, events: list[Event], n_records: int, decay: float) -> None:
        """Fold a normal window into history: old counts decay so the notion of normal follows drift."""
        for k in self.counts:
            self.counts[k] *= decay
        self.lines = self.lines * decay + n_records
        self.records += n_records
        for e in events:
            self.counts[e.key] = self.counts.get(e.key, 0.0) + e.count
        self.windows += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "windows": self.windows,
            "lines": round(self.lines, 6),
            "records": self.records,
            "counts": {k: round(v, 6) for k, v in self.counts.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceHistory:
        return cls(
            windows=int(data.get("windows", 0)),
            lines=float(data.get("lines", 0.0)),
            records=int(data.get("records", 0)),
            counts={str(k): float(v) for k, v in dict(data.get("counts", {})).items()},
        )


@dataclass(slots=True)
class EventScore:
    """Why one event looks anomalous: novelty or frequency surprise, and its contribution to the window score."""

    event: Event
    novel: bool
    deviance: float
    strength: float
    weight: float
    contribution: float
    root_cause_score: float = 0.0


@dataclass(slots=True)
class WindowScore:
    """The outcome of scoring one window against its source's history (history is not changed by scoring)."""

    score: float
    events: list[EventScore]
    in_baseline: bool

    @property
    def anomalous(self) -> list[EventScore]:
        return [e for e in self.events if e.root_cause_score > 0.0]


class BaselineReasoner:
    """Novelty + Poisson-surprise anomaly score, "earliest anomalous event first" root cause. method="baseline"."""

    METHOD = "baseline"
    STATE_VERSION = 1
    LEVEL_WEIGHT: dict[int, float] = {0: 0.15, 1: 0.15, 2: 0.3, 3: 0.6, 4: 1.0, 5: 1.0}
    ERRORISH_WEIGHT = 0.8
    NOVEL_BASE = 0.6
    D0 = 1.0
    TAU = 3.0
    DECAY = 0.98
    MIN_CONTRIBUTION = 0.1
    TOP_CONTRIBUTIONS = 2
    MAX_RANKED = 25

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.histories: dict[str, SourceHistory] = {}

    # --- scoring -------------------------------------------------------------------------------------------

    def severity_weight(self, event: Event) -> float:
        """Weight of an event by its level, raised for failure-like text logged at INFO or below."""
        rank = level_rank(event.level)
        w = self.LEVEL_WEIGHT.get(rank, 0.3)
        if rank <= 2 and errorish(event.template):
            w = max(w, self.ERRORISH_WEIGHT)
        return w

    def score_window(self, window: Window, events: list[Event] | None = None) -> WindowScore:
        """Score a window against its source's history without changing that history."""
        events = build_events(window) if events is None else events
        hist = self.histories.get(window.source, SourceHistory())
        in_baseline = (
            hist.windows < max(self.settings.baseline_windows, 1) or hist.records < self.settings.baseline_records
        )
        n = max(len(window.records), 1)
        scored: list[EventScore] = []
        for e in events:
            w = self.severity_weight(e)
            if in_baseline:
                scored.append(EventScore(e, False, 0.0, 0.0, w, 0.0))
                continue
            if e.key not in hist.counts:
                share = e.count / n
                c = w * (self.NOVEL_BASE + (1.0 - self.NOVEL_BASE) * math.sqrt(share))
                scored.append(EventScore(e, True, math.inf, 1.0, w, c))
                continue
            p = (hist.counts[e.key] + 0.5) / (hist.lines + 1.0)
            lam = n * p
            k = e.count
            dev = k * math.log(k / lam) - (k - lam) if k > lam else 0.0
            s = 1.0 - math.exp(-max(dev - self.D0, 0.0) / self.TAU)
            scored.append(EventScore(e, False, dev, s, w, w * s))
        contribs = sorted((s.contribution for s in scored), reverse=True)[: self.TOP_CONTRIBUTIONS]
        score = 1.0 - math.prod(1.0 - min(max(c, 0.0), 1.0) for c in contribs) if contribs else 0.0
        self._rank(scored)
        return WindowScore(score=score, events=scored, in_baseline=in_baseline)

    def _rank(self, scored: list[EventScore]) -> None:
        """Set root_cause_score on anomalous events: 0.5·earliness + 0.3·strength + 0.2·severity."""
        cands = [s for s in scored if s.contribution >= self.MIN_CONTRIBUTION]
        if not cands and scored and max(s.contribution for s in scored) > 0.0:
            cands = [max(scored, key=lambda s: s.contribution)]
        cands.sort(key=lambda s: s.event.first_index)
        m = len(cands)
        for r, s in enumerate(cands):
            earliness = 1.0 - r / m
            s.root_cause_score = 0.5 * earliness + 0.3 * s.strength + 0.2 * s.weight

    # --- the Reasoner interface ----------------------------------------------------------------------------

    def reason(self, window: Window) -> Incident | None:
        """Score the window, annotate its records, update history if normal; an Incident when anomalous.

        Every record gets `anomaly_score` (the window score) and `root_cause_score` (its event's score, 0 when
        its event is not ranked). When an incident is raised, EVERY record of the window gets its `incident_id`
        (the window is the incident's context, and analysts filter on it), not only the ranked events' records.
        """
        if not window.records:
            return None
        events = build_events(window)
        ws = self.score_window(window, events)
        flagged = not ws.in_baseline and ws.score >= self.settings.anomaly_threshold
        ranked = sorted(ws.anomalous, key=lambda s: (-s.root_cause_score, s.event.first_index))
        if flagged and not ranked:  # cannot happen with score > 0, but an incident must have a root cause
            ranked = sorted(ws.events, key=lambda s: (-s.contribution, s.event.first_index))[:1]
            ranked[0].root_cause_score = max(ranked[0].root_cause_score, ws.score)
        ranked = ranked[: self.MAX_RANKED] if flagged else []
        by_key = {(s.event.template_id, s.event.service): s.root_cause_score for s in ranked}
        incident_id = stable_id("incident", window.source, window.index, window.first_line) if flagged else None
        for rec in window.records:
            rec.anomaly_score = ws.score
            rec.root_cause_score = by_key.get(event_key(rec), 0.0) if flagged else 0.0
            if incident_id is not None:
                rec.incident_id = incident_id
        if not flagged:
            self.histories.setdefault(window.source, SourceHistory()).absorb(events, len(window.records), self.DECAY)
            return None
        ranking = [self._ranked_event(s) for s in ranked]
        root = ranking[0]
        rest = sorted(zip(ranked[1:], ranking[1:], strict=True), key=lambda p: p[0].event.first_index)
        chain = [root] + [r for _, r in rest]
        assert incident_id is not None
        return Incident(
            incident_id=incident_id,
            source=window.source,
            window_start=window.start,
            window_end=window.end,
            first_line=window.first_line,
            last_line=window.last_line,
            anomaly_score=ws.score,
            ranking=ranking,
            chain=chain,
            method=self.METHOD,
        )

    @staticmethod
    def _ranked_event(s: EventScore) -> RankedEvent:
        e = s.event
        return RankedEvent(
            template_id=e.template_id,
            template=e.template,
            score=s.root_cause_score,
            lines=list(e.lines),
            service=e.service,
            host=e.host,
            level=e.level,
            first_seen=e.first_ts,
        )

    # --- persistence ---------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """JSON-ready per-source history, so a worker can resume where another stopped."""
        return {
            "method": self.METHOD,
            "version": self.STATE_VERSION,
            "sources": {src: h.to_json() for src, h in self.histories.items()},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace the history with a `state()` snapshot (unknown versions are rejected, not guessed)."""
        if state.get("method", self.METHOD) != self.METHOD or int(state.get("version", 1)) != self.STATE_VERSION:
            raise ValueError("Reasoner state was written by a different reasoner or version.")
        self.histories = {str(src): SourceHistory.from_json(h) for src, h in state.get("sources", {}).items()}

    def exact_state(self) -> dict[str, Any]:
        """The history at full precision (`state()` rounds the decayed counts to 6 digits, fine between runs): a
        run handed from worker to worker after every window must compute exactly as one process would."""
        return {src: {"windows": h.windows, "lines": h.lines, "records": h.records, "counts": h.counts}
                for src, h in self.histories.items()}

    def load_exact_state(self, state: dict[str, Any]) -> None:
        self.histories = {src: SourceHistory(int(h["windows"]), float(h["lines"]), int(h["records"]),
                                             {k: float(v) for k, v in h["counts"].items()})
                          for src, h in state.items()}


def make_reasoner(settings: Settings) -> Reasoner:
    """The reasoner `settings.reasoner` names: "learned" (default; models/reasoner.onnx or
    `settings.reasoner_model`) or "baseline"."""
    kind = (settings.reasoner or "auto").strip().lower()
    if kind == "auto":  # the learned model when it is installed, else the baseline
        shipped = Path(__file__).resolve().parents[1] / "models" / "reasoner.onnx"
        kind = "learned" if settings.reasoner_model or shipped.is_file() else "baseline"
    if kind == "baseline":
        return BaselineReasoner(settings)
    if kind == "learned":
        from llmid.engine.reasoner_learned import LearnedReasoner

        return LearnedReasoner(settings, model_path=settings.reasoner_model or None)
    raise ConfigError(f"Unknown reasoner {settings.reasoner!r}: use {' or '.join(REASONERS)}.")
