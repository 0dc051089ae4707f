"""Cut a record stream into windows per source, so reasoning sees bounded, time-ordered slices.

A window closes when a record of the same source falls past its end (source clock, not wall clock), when it
reaches `max_lines`, or at end of input. Records without a timestamp use the last seen one, so a file with no
times is windowed by line count alone. Memory is bounded by the open windows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from llmid.documents import LogRecord


@dataclass(slots=True)
class Window:
    source: str
    index: int
    """0-based sequence number of this window within its source."""
    records: list[LogRecord] = field(default_factory=list)
    start: float | None = None
    end: float | None = None

    @property
    def first_line(self) -> int:
        return self.records[0].line_id

    @property
    def last_line(self) -> int:
        return self.records[-1].line_id


class Windower:
    def __init__(self, seconds: float = 300.0, max_lines: int = 2000) -> None:
        self.seconds = seconds
        self.max_lines = max_lines
        self._open: dict[str, Window] = {}
        self._count: dict[str, int] = {}
        self._clock: dict[str, float] = {}

    def add(self, records: Iterable[LogRecord]) -> Iterator[Window]:
        """Add records in stream order; yield the windows they close."""
        for rec in records:
            ts = rec.timestamp if rec.timestamp is not None else self._clock.get(rec.source)
            if ts is not None:
                self._clock[rec.source] = ts
            win = self._open.get(rec.source)
            if win is not None and (
                len(win.records) >= self.max_lines
                or (ts is not None and win.start is not None and ts >= win.start + self.seconds)
            ):
                yield self._close(rec.source)
                win = None
            if win is None:
                win = self._new(rec.source, ts)
            if win.start is None and ts is not None:
                win.start = ts - (ts % self.seconds) if self.seconds > 0 else ts
            win.records.append(rec)
            if ts is not None:
                win.end = ts if win.end is None else max(win.end, ts)

    def flush(self) -> Iterator[Window]:
        """End of input: close every open window."""
        for source in list(self._open):
            yield self._close(source)

    def _new(self, source: str, ts: float | None) -> Window:
        idx = self._count.get(source, 0)
        self._count[source] = idx + 1
        win = Window(source=source, index=idx)
        self._open[source] = win
        return win

    def _close(self, source: str) -> Window:
        return self._open.pop(source)
