"""Reading log sources as a stream of records: plain files, .gz files, stdin, and `tail -F` following.

Everything is a generator over bounded binary chunks, so memory stays flat for a 1 GB file or a 10 MB line,
and byte offsets are exact (they become document ids: re-ingesting a file overwrites, never duplicates).
Problems the user can fix (missing file, directory, binary data, corrupt archive) raise `InputError` with one
sentence; odd bytes inside a text log only warn once.
"""

from __future__ import annotations

import gzip
import os
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

from llmid.documents import LogRecord
from llmid.errors import InputError
from llmid.ingest_pipelines.detect import Detector, FixedParser
from llmid.ingest_pipelines.formats import get_format
from llmid.ingest_pipelines.multiline import Line, assemble

CHUNK_BYTES = 1 << 16
SNIFF_BYTES = 8192
POLL_SECONDS = 0.2
_FLUSH = b""
"""Chunk marker (an empty bytes object) for "the file was rotated: end the partial last line"."""

_TEXT_CONTROLS = frozenset(b"\t\n\r\f\v\b\x1b")


def looks_binary(sample: bytes) -> bool:
    """NUL bytes, or more than 30% bytes that are neither text nor valid UTF-8, mean this is not a text log."""
    if not sample:
        return False
    if b"\x00" in sample:
        return True
    bad = sum(1 for b in sample if b < 32 and b not in _TEXT_CONTROLS) + sample.count(0x7F)
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 4:  # not just a character cut at the end of the sample
            bad += sum(1 for b in sample if b >= 0x80)
    return bad > 0.3 * len(sample)


def _open(path: str) -> tuple[BinaryIO, bool]:
    """Open a file for binary reading (transparently gunzipping); errors become one-sentence InputErrors."""
    if os.path.isdir(path):
        raise InputError(f"{path} is a directory, not a log file.")
    try:
        f = open(path, "rb")  # the generator owns and closes it
    except FileNotFoundError:
        raise InputError(f"No such file: {path}.") from None
    except PermissionError:
        raise InputError(f"Permission denied reading {path}.") from None
    except OSError as exc:
        raise InputError(f"Cannot open {path}: {exc.strerror or exc}.") from None
    magic = f.read(2)
    f.seek(0)
    if magic == b"\x1f\x8b" or path.endswith(".gz"):
        return gzip.GzipFile(fileobj=f, mode="rb"), True  # type: ignore[return-value]
    return f, False


def _reader(f: BinaryIO, path: str, gz: bool) -> Callable[[int], bytes]:
    """A read function that turns gzip damage into InputError and uses read1 (no waiting on pipes)."""
    read = getattr(f, "read1", None) or f.read
    if not gz:
        return read

    def safe_read(n: int) -> bytes:
        try:
            return read(n)
        except (EOFError, zlib.error, gzip.BadGzipFile, OSError):
            raise InputError(f"{path} is truncated or corrupt.") from None

    return safe_read


def _first_chunk(read: Callable[[int], bytes], path: str) -> bytes:
    """Read the first bytes and refuse binary data before anything is parsed."""
    head = read(SNIFF_BYTES)
    if head and looks_binary(head[:SNIFF_BYTES]):
        name = "stdin" if path == "-" else path
        raise InputError(f"{name} looks like binary data, not a text log.")
    return head


def _plain_chunks(f: BinaryIO, read: Callable[[int], bytes], head: bytes) -> Iterator[bytes | None]:
    try:
        if head:
            yield head
        while True:
            chunk = read(CHUNK_BYTES)
            if not chunk:
                return
            yield chunk
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def _follow_chunks(path: str, f: BinaryIO, head: bytes,
                   stop_event: threading.Event | None) -> Iterator[bytes | None]:
    """Like `tail -F`: read to EOF, then poll; reopen from the start on rotation (new inode or shrink),
    keep waiting while the file is missing; end when `stop_event` is set (after draining what is there)."""
    pos = len(head)
    ino = os.fstat(f.fileno()).st_ino
    try:
        if head:
            yield head
        while True:
            chunk = f.read(CHUNK_BYTES)
            if chunk:
                pos += len(chunk)
                yield chunk
                continue
            yield None  # idle: let the held record go out
            if stop_event is not None and stop_event.is_set():
                return
            if stop_event is not None:
                stop_event.wait(POLL_SECONDS)
            else:
                time.sleep(POLL_SECONDS)
            try:
                st = os.stat(path)
            except OSError:
                continue  # rotated away and not yet recreated
            if st.st_ino == ino and st.st_size >= pos:
                continue
            while True:  # drain what was written to the old file before it was rotated
                chunk = f.read(CHUNK_BYTES)
                if not chunk:
                    break
                yield chunk
            try:
                new = open(path, "rb")
            except OSError:
                continue
            f.close()
            f = new
            ino = os.fstat(f.fileno()).st_ino
            pos = 0
            yield _FLUSH
    finally:
        f.close()


