"""Drive the engine over a source into a store: the one loop behind `analyze`, `ingest` and the workers' in-process
mode. Each engine batch is one store transaction, so an interrupt or a crash loses at most the batch in flight.
"""

from __future__ import annotations

import json
import queue
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from llmid.config import Settings
from llmid.documents import Batch, LogRecord
from llmid.engine.pipeline import REASONER_STATE_KEY, Pipeline, batched
from llmid.engine.structurer import STATE_KEY
from llmid.errors import InputError
from llmid.ingest_pipelines.sources import read_records
from llmid.store.base import Store

STATE_EVERY_BATCHES = 50
"""Persist the miner state this often during long runs (and always at the end)."""
IDLE_FLUSH_SECONDS = 1.0
"""With --follow: when no record arrived for this long, write what was read (and close open windows)."""


class IncidentLog:
    """The incident documents of a run, spooled to a temporary file past 1 MiB, so a run with many incidents
    (or `--json` on a huge file) keeps flat memory; iterate to read them back in order."""

    def __init__(self) -> None:
        self._spool = tempfile.SpooledTemporaryFile(max_size=1 << 20, mode="w+", encoding="utf-8")
        self._n = 0

    def append(self, doc: dict[str, Any]) -> None:
        self._spool.write(json.dumps(doc, ensure_ascii=False) + "\n")
        self._n += 1

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self._spool.flush()
        self._spool.seek(0)
        for line in self._spool:
            yield json.loads(line)
        self._spool.seek(0, 2)


@dataclass(slots=True)
class RunSummary:
    records: int = 0
    template_ids: set[str] = field(default_factory=set)
    incidents: IncidentLog = field(default_factory=IncidentLog)
    recommendations: int = 0
    interrupted: bool = False

    def to_json(self) -> dict[str, Any]:
        """The contract's object, in memory (small runs; `write_json` streams it)."""
        return {"records": self.records, "templates": len(self.template_ids), "incidents": list(self.incidents)}

    def write_json(self, out: TextIO) -> None:
        """The contract's `{"records", "templates", "incidents"}` object, streamed incident by incident."""
        out.write(f'{{"records": {self.records}, "templates": {len(self.template_ids)}, "incidents": [')
        for i, doc in enumerate(self.incidents):
            out.write(("," if i else "") + json.dumps(doc, ensure_ascii=False))
        out.write("]}\n")


def run_source(
    source: str,
    settings: Settings,
    store: Store,
    *,
    follow: bool = False,
    resume: bool = False,
    on_progress: Callable[[int], None] | None = None,
    warn: Callable[[str], None] | None = None,
    stop_event: threading.Event | None = None,
) -> RunSummary:
    """Analyse one source into `store`. Raises InputError for an empty input; KeyboardInterrupt propagates after
    the batches already written are committed (the caller reports it).

    Templates always continue from the store (ids stay stable across runs). The reasoner's history continues
    only with `resume` (streams fed piece by piece); `analyze` judges a file on its own, so analysing the same
    file twice gives the same incidents."""
    state = {STATE_KEY: store.load_state(STATE_KEY)}
    if resume:
        state[REASONER_STATE_KEY] = store.load_state(REASONER_STATE_KEY)
    pipe = Pipeline(settings, state)
    summary = RunSummary()
    kwargs: dict[str, Any] = {"follow": follow, "max_line_bytes": settings.max_line_bytes, "warn": warn}
    if stop_event is not None:
        kwargs["stop_event"] = stop_event
    records = read_records(source, settings.log_format, **kwargs)
    chunks = _idle_batched(records, settings.batch_size) if follow else batched(records, settings.batch_size)
    n_batches = 0
    for chunk in chunks:
        if chunk is None:  # idle follow: results of what was read so far become visible now
            batch = pipe.flush()
            batch.state = pipe.state()
            _commit(store, batch, summary)
            continue
        batch = pipe.feed(chunk)
        n_batches += 1
        if n_batches % STATE_EVERY_BATCHES == 0:
            batch.state = pipe.state()
        _commit(store, batch, summary)
        if on_progress is not None:
            on_progress(chunk[-1].offset)
    _commit(store, pipe.finish(), summary)
    if summary.records == 0 and not follow:
        raise InputError(f"{'Standard input' if source == '-' else source} contains no log lines.")
    return summary


def _idle_batched(records: Iterator[LogRecord], size: int) -> Iterator[list[LogRecord] | None]:
    """Batches of a followed source, plus None whenever the source has been idle for IDLE_FLUSH_SECONDS.

    The reader blocks while it polls the file, so it runs in a daemon thread feeding a bounded queue (which
    also gives backpressure: the reader waits when the engine falls behind)."""
    q: queue.Queue[LogRecord | BaseException | None] = queue.Queue(maxsize=size * 4)

    def pump() -> None:
        try:
            for rec in records:
                q.put(rec)
            q.put(None)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer thread, which raises it
            q.put(e)

    threading.Thread(target=pump, name="llmid-follow-reader", daemon=True).start()
    buf: list[LogRecord] = []
    flushed = True
    while True:
        try:
            item = q.get(timeout=IDLE_FLUSH_SECONDS)
        except queue.Empty:
            if buf:
                yield buf
                buf = []
            if not flushed:
                yield None
                flushed = True
            continue
        if item is None:
            break
        if isinstance(item, BaseException):
            raise item
        buf.append(item)
        flushed = False
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def _commit(store: Store, batch: Batch, summary: RunSummary) -> None:
    if not batch:
        return
    store.write(batch)
    for rec in batch.recommendations:  # the gate's decision on every recommendation, in the audit trail
        store.record_audit(f"planner ({rec.method})", "recommendation.gate", rec.recommendation_id,
                           {"incident_id": rec.incident_id, "action": rec.action, "target": rec.target,
                            "confidence": round(rec.confidence.mean, 6), "verdict": rec.safety_verdict,
                            "reasons": list(rec.safety_reasons)})
    summary.records += len(batch.records)
    summary.template_ids.update(r.template_id for r in batch.records if r.template_id)
    recs_by_incident: dict[str, list[dict[str, Any]]] = {}
    for rec in batch.recommendations:
        recs_by_incident.setdefault(rec.incident_id, []).append(rec.to_doc())
    for inc in batch.incidents:
        doc = inc.to_doc()
        doc["recommendations"] = recs_by_incident.get(inc.incident_id, [])
        summary.incidents.append(doc)
    summary.recommendations += len(batch.recommendations)
