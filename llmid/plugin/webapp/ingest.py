"""`POST /api/v1/ingest`: lines sent over HTTP go through the same pipeline as `llmid ingest`.

Each source sent over the API (`api:NAME`) continues where its last request ended: line numbers and byte
offsets are kept in the store, so record ids never collide and the reasoner's history carries on. A request
runs the pipeline inline and closes its windows (like an idle `--follow`), so its results are visible when it
returns; requests are serialised, since the miner state is read, extended and written back.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from typing import Any

from llmid.config import Settings
from llmid.documents import Batch
from llmid.engine.pipeline import REASONER_STATE_KEY, Pipeline
from llmid.engine.structurer import STATE_KEY
from llmid.ingest_pipelines.detect import Detector
from llmid.ingest_pipelines.multiline import assemble
from llmid.store.base import Store

SOURCES_KEY = "webapp.ingest.sources"
SOURCE_PATTERN = "[A-Za-z0-9._-]{1,64}"
SOURCE_NAME = re.compile(SOURCE_PATTERN)
MAX_LINE_CHARS = 65536


class IngestError(ValueError):
    """The body cannot be read as lines; the message says which line and why (status 400)."""


def lines_from_json(body: Any) -> tuple[list[str], str | None]:
    """`{"lines": [...], "source": "name"}` or a bare list; items are raw lines or JSON log objects."""
    source = None
    if isinstance(body, dict):
        extra = set(body) - {"lines", "source"}
        if extra:
            raise IngestError(f"Unknown field {sorted(extra)[0]!r}: expected lines and source.")
        source = body.get("source")
        if source is not None and (not isinstance(source, str) or not SOURCE_NAME.fullmatch(source)):
            raise IngestError("source must be 1-64 letters, digits or . _ - characters.")
        body = body.get("lines")
    if not isinstance(body, list):
        raise IngestError('The body must be {"lines": [...]} or a list of lines.')
    return [_line(item, i + 1) for i, item in enumerate(body)], source


def lines_from_ndjson(text: str) -> list[str]:
    """One JSON value per line: a string (a raw log line) or an object (a JSON log record)."""
    out = []
    for i, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            raise IngestError(f"Line {i} of the NDJSON body is not valid JSON.") from None
        out.append(_line(item, i))
    return out


def _line(item: Any, n: int) -> str:
    if isinstance(item, str):
        text = item
    elif isinstance(item, dict):
        text = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
    else:
        raise IngestError(f"Item {n} must be a string or a JSON object.")
    # Lone surrogates (valid JSON, not UTF-8) become "?" and NULs U+FFFD, so every line can be stored.
    text = text[:MAX_LINE_CHARS].encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    return text


def _merge(a: Batch, b: Batch) -> Batch:
    templates = {t.template_id: t for t in a.templates}
    templates.update((t.template_id, t) for t in b.templates)
    return Batch(records=a.records + b.records, templates=list(templates.values()),
                 incidents=a.incidents + b.incidents, recommendations=a.recommendations + b.recommendations)


def ingest_lines(store: Store, settings: Settings, lines: Iterable[str], source: str, lock: threading.Lock
                 ) -> dict[str, Any]:
    """Run the lines through the pipeline into `store` in one transaction; returns what was stored."""
    if not SOURCE_NAME.fullmatch(source):
        raise IngestError("source must be 1-64 letters, digits or . _ - characters.")
    src = f"api:{source}"
    with lock:
        positions = store.load_state(SOURCES_KEY) or {}
        line_no, offset = positions.get(src, [0, 0])
        numbered = []
        for text in lines:
            for part in text.split("\n"):
                line_no += 1
                numbered.append((line_no, offset, part.rstrip("\r")))
                offset += len(part.encode("utf-8")) + 1
        records = list(assemble(numbered, Detector(), src))
        state = {STATE_KEY: store.load_state(STATE_KEY), REASONER_STATE_KEY: store.load_state(REASONER_STATE_KEY)}
        pipe = Pipeline(settings, state)
        batch = _merge(pipe.feed(records), pipe.flush()) if records else Batch()
        positions[src] = [line_no, offset]
        batch.state = {**pipe.state(), SOURCES_KEY: positions}
        store.write(batch)
    return {
        "source": src,
        "lines": len(numbered),
        "records": len(batch.records),
        "templates": len({r.template_id for r in batch.records if r.template_id}),
        "incidents": [i.incident_id for i in batch.incidents],
    }
