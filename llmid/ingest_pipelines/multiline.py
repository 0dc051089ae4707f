"""Records from lines: stack traces and other continuation lines join the record they belong to.

A Java or Python exception is one event, not thirty; splitting it would flood the template miner with frame
lines and hide the real error. Joining is bounded (lines and bytes) so a runaway continuation cannot grow one
record without limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Protocol

from llmid.documents import LogRecord
from llmid.ingest_pipelines.base import LogFormat, Parsed, raw_parsed

CONTINUATION = re.compile(
    r"[ \t]|Traceback \(most recent call last\)|Caused by: |Suppressed: |at [\w$.<>/\[\]-]+\("
    r"|\.\.\. \d+ (?:more|common frames omitted)|During handling of the above exception"
    r"|The above exception was the direct cause"
)
"""Line starts that always continue the previous record (indentation, trace headers and frames)."""

EXCEPTION_LINE = re.compile(r"(?:[A-Za-z_$][\w$]*\.)*[A-Za-z_$]*(?:Exception|Error|Throwable|Exit|Interrupt)\b")
"""An exception class line ("java.lang.IllegalStateException: boom", "ValueError: bad") that no format matched."""

MAX_RECORD_LINES = 1000


class LineParser(Protocol):
    def match(self, line: str) -> tuple[LogFormat, Parsed] | None: ...


Line = tuple[int, int, str]
"""(1-based line number, byte offset, text without the line break)."""


def _record(line_no: int, offset: int, source: str, text: str, parsed: Parsed) -> LogRecord:
    return LogRecord(
        line_id=line_no, source=source, offset=offset, message=text, content=parsed.content,
        timestamp=parsed.timestamp, level=parsed.level, service=parsed.service, host=parsed.host,
        fields=parsed.fields, log_format=parsed.log_format,
    )


class _Partial:
    """Pieces of one long container line split by the runtime (CRI "P" tags, Docker 16 KiB split)."""

    def __init__(self, fmt: LogFormat, line_no: int, offset: int, text: str, parsed: Parsed) -> None:
        self.fmt, self.line_no, self.offset, self.first = fmt, line_no, offset, parsed
        self.texts = [text]
        self.pieces = [parsed.content]

    def finish(self, source: str) -> LogRecord:
        finish = getattr(self.fmt, "finish", None)
        inner = "".join(self.pieces)
        parsed = finish(inner, self.first) if finish is not None else raw_parsed(inner)
        return _record(self.line_no, self.offset, source, "\n".join(self.texts), parsed)


def assemble(lines: Iterable[Line | None], parser: LineParser, source: str, *, multiline: bool = True,
             max_record_bytes: int = 1 << 20) -> Iterator[LogRecord]:
    """Turn lines into records; `None` in `lines` means "idle" (follow mode) and flushes the held record."""
    pending: LogRecord | None = None
    pending_lines = 0
    pending_bytes = 0
    partial: _Partial | None = None
    for item in lines:
        if item is None:
            if partial is not None:
                yield partial.finish(source)
                partial = None
            if pending is not None:
                yield pending
                pending = None
            continue
        line_no, offset, text = item
        if not text.strip():
            continue  # blank lines carry nothing to analyse
        if (multiline and pending is not None and pending_lines < MAX_RECORD_LINES
                and pending_bytes + len(text) < max_record_bytes and CONTINUATION.match(text)):
            pending.message += "\n" + text
            pending.content += "\n" + text
            pending_lines += 1
            pending_bytes += len(text) + 1
            continue
        found = parser.match(text)
        if partial is not None:
            if found is not None and found[0] is partial.fmt:
                partial.texts.append(text)
                partial.pieces.append(_raw_inner(partial.fmt, text, found[1]))
                if not found[1].partial:
                    if pending is not None:
                        yield pending
                    pending, pending_lines, pending_bytes = partial.finish(source), 1, len(text)
                    partial = None
                continue
            if pending is not None:
                yield pending
            pending, pending_lines, pending_bytes = partial.finish(source), 1, 0
            partial = None
        if found is None:
            if (multiline and pending is not None and pending.log_format != "raw"
                    and pending_lines < MAX_RECORD_LINES and pending_bytes + len(text) < max_record_bytes
                    and EXCEPTION_LINE.match(text)):
                pending.message += "\n" + text
                pending.content += "\n" + text
                pending_lines += 1
                pending_bytes += len(text) + 1
                continue
            parsed = raw_parsed(text)
        else:
            fmt, parsed = found
            if parsed.partial:
                partial = _Partial(fmt, line_no, offset, text, parsed)
                continue
        if pending is not None:
            yield pending
        pending = _record(line_no, offset, source, text, parsed)
        pending_lines = 1
        pending_bytes = len(text)
    if partial is not None:
        if pending is not None:
            yield pending
        pending = partial.finish(source)
    if pending is not None:
        yield pending


def _raw_inner(fmt: LogFormat, text: str, parsed: Parsed) -> str:
    """The raw inner text of one piece of a split container line (before re-detection)."""
    raw = getattr(fmt, "raw_inner", None)
    inner = raw(text) if raw is not None else None
    return inner if inner is not None else parsed.content
