"""The index datafeed's source side: read an existing index of raw logs (`logs-*`, written by the user's
shippers) as LogRecords, after a checkpoint. llmid/plugin/datafeed.py runs them through the engine, writes the
results to the store and the annotations (`llmid.*` fields) back onto the source documents. No engine or store
import here (DESIGN.md's dependency direction): the reader needs only point-in-time searches (`PitClient`).

Reading: a point in time (PIT) over the source index, pages sorted by `@timestamp` with `search_after`, so a
page never shifts while new documents arrive. Each round reads everything up to now, then (with --follow) sleeps
and opens a new PIT.

**Checkpoint**: the `@timestamp` of the last document processed and the ids processed at exactly that
timestamp, stored in the store's state *in the same write as the results that include those documents* (the
state is written last, see cluster.py). Records only leave the engine when their window closes, so the checkpoint
moves only at flush points (end of a round, or every `checkpoint_pages` pages, where the open windows are closed).
After a crash or restart the feed resumes at `@timestamp >= checkpoint`, skipping the ids already done: no gap, no
duplicate (ids are deterministic anyway, so a replayed page would overwrite, not add). Documents without
`@timestamp` are not read; a document indexed later with a timestamp older than the checkpoint is not read either
(use --settle to read only documents older than N seconds when shippers deliver late).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from llmid.documents import LogRecord, stable_id
from llmid.ingest_pipelines.detect import Detector, FixedParser
from llmid.ingest_pipelines.formats import get_format
from llmid.ingest_pipelines.levels import normalize_level

PAGE = 1000
KEEP_ALIVE = "2m"


def checkpoint_key(name: str) -> str:
    return f"datafeed:{name}"


@dataclass(slots=True)
class Checkpoint:
    ts: int | None = None
    """Epoch milliseconds of the last document processed."""
    ids: list[str] = field(default_factory=list)
    """Ids (index/id) processed whose @timestamp is exactly `ts`."""
    lines: int = 0
    """Documents processed so far (the next record's LineId is lines + 1)."""

    def to_json(self) -> dict[str, Any]:
        return {"ts": self.ts, "ids": self.ids, "lines": self.lines}

    @classmethod
    def from_json(cls, raw: Any) -> Checkpoint:
        if not isinstance(raw, dict):
            return cls()
        return cls(raw.get("ts"), list(raw.get("ids") or []), int(raw.get("lines") or 0))


def _epoch_ms(value: Any) -> int | None:
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value:
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return None
    return None


def _get(src: dict[str, Any], dotted: str) -> Any:
    if dotted in src:
        return src[dotted]
    node: Any = src
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


class PitClient(Protocol):
    """What the reader needs of a cluster (llmid.store.cluster.ClusterStore has it): point-in-time searches."""

    def open_pit(self, index: str, keep_alive: str = ...) -> str: ...

    def close_pit(self, pit_id: str) -> None: ...

    def search_pit(self, pit_id: str, body: dict[str, Any], keep_alive: str = ...) -> dict[str, Any]: ...

    def pit_tiebreak(self) -> list[dict[str, Any]]: ...


class IndexReader:
    """Pages of LogRecords from a source index, after a checkpoint, in (@timestamp, tiebreak) order."""

    def __init__(self, client: PitClient, source: str, log_format: str | None = None, *,
                 message_field: str = "message", page: int = PAGE, settle_s: float = 0.0) -> None:
        self.client = client
        self.source = source
        self.message_field = message_field
        self.page = page
        self.settle_s = settle_s
        self.parser = FixedParser(get_format(log_format)) if log_format else Detector()
        self.origin: dict[str, tuple[str, str]] = {}
        """record id → (source index, source id): where to write its annotations back."""

    def record(self, hit: dict[str, Any], line_id: int) -> LogRecord:
        """A source document as a LogRecord: its own ECS fields win, the header parser fills the rest."""
        src = hit.get("_source") or {}
        message = _get(src, self.message_field)
        message = "" if message is None else str(message)
        head = message.partition("\n")[0]
        parsed = self.parser.parse_line(head)
        content = _get(src, "llmid.content") or (parsed.content + message[len(head):])
        ts_ms = _epoch_ms(src.get("@timestamp"))
        key = f"{hit['_index']}/{hit['_id']}"
        rec = LogRecord(
            line_id=line_id, source=self.source, offset=int(stable_id("doc", key, length=15), 16), message=message,
            content=str(content),
            timestamp=ts_ms / 1000.0 if ts_ms is not None else parsed.timestamp,
            level=normalize_level(_get(src, "log.level")) or parsed.level,
            service=_get(src, "service.name") or parsed.service,
            host=_get(src, "host.name") or parsed.host,
            fields=parsed.fields, log_format=parsed.log_format,
        )
        self.origin[rec.record_id] = (hit["_index"], hit["_id"])
        return rec

    def _query(self, since: int | None) -> dict[str, Any]:
        rng: dict[str, Any] = {"format": "epoch_millis"}
        if since is not None:
            rng["gte"] = since
        if self.settle_s > 0:
            rng["lte"] = int((time.time() - self.settle_s) * 1000)
        filters: list[dict[str, Any]] = [{"exists": {"field": "@timestamp"}}]
        if len(rng) > 1:
            filters.append({"range": {"@timestamp": rng}})
        return {"bool": {"filter": filters}}

    def pages(self, start: Checkpoint) -> Iterator[tuple[list[LogRecord], Checkpoint]]:
        """One PIT over everything after `start`: each page's new records and the checkpoint just after them."""
        pit = self.client.open_pit(self.source, KEEP_ALIVE)
        done_before = set(start.ids)
        ck = Checkpoint(start.ts, list(start.ids), start.lines)
        try:
            after: list[Any] | None = None
            while True:
                body: dict[str, Any] = {"size": self.page, "query": self._query(start.ts),
                                        "sort": [{"@timestamp": {"order": "asc"}}, *self.client.pit_tiebreak()],
                                        "track_total_hits": False}
                if after is not None:
                    body["search_after"] = after
                res = self.client.search_pit(pit, body, KEEP_ALIVE)
                pit = res.get("pit_id") or pit
                hits = res.get("hits", {}).get("hits", [])
                if not hits:
                    return
                after = hits[-1]["sort"]
                chunk = []
                for h in hits:
                    key = f"{h['_index']}/{h['_id']}"
                    ts = int(float(h["sort"][0]))
                    if ts == start.ts and key in done_before:
                        continue  # processed before the checkpoint
                    ck.lines += 1
                    chunk.append(self.record(h, ck.lines))
                    if ts != ck.ts:
                        ck.ts, ck.ids = ts, []
                    ck.ids.append(key)
                yield chunk, Checkpoint(ck.ts, list(ck.ids), ck.lines)
                if len(hits) < self.page:
                    return
        finally:
            self.client.close_pit(pit)
