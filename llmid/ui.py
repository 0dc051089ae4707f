"""Terminal output: progress bars and warnings on stderr (silent off a TTY or with --quiet), tables on stdout."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def make_warn(quiet: bool) -> Callable[[str], None]:
    def warn(msg: str) -> None:
        if not quiet:
            print(f"llmid: warning: {msg}", file=sys.stderr)

    return warn


def make_say(quiet: bool) -> Callable[[str], None]:
    """Progress lines of long jobs (training, evaluation) on stderr, nothing with --quiet."""
    if quiet:
        return lambda _msg: None
    return lambda msg: print(msg, file=sys.stderr, flush=True)


def error(msg: str) -> None:
    print(f"llmid: error: {msg}", file=sys.stderr)


@contextmanager
def progress(description: str, total: int | None, quiet: bool) -> Iterator[Callable[[int], None]]:
    """Yield `update(completed)`; a bar on a TTY, nothing otherwise."""
    if quiet or not sys.stderr.isatty():
        yield lambda _n: None
        return
    cols: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
    if total:
        cols += [BarColumn(), DownloadColumn()]
    cols.append(TimeElapsedColumn())
    with Progress(*cols, console=_err, transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.update(task, completed=n)


def file_size(path: str) -> int | None:
    """Bytes for a plain file (progress total); None for stdin and compressed files, whose end is unknown."""
    if path == "-" or path.endswith(".gz"):
        return None
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def print_table(columns: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    table = Table(*columns, title=title, show_lines=False)
    for row in rows:
        table.add_row(*("" if v is None else escape(str(v)) for v in row))
    Console(soft_wrap=False).print(table)
