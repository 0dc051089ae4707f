"""Raw input cut into chunks at record boundaries (the ingest side), and chunks parsed into records (the worker side).

`ingest --broker` must stay cheap, because it shares the machine with the workers: it only reads bytes and cuts
them after every ~N lines, and the workers do the costly parsing (format detection, timestamps, multi-line
records). For the workers' records to equal what `read_records` yields over the whole file, a cut is made only
before a line that surely starts a new record: not blank, not a continuation (indented, a stack frame, an
exception line) and not after a container's partial line. Each chunk carries the line number and byte offset of
its first byte, so line ids and record ids (source, offset) are exactly those of the in-process run, and the last
few record lines before it, which the worker feeds to its format detector first (the detector tries the last
format that matched before the others).
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from llmid.documents import LogRecord
from llmid.errors import InputError
from llmid.ingest_pipelines.detect import Detector, FixedParser
from llmid.ingest_pipelines.formats import get_format
from llmid.ingest_pipelines.multiline import CONTINUATION, EXCEPTION_LINE, assemble
from llmid.ingest_pipelines.sources import split_lines

CONTEXT_LINES = 8
"""Record lines before a chunk sent along to warm the worker's format detector."""
MAX_EXTEND_LINES = 4000
"""A cut waits at most this many lines for a safe boundary (a continuation run longer than this is split; the
in-process reader splits records at 1000 lines anyway)."""

_CRI_PARTIAL = re.compile(rb"\d{4}-\d\d-\d\dT\S+ (?:stdout|stderr) P[ :]")


@dataclass(slots=True)
class RawChunk:
    """Whole lines of the input with the position of their first byte."""

    data: bytes
    line: int
    """Lines before this chunk (its first line is number line + 1)."""
    offset: int
    """Byte offset of its first byte in the input."""
    adjust: list[list[int]] = field(default_factory=list)
    """[line index in the chunk, bytes]: bytes of that line not sent (cut overlong lines), so offsets after it
    stay exact; -1 for a line ended by a rotation instead of a newline."""
    context: list[str] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        return {
            "data": self.data.decode("utf-8", "surrogateescape"),
            "line": self.line,
            "offset": self.offset,
            "adjust": self.adjust,
            "context": self.context,
        }


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\r").decode("utf-8", "replace")


def starts_record(line: bytes, prev: bytes | None) -> bool:
    """True when `line` begins a new record whatever came before (a safe place to cut)."""
    if not line.strip():
        return False
    text = _text(line)
    if CONTINUATION.match(text) or EXCEPTION_LINE.match(text):
        return False
    if prev is not None:
        if _CRI_PARTIAL.match(prev):
            return False
        p = prev.lstrip()
        if p.startswith(b"{") and b'"log"' in p and b'\\n"' not in p:
            return False  # a Docker line split by the driver (no trailing \n in "log"): the next one continues it
    return True


class Chunker:
    """Feed bytes in input order; get chunks of about `lines` whole lines, cut only at record starts."""

    def __init__(self, lines: int, max_line_bytes: int) -> None:
        self.lines = max(1, lines)
        self.max_line = max_line_bytes
        self.buf = bytearray()
        self.line = 0
        self.offset = 0
        self.adjust: dict[int, int] = {}
        self._truncating: int | None = None  # index (in buf) of the overlong unfinished line being skipped
        self._context: deque[str] = deque(maxlen=CONTEXT_LINES)

    def feed(self, data: bytes) -> Iterator[RawChunk]:
        """Add input; yield the chunks that are complete."""
        if self._truncating is not None:
            nl = data.find(b"\n")
            skipped = len(data) if nl < 0 else nl
            self.adjust[self._truncating] = self.adjust.get(self._truncating, 0) + skipped
            if nl < 0:
                return
            data = data[nl:]
            self._truncating = None
        self.buf += data
        tail = self.buf.rfind(b"\n") + 1
        keep = self.max_line + 1  # enough for the worker to see that the line is too long and cut it the same way
        if len(self.buf) - tail > keep:
            index = self.buf.count(b"\n")
            excess = len(self.buf) - tail - keep
            del self.buf[len(self.buf) - excess:]
            self.adjust[index] = self.adjust.get(index, 0) + excess
            self._truncating = index
        while True:
            end = self._cut_point()
            if end is None:
                return
            yield self._take(end)

    def end_line(self) -> None:
        """The input was rotated: its unfinished last line is complete (no newline, so offsets move by -1)."""
        if self.buf and not self.buf.endswith(b"\n"):
            index = self.buf.count(b"\n")
            self.buf += b"\n"
            self.adjust[index] = self.adjust.get(index, 0) - 1
        self._truncating = None

    def rest(self, final: bool) -> RawChunk | None:
        """Everything buffered: every whole line, plus the unfinished last one when `final` (end of input)."""
        if final:
            end = len(self.buf)
        else:
            end = self.buf.rfind(b"\n") + 1
        if end == 0:
            return None
        return self._take(end)

    # -- internals ------------------------------------------------------------------------------------------
    def _cut_point(self) -> int | None:
        """End (exclusive) of the next chunk in buf, or None until enough lines are buffered."""
        buf = self.buf
        pos = 0
        for _ in range(self.lines):
            nl = buf.find(b"\n", pos)
            if nl < 0:
                return None
            pos = nl + 1
        extended = 0
        while True:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                return None  # the next line is not complete yet: it decides whether we may cut here
            prev_start = buf.rfind(b"\n", 0, pos - 1) + 1
            if starts_record(bytes(buf[pos:nl]), bytes(buf[prev_start:pos - 1])) or extended >= MAX_EXTEND_LINES:
                return pos
            pos = nl + 1
            extended += 1

    def _take(self, end: int) -> RawChunk:
        data = bytes(self.buf[:end])
        del self.buf[:end]
        n = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        adjust = sorted([i, d] for i, d in self.adjust.items() if i < n)
        self.adjust = {i - n: d for i, d in self.adjust.items() if i >= n}
        if self._truncating is not None:
            self._truncating -= n
        chunk = RawChunk(data, self.line, self.offset, adjust, list(self._context))
        self.line += n
        self.offset += len(data) + sum(d for _, d in adjust)
        self._remember(data)
        return chunk

    def _remember(self, data: bytes) -> None:
        """Keep the last few record lines of what was sent, for the next chunk's detector warm-up."""
        found: list[str] = []
        end = len(data)
        while end > 0 and len(found) < CONTEXT_LINES:
            start = data.rfind(b"\n", 0, end - 1) + 1
            line = data[start:end].rstrip(b"\n")
            if line.strip() and len(line) <= self.max_line:
                text = _text(line)
                if not CONTINUATION.match(text):
                    found.append(text)
            end = start
        if len(found) >= CONTEXT_LINES:
            self._context.clear()
        self._context.extend(reversed(found))