def split_lines(chunks: Iterator[bytes | None], max_line_bytes: int,
                warn: Callable[[str], None] | None, name: str) -> Iterator[Line | None]:
    """Split byte chunks on "\\n" (dropping a "\\r" before it), tracking line numbers and byte offsets.

    A line longer than `max_line_bytes` is cut to that length; the rest is skipped without being stored.
    """
    line_no = 0
    offset = 0
    parts: list[bytes] = []  # kept bytes of the unfinished line (at most max_line_bytes in all)
    kept = 0
    total = 0  # bytes of the unfinished line seen so far, including skipped ones
    warned_long = False
    warned_utf8 = False

    def decode(raw: bytes, truncated: bool = False) -> str:
        nonlocal warned_utf8
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            if truncated and exc.start >= len(raw) - 3 and exc.reason == "unexpected end of data":
                return raw[: exc.start].decode("utf-8", errors="replace")  # a character cut by truncation
            if not warned_utf8 and warn is not None:
                warn(f"{name} contains invalid UTF-8; the bad bytes were replaced.")
            warned_utf8 = True
            return raw.decode("utf-8", errors="replace")

    for chunk in chunks:
        if chunk is None:
            yield None
            continue
        if chunk is _FLUSH or not chunk:
            if total:
                line_no += 1
                yield line_no, offset, decode(b"".join(parts), total > max_line_bytes)
                offset += total
                parts, kept, total = [], 0, 0
            continue
        pieces = chunk.split(b"\n")
        last = len(pieces) - 1
        for i, piece in enumerate(pieces):
            size = len(piece)
            if i == last:
                if size:
                    if kept < max_line_bytes:
                        take = piece[: max_line_bytes - kept]
                        parts.append(take)
                        kept += len(take)
                    total += size
                break
            if total:
                if kept < max_line_bytes:
                    parts.append(piece[: max_line_bytes - kept])
                raw = b"".join(parts)
                size += total
                parts, kept, total = [], 0, 0
            else:
                raw = piece
            if size > max_line_bytes:
                raw = raw[:max_line_bytes]
                if not warned_long and warn is not None:
                    warn(f"{name} has lines longer than {max_line_bytes} bytes; they were truncated.")
                warned_long = True
            line_no += 1
            yield line_no, offset, decode(raw, size > max_line_bytes)
            offset += size + 1
    if total:
        if total > max_line_bytes and not warned_long and warn is not None:
            warn(f"{name} has lines longer than {max_line_bytes} bytes; they were truncated.")
        line_no += 1
        yield line_no, offset, decode(b"".join(parts), total > max_line_bytes)


def read_records(path: str, log_format: str | None = None, *, follow: bool = False,
                 max_line_bytes: int = 65536, multiline: bool = True,
                 warn: Callable[[str], None] | None = None,
                 stop_event: threading.Event | None = None) -> Iterator[LogRecord]:
    """Stream the records of a file, a .gz file or stdin ("-"), in input order.

    `log_format` is a preset name, a header template, or None/"auto" to detect the format of each line.
    The source is opened and checked now (so a missing or binary file fails at the call), then read lazily.
    With `follow`, keep reading as the file grows and across rotations until `stop_event` is set or
    KeyboardInterrupt; offsets keep counting across rotations so record ids stay unique.
    """
    parser: Detector | FixedParser
    if log_format is None or log_format.strip().lower() in ("", "auto"):
        parser = Detector()
    else:
        parser = FixedParser(get_format(log_format))
    if max_line_bytes < 1:
        raise InputError("max_line_bytes must be at least 1.")
    if path == "-":
        f: BinaryIO = sys.stdin.buffer
        gz = False
    else:
        f, gz = _open(path)
    read = _reader(f, path, gz)
    try:
        head = _first_chunk(read, path)
    except BaseException:
        if f is not sys.stdin.buffer:
            f.close()
        raise
    if follow and path != "-" and not gz:
        chunks = _follow_chunks(path, f, head, stop_event)
    else:
        chunks = _plain_chunks(f, read, head)
    name = "stdin" if path == "-" else path
    lines = split_lines(chunks, max_line_bytes, warn, name)
    return assemble(lines, parser, path, multiline=multiline, max_record_bytes=max(1 << 20, max_line_bytes))
