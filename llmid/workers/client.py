"""`llmid ingest --broker URL`: send a source through Celery workers, with backpressure and recovery.

The ingesting process only reads bytes, cuts chunks (llmid.workers.chunks) and publishes them; the workers do the
rest and write to the store. It keeps the chunks not yet structured in memory (at most `broker_max_inflight`,
which is also its backpressure: it waits instead of growing the broker), so when nothing moves for
`broker_stall_seconds` (a message lost with a restarted broker, a worker killed with its message) it sends them
again and asks the workers to re-send whatever else the run waits for. Duplicates are harmless: every step is
idempotent. With `--wait` it returns when every window is written, and prints what `analyze` prints.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from llmid import ui
from llmid.config import Settings
from llmid.errors import ConfigError, InputError, LlmidError
from llmid.runner import IDLE_FLUSH_SECONDS
from llmid.store import Store, open_store
from llmid.workers.chunks import IDLE, RawChunk, raw_chunks, raw_input
from llmid.workers.runs import Progress, cleanup, new_run, progress, summary
from llmid.workers.runstate import Keys
from llmid.workers.stages import KICK, PAYLOAD_VERSION, QUEUES, STRUCTURE

EXIT_INTERRUPTED = 130
EXIT_FAILED_BATCHES = 5
QUEUE_CHECK_EVERY = 8
"""Chunks between two looks at the broker's queue depth."""


def absolute_store_url(url: str) -> str:
    """Workers run elsewhere (another directory, another process): a relative SQLite path must not move."""
    if not url.lower().startswith("sqlite:"):
        return url
    rest = url.split(":", 1)[1]
    if rest in ("", "//", "///:memory:"):
        raise ConfigError("An in-memory store cannot be shared with workers; give --store sqlite:///PATH.")
    if rest.startswith("///") and not rest.startswith("////"):
        return "sqlite:///" + os.path.abspath(rest[3:])
    return url


class Sender:
    """Publishes a run's chunks with backpressure; re-sends and kicks when the run stalls."""

    def __init__(self, app: Any, store: Store, keys: Keys, settings: Settings,
                 warn: Callable[[str], None], deadline: float | None) -> None:
        self.app, self.store, self.keys, self.settings = app, store, keys, settings
        self.warn, self.deadline = warn, deadline
        self.base = {"v": PAYLOAD_VERSION, "run": keys.run, "store": store.url}
        self.seq = 0
        self.inflight: dict[int, dict[str, Any]] = {}
        self.cursor = 0
        self.sent_since_flush = False
        self.prog = Progress()
        self._mark: tuple[int, int, int] = (-1, -1, -1)
        self._moved = time.monotonic()
        self._warned = False
        self._depth_conn: Any = None

    # -- sending ------------------------------------------------------------------------------------------
    def chunk(self, chunk: RawChunk) -> None:
        self._send({**self.base, "seq": self.seq, **chunk.payload()})
        self.sent_since_flush = True

    def flush(self, final: bool = False) -> None:
        """Close the open windows (input idle), or end the run (`final`)."""
        self._send({**self.base, "seq": self.seq, "data": "", "line": 0, "offset": 0, "adjust": [],
                    "context": [], "flush": True, "final": final})
        self.sent_since_flush = False

    def _send(self, payload: dict[str, Any]) -> None:
        self._backpressure()
        self.inflight[payload["seq"]] = payload
        self._publish(STRUCTURE, payload)
        self.seq += 1

    def _publish(self, stage: str, payload: dict[str, Any]) -> None:
        from llmid.workers.app import BrokerError

        try:
            self.app.send_task(f"llmid.{stage}", args=[payload], queue=QUEUES[stage], retry=True)
        except Exception as err:  # noqa: BLE001 - kombu's errors differ per transport
            raise BrokerError(f"Lost the broker while sending ({str(err).strip() or type(err).__name__}).") from None

    def _backpressure(self) -> None:
        limit = max(1, self.settings.broker_max_inflight)
        check_queue = self.seq % QUEUE_CHECK_EVERY == 0
        delay = 0.005
        while True:
            if self.seq - self.cursor < limit and not (check_queue and self._queued() > 4 * limit):
                return
            self._refresh()
            if self.seq - self.cursor < limit and not (check_queue and self._queued() > 4 * limit):
                return
            self._check_stall()
            time.sleep(delay)
            delay = min(delay * 1.5, 0.1)

    def _queued(self) -> int:
        from llmid.workers.app import queue_depth

        try:
            if self._depth_conn is None:
                self._depth_conn = self.app.connection_for_read()
            return queue_depth(self._depth_conn)
        except Exception:  # noqa: BLE001 - a broker hiccup: the in-flight bound still holds
            self._depth_conn = None
            return 0

    # -- watching -----------------------------------------------------------------------------------------
    def _refresh(self) -> Progress:
        self.prog = progress(self.store, self.keys, self.prog.written)
        self.cursor = self.prog.chunks
        for s in [s for s in self.inflight if s < self.cursor]:
            del self.inflight[s]
        mark = self.prog.marker()
        if mark != self._mark:
            self._mark, self._moved = mark, time.monotonic()
        return self.prog

    def _check_stall(self) -> None:
        now = time.monotonic()
        if self.deadline is not None and now > self.deadline:
            raise _Timeout()
        if now - self._moved < self.settings.broker_stall_seconds:
            return
        if not self._warned:
            self.warn(f"no progress for {self.settings.broker_stall_seconds:g} s; re-sending unfinished work (are "
                      f"`llmid worker` processes running on queues {', '.join(sorted(set(QUEUES.values())))}?)")
            self._warned = True
        # Every unstructured chunk: the one everything waits for may be lost with a killed worker, all of them
        # with a restarted broker; a copy of a chunk already done is dropped by its worker.
        for s in sorted(self.inflight):
            self._publish(STRUCTURE, self.inflight[s])
        self._publish(KICK, dict(self.base))
        self._moved = now

    def wait(self) -> Progress:
        """Until every chunk is structured and every window written."""
        delay = 0.01
        while True:
            prog = self._refresh()
            if prog.complete:
                return prog
            self._check_stall()
            time.sleep(delay)
            delay = min(delay * 1.5, 0.05)

    def close(self) -> None:
        if self._depth_conn is not None:
            try:
                self._depth_conn.release()
            except Exception:  # noqa: BLE001 - closing
                pass


