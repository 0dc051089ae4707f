"""analyze(records): structure → window → reason → plan, as plain functions over batches.

The same `Pipeline` runs in-process (embedded default) and inside Celery tasks; it knows no store and no
transport. Each `feed` returns a `Batch` holding only finished work (records of closed windows, with their
scores), so whoever writes it can commit it atomically and nothing half-reasoned is ever stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from llmid.config import Settings
from llmid.documents import Batch, Incident, LogRecord, Recommendation
from llmid.engine.planner import Planner, make_planner
from llmid.engine.reasoner import Reasoner, make_reasoner
from llmid.engine.safety import IncidentContext, SafetyGate
from llmid.engine.structurer import STATE_KEY, Structurer
from llmid.engine.windows import Window, Windower

REASONER_STATE_KEY = "reasoner.baseline"


class Pipeline:
    """Stateful stream processor; feed batches in input order, then `finish()`."""

    def __init__(self, settings: Settings, state: dict[str, Any] | None = None,
                 reasoner: Reasoner | None = None, planner: Planner | None = None,
                 gate: SafetyGate | None = None) -> None:
        state = state or {}
        self.settings = settings
        self.structurer = Structurer.from_state(state.get(STATE_KEY), settings.similarity,
                                                settings.structurer, settings.structurer_model)
        self.windower = Windower(settings.window_seconds, settings.window_max_lines)
        self.reasoner: Reasoner = reasoner or make_reasoner(settings)
        self.planner: Planner = planner or make_planner(settings)
        self.gate = gate or SafetyGate.from_settings(settings)
        if state.get(REASONER_STATE_KEY):
            try:
                self.reasoner.load_state(state[REASONER_STATE_KEY])
            except ValueError:  # history of the other reasoner (--reasoner changed): this one starts afresh
                pass

    def feed(self, records: list[LogRecord]) -> Batch:
        self.structurer.structure(records)
        return self._reason(self.windower.add(records))

    def flush(self) -> Batch:
        """Close the open windows now (input went idle): a followed stream gets its results without waiting
        for the next record to close the window."""
        return self._reason(self.windower.flush())

    def finish(self) -> Batch:
        """End of input: close the open windows and hand over the engine state to persist."""
        batch = self._reason(self.windower.flush())
        batch.state = self.state()
        return batch

    def state(self) -> dict[str, Any]:
        """Everything needed to resume: the miner (templates keep their ids) and the reasoner's history."""
        return {STATE_KEY: self.structurer.state(), REASONER_STATE_KEY: self.reasoner.state()}

    def _reason(self, windows: Iterator[Window]) -> Batch:
        batch = Batch()
        for win in windows:
            incident = self.reasoner.reason(win)
            batch.records.extend(win.records)
            if incident is not None:
                batch.incidents.append(incident)
                batch.recommendations.extend(self.recommend(incident, win.records))
        batch.templates = self.structurer.take_changed_templates()
        return batch

    def recommend(self, incident: Incident, records: list[LogRecord]) -> list[Recommendation]:
        """The planner's recommendations for an incident, each with the safety gate's verdict (which sees the
        incident and its window's records)."""
        ctx = IncidentContext.of(incident, records)
        return [self.gate.assess(r, context=ctx) for r in self.planner.recommend(incident, records)]


def batched(records: Iterable[LogRecord], size: int) -> Iterator[list[LogRecord]]:
    buf: list[LogRecord] = []
    for rec in records:
        buf.append(rec)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def analyze(records: Iterable[LogRecord], settings: Settings | None = None) -> Batch:
    """Whole pipeline over an in-memory record stream; returns everything as one batch (small inputs, tests)."""
    settings = settings or Settings()
    pipe = Pipeline(settings)
    out = Batch()
    for chunk in batched(records, settings.batch_size):
        _extend(out, pipe.feed(chunk))
    _extend(out, pipe.finish())
    return out


def _extend(into: Batch, b: Batch) -> None:
    into.records.extend(b.records)
    into.incidents.extend(b.incidents)
    into.recommendations.extend(b.recommendations)
    seen = {t.template_id: i for i, t in enumerate(into.templates)}
    for t in b.templates:
        if t.template_id in seen:
            into.templates[seen[t.template_id]] = t
        else:
            into.templates.append(t)
    into.state.update(b.state)
