"""`llmid worker` and `llmid failures`, and the broker options of `llmid ingest`.

Kept next to the workers so the main CLI only calls `add_parser` (and `add_ingest_arguments`); Celery is imported
only when a worker starts or something is sent, so every other command starts as fast as before.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from datetime import UTC, datetime
from typing import Any

from llmid import ui
from llmid.config import load_settings
from llmid.errors import ConfigError

STAGE_QUEUES = {"structure": "llmid.structure", "reason": "llmid.reason", "plan": "llmid.plan"}

_WORKER_EPILOG = """\
queues: llmid.structure (parse, templates, windows), llmid.reason (window scores, root cause; model-heavy),
llmid.plan (recommendations; writes the final documents). Give GPU workers the model-heavy queues:
  llmid worker --broker redis://10.0.0.5:6379/0 --queues reason --device cuda:0
  llmid worker --broker redis://10.0.0.5:6379/0 --queues structure,plan --concurrency 4
Results go to the store each run names (the --store of `llmid ingest`); --store here only receives dead
letters of messages that name none. Exit codes: 2 bad option, 4 broker unreachable.
"""


def add_ingest_arguments(p: argparse.ArgumentParser) -> None:
    """The options `llmid ingest --broker` adds."""
    p.add_argument("--wait", action="store_true",
                   help="with --broker: return when the workers have written everything, and print the results")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="with --broker: give up (exit 1) after S seconds; the workers still finish the run")


def add_parser(sub: Any) -> None:
    """Register `worker` and `failures` on the main CLI's subparsers."""
    sp = sub.add_parser("worker", help="run a Celery worker for `ingest --broker` (scale-out, CPU or GPU)",
                        description="Take tasks from the broker's per-stage queues, run the engine on them and "
                                    "write the results to the store each run names.",
                        epilog=_WORKER_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp.add_argument("--broker", metavar="URL", help="Celery broker URL: redis://HOST:PORT/DB or amqp://... "
                                                    "(default: the broker setting, LLMID_BROKER)")
    sp.add_argument("--queues", "-Q", metavar="Q[,Q]", default="structure,reason,plan",
                    help="queues to take tasks from: structure, reason, plan (default: all three)")
    sp.add_argument("--concurrency", "-c", type=int, default=None, metavar="N",
                    help="worker processes (default: the number of CPUs)")
    sp.add_argument("--pool", choices=("prefork", "solo", "threads"), default=None,
                    help="prefork (default; a killed child gives its task back at once), solo (one process, "
                         "least overhead; --concurrency 1 only), threads")
    sp.add_argument("--device", default="cpu", metavar="cpu|cuda:N",
                    help="where ONNX models run (default cpu); cuda:N uses TensorRT or CUDA when available")
    sp.add_argument("--store", metavar="URL", help="where dead letters of messages naming no store are recorded "
                                                   "(default: the store setting)")
    sp.add_argument("--loglevel", "-l", default="warning",
                    choices=("debug", "info", "warning", "error"), help="log level (default warning)")
    sp.add_argument("--config", metavar="FILE", help="TOML settings file (default ./llmid.toml if present)")
    sp.add_argument("-q", "--quiet", action="store_true", help="no start-up line")
    sp.set_defaults(func=cmd_worker)

    sp = sub.add_parser("failures", help="list dead letters: messages the workers gave up on",
                        description="List the messages that failed repeatedly (or could never work) and were "
                                    "dead-lettered by the workers, newest first.")
    sp.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    sp.add_argument("--store", metavar="URL", help="result store (default sqlite:///./llmid.db)")
    sp.add_argument("--json", action="store_true", help="print JSON (with each message's payload)")
    sp.add_argument("--config", metavar="FILE", help="TOML settings file (default ./llmid.toml if present)")
    sp.add_argument("-q", "--quiet", action="store_true", help="accepted for symmetry; prints the same")
    sp.set_defaults(func=cmd_failures)


def parse_queues(text: str) -> list[str]:
    names = [q.strip() for q in text.replace(" ", ",").split(",") if q.strip()]
    out = []
    for q in names:
        full = STAGE_QUEUES.get(q, q)
        if full not in STAGE_QUEUES.values():
            raise ConfigError(f"Unknown queue {q!r}: use structure, reason or plan (or llmid.structure, ...).")
        if full not in out:
            out.append(full)
    if not out:
        raise ConfigError("Give at least one queue: structure, reason or plan.")
    return out


def cmd_worker(args: argparse.Namespace) -> int:
    from llmid.engine import runtime

    flags = {"broker": args.broker, "store": args.store}
    settings = load_settings({k: v for k, v in flags.items() if v is not None}, args.config)
    if not settings.broker:
        raise ConfigError("Give the broker to take tasks from: --broker redis://HOST:PORT/0 (or set LLMID_BROKER).")
    queues = parse_queues(args.queues)
    concurrency = args.concurrency if args.concurrency is not None else (os.cpu_count() or 1)
    if concurrency < 1:
        raise ConfigError("--concurrency must be at least 1.")
    pool = args.pool or "prefork"
    if pool == "solo" and concurrency != 1:
        raise ConfigError("The solo pool runs one task at a time: use --concurrency 1, or --pool prefork.")
    # No spinning threads: workers share the host's cores (see runtime._Config.spinning); results are the same.
    runtime.configure(args.device, threads=runtime.default_threads(concurrency), spinning=False)

    from llmid.workers.app import Watchdog, check_broker, configure, defaults, use_safe_redis_transport
    from llmid.workers.client import absolute_store_url

    use_safe_redis_transport()
    app = configure(settings.broker, settings)
    check_broker(settings.broker)
    defaults.dead_letter_store = absolute_store_url(settings.store)
    if not args.quiet:
        print(f"llmid worker: {', '.join(queues)} from {_redacted(settings.broker)}, {concurrency} x {pool}; "
              f"{runtime.describe()}. Ctrl-C stops after the running tasks.", file=sys.stderr, flush=True)
    worker = app.Worker(queues=queues, concurrency=concurrency, pool=pool, loglevel=args.loglevel.upper(),
                        quiet=True, without_gossip=True, without_mingle=True, without_heartbeat=True,
                        hostname=f"llmid-{os.getpid()}@{socket.gethostname()}", optimization="fair")
    Watchdog(queues).start()
    try:
        worker.start()
    except SystemExit as e:
        return int(e.code or 0) if isinstance(e.code, int) else 0
    return int(getattr(worker, "exitcode", 0) or 0)


def _redacted(url: str) -> str:
    from llmid.workers.app import _redact

    return _redact(url)


def cmd_failures(args: argparse.Namespace) -> int:
    from llmid.store import open_store
    from llmid.workers.deadletter import failures

    flags = {"store": args.store}
    settings = load_settings({k: v for k, v in flags.items() if v is not None}, args.config)
    with open_store(settings.store) as store:
        rows = failures(store, limit=max(0, args.limit))
    if args.json:
        json.dump({"total": len(rows), "failures": rows}, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    table = []
    for f in rows:
        when = datetime.fromtimestamp(f["ts"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        where = f.get("run", "")
        if "seq" in f:
            where = f"{where} chunk {f['seq']}"
        elif "window" in f:
            where = f"{where} window {f['window']}"
        table.append([when, f.get("task"), where, f.get("attempts"), str(f.get("error"))[:120]])
    ui.print_table(["time (UTC)", "task", "run", "attempts", "error"], table, title=f"{len(rows)} dead letters")
    return 0
