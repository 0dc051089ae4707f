"""The worker stages run in-process, one message at a time, without a broker.

The embedded default (`llmid analyze` / `ingest` without `--broker`) keeps using `llmid.runner`; this driver runs
the very functions the Celery tasks run, in the same order a broker would deliver them to one worker. The tests
use it to hold the stages to the in-process pipeline's results without starting anything.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from llmid.config import Settings
from llmid.errors import InputError
from llmid.store import Store
from llmid.workers.chunks import IDLE, raw_chunks, raw_input
from llmid.workers.runs import cleanup, new_run, progress, summary
from llmid.workers.stages import PAYLOAD_VERSION, STAGES, STRUCTURE, Context, FollowUp


def run_local(source: str, settings: Settings, store: Store, *, resume: bool = True,
              warn: Callable[[str], None] | None = None, fresh_workers: bool = False,
              duplicates: bool = False) -> dict[str, Any]:
    """Ingest `source` through the worker stages in this process; returns the run summary (as `analyze --json`).

    `fresh_workers` runs every message in a new context (as if each went to another worker, which must restore
    everything from the store) and `duplicates` delivers every message twice: what a fleet of workers does."""
    raw = raw_input(source)
    keys = new_run(store, source, settings, resume=resume)
    ctx = Context(warn=warn)
    pending: deque[FollowUp] = deque()

    def drain() -> None:
        nonlocal ctx
        while pending:
            task, payload = pending.popleft()
            if fresh_workers:
                ctx = Context(warn=warn, _stores={store.url: store})
            pending.extend(STAGES[task](ctx, payload))
            if duplicates:
                pending.extend(STAGES[task](ctx, payload))

    seq = 0
    base = {"v": PAYLOAD_VERSION, "run": keys.run, "store": store.url}
    for chunk in raw_chunks(raw, settings.batch_size, settings.max_line_bytes):
        if chunk is IDLE:
            continue
        pending.append((STRUCTURE, {**base, "seq": seq, **chunk.payload()}))
        seq += 1
        drain()
    pending.append((STRUCTURE, {**base, "seq": seq, "data": "", "line": 0, "offset": 0, "adjust": [],
                                "context": [], "final": True}))
    drain()
    prog = progress(store, keys)
    out = summary(store, keys, prog.records)
    del out["template_ids"], out["failures"]
    cleanup(store, keys)
    if prog.records == 0:
        raise InputError(f"{'Standard input' if source == '-' else source} contains no log lines.")
    return out
