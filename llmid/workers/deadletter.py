"""Dead letters: messages that failed too often, or could never have worked, recorded in the store.

They go to the store's audit trail (action `workers.dead_letter`), which every backend keeps, so `llmid failures`
and `llmid stats` show them wherever the results are, and the payload is kept for a person to inspect or replay.
Imports neither Celery nor the broker: the CLI reads dead letters without either.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from llmid.store import Store

ACTION = "workers.dead_letter"
MAX_PAYLOAD_CHARS = 1 << 20
"""A dead letter keeps at most this much of the message (a chunk is ~100 KB; a garbage message may be anything)."""
SCAN = 10_000
"""Most audit entries read when listing or counting dead letters."""


def record(store: Store, *, task: str, error: str, payload: Any, attempts: int = 1, queue: str | None = None,
           message_id: str | None = None) -> None:
    """Append one dead letter: which task, why (one sentence), after how many attempts, and the message."""
    try:
        text = json.dumps(payload, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        text = repr(payload)
    details = {
        "task": task,
        "queue": queue,
        "error": error,
        "attempts": attempts,
        "worker": socket.gethostname(),
        "payload": text[:MAX_PAYLOAD_CHARS],
        "truncated": len(text) > MAX_PAYLOAD_CHARS,
    }
    if isinstance(payload, dict):
        for k in ("run", "seq", "window", "count"):
            if isinstance(payload.get(k), str | int) and not isinstance(payload.get(k), bool):
                details[k] = payload[k]
    store.record_audit(f"llmid-worker@{socket.gethostname()}", ACTION, message_id, details)


def failures(store: Store, limit: int = 100) -> list[dict[str, Any]]:
    """Dead letters, newest first: {"id", "ts", "task", "queue", "run", "seq", "window", "error", "attempts", ...}."""
    out = []
    for entry in store.audit(limit=SCAN):
        if entry["action"] != ACTION:
            continue
        out.append({"id": entry["id"], "ts": entry["ts"], "message_id": entry["object_id"], **entry["details"]})
        if len(out) >= limit:
            break
    return out


def count(store: Store) -> int:
    """How many dead letters the store holds (of its last SCAN audit entries)."""
    return sum(1 for e in store.audit(limit=SCAN) if e["action"] == ACTION)
