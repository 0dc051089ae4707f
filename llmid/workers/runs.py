"""A run's life on the ingesting side: create it in the store, watch its progress, summarise it, clean it up.

Progress is read from the store, never from the broker, so it survives a broker restart and works the same for
every broker: the structure and reason cursors, and for the plan stage the verdicts still waiting to be written.
"""

from __future__ import annotations

import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from llmid.config import Settings
from llmid.documents import Batch
from llmid.engine.pipeline import REASONER_STATE_KEY
from llmid.engine.structurer import STATE_KEY
from llmid.store import Store
from llmid.workers.runstate import Keys


def new_run(store: Store, source: str, settings: Settings, *, resume: bool = True) -> Keys:
    """Write a new run's metadata and initial state: templates continue from the store (as in-process), and so
    does the reasoner's history with `resume` (what `ingest` does)."""
    keys = Keys(uuid.uuid4().hex[:16])
    miner = store.load_state(STATE_KEY)
    history = store.load_state(REASONER_STATE_KEY) if resume else None
    meta = {"v": 1, "run": keys.run, "source": source, "settings": settings.as_dict(), "store": store.url,
            "created": time.time(), "host": socket.gethostname()}
    store.write(Batch(state={
        keys.meta: meta,
        keys.s_next: 0,
        keys.s_state: {"structurer": {"miner": miner, "exact": [], "docs": []}, "windower": None},
        keys.s_progress: {"records": 0, "windows": 0, "chunks": 0, "done": False, "failed": []},
        keys.r_next: 0,
        keys.r_state: {"history": history, "incidents": []},
    }))
    return keys


@dataclass(slots=True)
class Progress:
    """Where a run stands; `complete` when every chunk is structured and every window written."""

    chunks: int = 0
    records: int = 0
    windows: int = 0
    reasoned: int = 0
    written: int = 0
    done: bool = False
    failed: list[int] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.done and self.reasoned == self.windows and self.written == self.windows

    def marker(self) -> tuple[int, int, int]:
        return self.chunks, self.reasoned, self.written


def progress(store: Store, keys: Keys, written_from: int = 0) -> Progress:
    """Read the run's cursors. `written` counts windows from `written_from` on whose verdict is consumed (pass
    the previous `written` to keep polling cheap)."""
    prog = store.load_state(keys.s_progress) or {}
    reasoned = int(store.load_state(keys.r_next) or 0)
    written = min(written_from, reasoned)
    while written < reasoned and store.load_state(keys.verdict(written)) is None:
        written += 1
    return Progress(chunks=int(prog.get("chunks", 0)), records=int(prog.get("records", 0)),
                    windows=int(prog.get("windows", 0)), reasoned=reasoned, written=written,
                    done=bool(prog.get("done")), failed=list(prog.get("failed", [])))


def summary(store: Store, keys: Keys, records: int) -> dict[str, Any]:
    """The run as `analyze --json` prints it: {"records", "templates", "incidents": [doc + recommendations]},
    plus "template_ids" and "failures" (dead letters of this run)."""
    saved = store.load_state(keys.s_state) or {}
    templates = {d["template_id"] for d in (saved.get("structurer") or {}).get("docs", [])}
    incidents = []
    for iid in (store.load_state(keys.r_state) or {}).get("incidents", []):
        doc = store.get_incident(iid)
        if doc is None:
            continue
        doc.pop("_id", None)
        for rec in doc.get("recommendations", []):
            rec.pop("_id", None)
        incidents.append(doc)
    from llmid.workers.deadletter import failures

    dead = sum(1 for f in failures(store, limit=10_000) if f.get("run") == keys.run)
    return {"records": records, "templates": len(templates), "incidents": incidents,
            "template_ids": sorted(templates), "failures": dead}


def cleanup(store: Store, keys: Keys) -> None:
    """Remove the run's bookkeeping (its staged pieces and verdicts are removed as windows are written)."""
    store.write(Batch(state=dict.fromkeys(keys.fixed())))