# -- the worker side -----------------------------------------------------------------------------------------
_parsers: dict[str, Detector | FixedParser] = {}
_parsers_lock = threading.Lock()


def _parser(log_format: str | None) -> Detector | FixedParser:
    """One parser per process and format (building the detector's candidates costs more than a chunk's lines)."""
    key = (log_format or "").strip()
    with _parsers_lock:
        parser = _parsers.get(key)
        if parser is None:
            if key.lower() in ("", "auto"):
                parser = Detector()
            else:
                parser = FixedParser(get_format(key))
            _parsers[key] = parser
    return parser


def parse_chunk(payload: dict[str, Any], source: str, log_format: str | None, max_line_bytes: int,
                warn: Callable[[str], None] | None = None) -> list[LogRecord]:
    """The records of one chunk, numbered and positioned as `read_records` numbers them in the whole input."""
    data = str(payload["data"]).encode("utf-8", "surrogateescape")
    parser = _parser(log_format)
    for line in payload.get("context") or []:
        parser.match(str(line))
    base_line, base_offset = int(payload["line"]), int(payload["offset"])
    adjust = sorted((int(i), int(d)) for i, d in payload.get("adjust") or [])
    name = "stdin" if source == "-" else source

    def lines() -> Iterator[tuple[int, int, str]]:
        extra, j = 0, 0
        for n, off, text in split_lines(iter([data]), max_line_bytes, warn, name):
            while j < len(adjust) and adjust[j][0] < n - 1:
                extra += adjust[j][1]
                j += 1
            yield n + base_line, off + base_offset + extra, text

    if max_line_bytes < 1:
        raise InputError("max_line_bytes must be at least 1.")
    return list(assemble(lines(), parser, source, multiline=True, max_record_bytes=max(1 << 20, max_line_bytes)))


# -- the ingest side: raw bytes of a source ------------------------------------------------------------------
IDLE = None
"""What `raw_chunks` yields when a followed source has nothing new (the caller may flush open windows)."""


def raw_input(path: str, *, follow: bool = False,
              stop_event: threading.Event | None = None) -> Iterator[bytes | None]:
    """The source's bytes as `read_records` reads them (plain, .gz, stdin, followed like tail -F): bytes, None
    when a followed file is idle, b"" when it was rotated. Missing, binary or unreadable input raises InputError
    now, with one sentence."""
    import sys

    from llmid.ingest_pipelines import sources

    if path == "-":
        f, gz = sys.stdin.buffer, False
    else:
        f, gz = sources._open(path)
    read = sources._reader(f, path, gz)
    try:
        head = sources._first_chunk(read, path)
    except BaseException:
        if f is not sys.stdin.buffer:
            f.close()
        raise
    if follow and path != "-" and not gz:
        return sources._follow_chunks(path, f, head, stop_event)
    return sources._plain_chunks(f, read, head)


def raw_chunks(raw: Iterator[bytes | None], lines: int, max_line_bytes: int) -> Iterator[RawChunk | None]:
    """Chunks of whole lines cut at record starts; None (IDLE) passes through after what was read is sent."""
    chunker = Chunker(lines, max_line_bytes)
    for data in raw:
        if data is None:
            rest = chunker.rest(final=False)
            if rest is not None:
                yield rest
            yield IDLE
        elif not data:
            chunker.end_line()
        else:
            yield from chunker.feed(data)
    rest = chunker.rest(final=True)
    if rest is not None:
        yield rest
