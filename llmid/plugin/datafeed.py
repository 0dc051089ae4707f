"""The index datafeed (`llmid datafeed --source-index 'logs-*'`): the source side in
llmid/ingest_pipelines/datafeed.py reads the index (point in time + search_after, after a checkpoint); this side
runs the lines through the engine, writes the results to the cluster store, writes the annotations back onto the
source documents, and moves the checkpoint — see that module's docstring for the no-gap, no-duplicate argument.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmid.config import Settings
from llmid.documents import Batch, LogRecord
from llmid.engine.pipeline import REASONER_STATE_KEY, Pipeline
from llmid.engine.structurer import STATE_KEY
from llmid.errors import ConfigError, StoreError
from llmid.ingest_pipelines.datafeed import PAGE, Checkpoint, IndexReader, checkpoint_key
from llmid.store.base import Store
from llmid.store.cluster import ClusterStore


@dataclass(slots=True)
class FeedSummary:
    records: int = 0
    incidents: int = 0
    recommendations: int = 0
    written_back: int = 0
    rounds: int = 0
    checkpoint: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"records": self.records, "incidents": self.incidents, "recommendations": self.recommendations,
                "written_back": self.written_back, "rounds": self.rounds, "checkpoint": self.checkpoint}


class Datafeed:
    """One datafeed: a source index pattern read into a cluster store."""

    def __init__(self, store: Store, source_index: str, settings: Settings, *, name: str | None = None,
                 message_field: str = "message", write_back: bool = True, page: int = PAGE,
                 checkpoint_pages: int = 20, settle_s: float = 0.0) -> None:
        if not isinstance(store, ClusterStore):
            raise ConfigError("The datafeed reads an index of the store's cluster: give --store "
                              "opensearch+http(s)://... or elasticsearch+http(s)://...")
        if source_index.startswith(store.prefix):
            raise ConfigError(f"The source index {source_index} is one of LLM-ID's own ({store.prefix}*).")
        self.store = store
        self.source = source_index
        self.settings = settings
        self.name = name or source_index
        self.write_back = write_back
        self.checkpoint_pages = max(1, checkpoint_pages)
        self.reader = IndexReader(store, source_index, settings.log_format, message_field=message_field, page=page,
                                  settle_s=settle_s)
        self.checkpoint = Checkpoint.from_json(store.load_state(checkpoint_key(self.name)))
        state = {STATE_KEY: store.load_state(STATE_KEY), REASONER_STATE_KEY: store.load_state(REASONER_STATE_KEY)}
        self.pipe = Pipeline(settings, state)

    def _commit(self, batch: Batch, summary: FeedSummary, checkpoint: Checkpoint | None) -> None:
        if checkpoint is not None:
            batch.state = {**self.pipe.state(), checkpoint_key(self.name): checkpoint.to_json()}
        if not batch:
            return
        if self.write_back and batch.records:
            self._write_back(batch.records, summary)
        self.store.write(batch)  # its state (the checkpoint) goes last
        summary.records += len(batch.records)
        summary.incidents += len(batch.incidents)
        summary.recommendations += len(batch.recommendations)
        for r in batch.records:
            self.reader.origin.pop(r.record_id, None)

    def _write_back(self, records: list[LogRecord], summary: FeedSummary) -> None:
        """The annotations onto the source documents (partial updates; the source keeps its own fields)."""
        ops: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        for r in records:
            where = self.reader.origin.get(r.record_id)
            if where is None:
                continue
            ops.append(({"update": {"_index": where[0], "_id": where[1], "retry_on_conflict": 3}},
                        {"doc": {"llmid": {"template_id": r.template_id, "template": r.template,
                                           "params": list(r.params), "anomaly_score": round(r.anomaly_score, 6),
                                           "root_cause_score": round(r.root_cause_score, 6),
                                           "incident_id": r.incident_id}}}))
        failed = self.store.bulk(ops, action="write annotations back to")  # type: ignore[attr-defined]
        if failed:
            raise StoreError(f"The cluster rejected {len(failed)} annotation update(s) of {self.source} (first: "
                             f"{failed[0]['error']}); the checkpoint did not move, so re-running retries them.")
        summary.written_back += len(ops)

    def round(self, summary: FeedSummary, stop: threading.Event | None = None) -> int:
        """Read everything new once (one PIT); returns how many documents it processed."""
        n = pages = 0
        ck = self.checkpoint
        for chunk, ck in self.reader.pages(self.checkpoint):
            n += len(chunk)
            pages += 1
            if chunk:
                self._commit(self.pipe.feed(chunk), summary, None)
            if pages % self.checkpoint_pages == 0:
                self._flush(summary, ck)
            if stop is not None and stop.is_set():
                break
        self._flush(summary, ck)
        summary.rounds += 1
        return n

    def _flush(self, summary: FeedSummary, ck: Checkpoint) -> None:
        """Close the open windows and commit with the checkpoint: everything up to `ck` is now in the store."""
        self._commit(self.pipe.flush(), summary, ck)
        self.checkpoint = Checkpoint(ck.ts, list(ck.ids), ck.lines)
        summary.checkpoint = self.checkpoint.to_json()

    def run(self, *, follow: bool = False, poll_s: float = 5.0, stop: threading.Event | None = None,
            max_rounds: int | None = None, on_round: Callable[[int, FeedSummary], None] | None = None) -> FeedSummary:
        """One round, or with `follow` a round every `poll_s` seconds until `stop` (or `max_rounds`)."""
        summary = FeedSummary(checkpoint=self.checkpoint.to_json())
        while True:
            n = self.round(summary, stop)
            if on_round is not None:
                on_round(n, summary)
            if not follow or (stop is not None and stop.is_set()):
                break
            if max_rounds is not None and summary.rounds >= max_rounds:
                break
            if stop is not None:
                if stop.wait(poll_s):
                    break
            else:
                time.sleep(poll_s)
        return summary