class _Timeout(Exception):
    pass


def ingest_via_broker(args: argparse.Namespace, settings: Settings, *, follow: bool, resume: bool, wait: bool,
                      print_json: Callable[[Any], None], print_summary: Callable[[Any, str], None]) -> int:
    """The `ingest --broker` command (also `analyze` when a broker is configured: it always waits)."""
    from llmid.workers.app import check_broker, configure

    assert settings.broker
    settings = replace(settings, store=absolute_store_url(settings.store))
    warn = ui.make_warn(settings.quiet)
    timeout = getattr(args, "timeout", None)
    if timeout is not None and timeout <= 0:
        raise ConfigError("--timeout must be a positive number of seconds.")
    app = configure(settings.broker, settings)
    check_broker(settings.broker)
    raw = raw_input(args.file, follow=follow)
    deadline = None if timeout is None else time.monotonic() + timeout
    with open_store(settings.store) as store:
        keys = new_run(store, args.file, settings, resume=resume)
        sender = Sender(app, store, keys, settings, warn, deadline)
        sent_any = False
        try:
            with ui.progress("sending", None if follow else ui.file_size(args.file), settings.quiet) as update:
                idle_since: float | None = None
                for chunk in raw_chunks(raw, settings.batch_size, settings.max_line_bytes):
                    if chunk is IDLE:
                        idle_since = idle_since or time.monotonic()
                        if sender.sent_since_flush and time.monotonic() - idle_since >= IDLE_FLUSH_SECONDS:
                            sender.flush()
                        continue
                    idle_since = None
                    sent_any = sent_any or bool(chunk.data.strip())
                    sender.chunk(chunk)
                    update(chunk.offset + len(chunk.data))
            if not sent_any and not follow:
                cleanup(store, keys)
                raise InputError(f"{'Standard input' if args.file == '-' else args.file} contains no log lines.")
            sender.flush(final=True)
            if not wait:
                msg = (f"Sent {args.file} as run {keys.run} ({sender.seq} messages) to {settings.broker}; "
                       f"workers write the results to {settings.store}.")
                if getattr(args, "json", False):
                    print_json({"run": keys.run, "messages": sender.seq, "store": settings.store})
                elif not settings.quiet:
                    print(msg)
                return 0
            with ui.progress("waiting for workers", None, settings.quiet):
                prog = sender.wait()
        except _Timeout:
            ui.error(f"The run {keys.run} did not finish within {timeout:g} s (structured {sender.prog.chunks} of "
                     f"{sender.seq} chunks, wrote {sender.prog.written} windows); it goes on while workers run.")
            return 1
        except KeyboardInterrupt:
            try:
                sender.flush(final=True)
                ui.error(f"Interrupted; what was sent (run {keys.run}) is still processed by the workers into "
                         f"{settings.store}.")
            except (LlmidError, KeyboardInterrupt):
                ui.error(f"Interrupted; everything committed before the interrupt is kept in {settings.store}.")
            return EXIT_INTERRUPTED
        finally:
            sender.close()
        out = summary(store, keys, prog.records)
        cleanup(store, keys)
    if getattr(args, "json", False):
        print_json({k: out[k] for k in ("records", "templates", "incidents")})
    elif not settings.quiet or not follow:
        print_summary(SimpleNamespace(records=out["records"], template_ids=out["template_ids"],
                                      incidents=out["incidents"]), settings.store)
    if prog.failed or out["failures"]:
        n = len(prog.failed) + out["failures"]
        print(f"llmid: error: {n} message(s) of this run failed repeatedly and were dead-lettered; "
              "see `llmid failures`.", file=sys.stderr)
        return EXIT_FAILED_BATCHES
    return 0
