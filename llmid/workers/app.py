"""The Celery app of the workers: one queue per stage, late acknowledgement, dead letters for bad messages.

Delivery: a message is acknowledged only after its step is committed to the store (`acks_late`), and a pool child
killed mid-task gives its message back at once (`reject_on_worker_lost`); a whole worker killed gives it back when
Redis' visibility timeout expires. Steps are idempotent, so a message done twice changes nothing. Messages that
cannot be tasks of ours (undecodable, unknown task name) are recorded as dead letters by the consumer itself,
since no task ever sees them.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from celery import Celery
from celery.worker.consumer import Consumer
from kombu import Queue
from kombu.utils.scheduling import round_robin_cycle

from llmid.config import Settings
from llmid.errors import LlmidError

log = logging.getLogger("llmid.workers")

QUEUE_NAMES = ("llmid.structure", "llmid.reason", "llmid.plan")

app = Celery("llmid", set_as_current=False)

PUBLISH_RETRY = {"max_retries": 40, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 3.0}
"""How long publishing keeps trying while the broker is away (about two minutes): a broker restart is survived."""


class BrokerError(LlmidError):
    """The broker cannot be reached or used."""

    exit_code = 4


class _Defaults:
    dead_letter_store: str | None = None
    """Where the consumer records messages that name no store of their own (the worker's --store)."""


defaults = _Defaults()


CHAIN_STREAK = 32
"""Messages a worker takes in a row from its preferred queue before it takes one in round robin order again,
so that no queue waits for ever behind a chain that always has work (a followed source, say)."""


class _Chain:
    preferred: str | None = None
    """The queue this worker takes its next message from when it holds one (None: Redis' round robin)."""
    streak: int = 0

    def prefer(self, queue: str | None) -> None:
        """Set by each task for the next message (see ChainCycle), at most CHAIN_STREAK times in a row."""
        self.streak = self.streak + 1 if queue is not None and queue == self.preferred else 0
        self.preferred = queue if self.streak < CHAIN_STREAK else None


chain = _Chain()


class ChainCycle(round_robin_cycle):  # type: ignore[misc]
    """Order of a worker's queues for its next Redis BRPOP: the queue `chain.preferred` names first, then
    round robin.

    The structure and reason steps are chains (each message waits for its predecessor's commit), and the
    worker that just committed one holds its state warm and finds its turn at once. Round robin made it
    switch queues after every message, so the next link usually went to a worker that had to wait for its
    turn and reload the state, while the chain stalled behind that worker's other message. The tasks set
    the preference: stay on the chain whose turn came at once, else move to the other one."""

    def consume(self, n: int) -> list[str]:
        items = list(self.items[:n])
        want = chain.preferred
        if want in items:
            items.remove(want)
            items.insert(0, want)
        return items


def configure(broker: str, settings: Settings) -> Celery:
    """Point the app at `broker` with the delivery settings above; returns the app."""
    app.conf.update(
        broker_url=broker,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_queues=[Queue(q, routing_key=q) for q in QUEUE_NAMES],
        task_default_queue=QUEUE_NAMES[0],
        broker_transport_options={"visibility_timeout": float(settings.broker_visibility_timeout),
                                  "queue_order_strategy": "llmid.workers.app:ChainCycle"},
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_pool_limit=4,
        task_publish_retry_policy=PUBLISH_RETRY,
        worker_consumer="llmid.workers.app:DeadLetterConsumer",
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        worker_disable_rate_limits=True,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_cancel_long_running_tasks_on_connection_loss=True,  # they come back: every step is idempotent
    )
    import llmid.workers.tasks  # noqa: F401 - registers the tasks on the app

    return app


def check_broker(broker: str, timeout: float = 5.0) -> None:
    """Fail now, with one sentence, when the broker cannot be reached (rather than retrying forever)."""
    scheme = broker.split("://", 1)[0].lower() if "://" in broker else ""
    if scheme not in ("redis", "rediss", "amqp", "amqps", "pyamqp", "memory"):
        raise BrokerError(f"Unknown broker URL {broker!r}: expected redis://HOST:PORT/DB or amqp://USER:PASS@HOST:PORT//.")
    conn = app.connection_for_write(broker)
    try:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
    except Exception as err:  # noqa: BLE001 - kombu raises transport-specific errors
        raise BrokerError(f"Cannot reach the broker at {_redact(broker)}: {_reason(err)}.") from None
    finally:
        conn.release()


def queue_depth(conn: Any) -> int:
    """Messages waiting in the stage queues (not counting those taken by workers)."""
    return sum(_depth(conn, q) for q in QUEUE_NAMES)


class Watchdog:
    """Restarts this worker when it has stopped consuming although its queues hold messages.

    After a broker restart, Celery sometimes stays connected without taking messages again (an acknowledgement
    that failed while the broker was away leaves the Redis consumer without its blocking read). The watchdog
    checks every `interval` seconds: idle (nothing running or reserved) for `idle_s`, the broker answering, and
    messages waiting on this worker's queues, twice in a row: then it re-executes the worker (same process id,
    same options). Unacknowledged messages come back, and every step is idempotent, so nothing is lost."""

    def __init__(self, queues: list[str], interval: float = 5.0, idle_s: float = 15.0) -> None:
        self.queues, self.interval, self.idle_s = queues, interval, idle_s
        self.last_busy = time.monotonic()

    def start(self) -> None:
        threading.Thread(target=self._run, name="llmid-watchdog", daemon=True).start()

    def _idle(self) -> bool:
        from celery.worker import state

        if state.active_requests or state.reserved_requests:
            self.last_busy = time.monotonic()
            return False
        return time.monotonic() - self.last_busy >= self.idle_s

    def _waiting(self) -> int:
        try:
            with app.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1, timeout=3)
                return sum(_depth(conn, q) for q in self.queues)
        except Exception:  # noqa: BLE001 - broker away: Celery's own reconnection is at work
            return 0

    def _run(self) -> None:
        strikes = 0
        while True:
            time.sleep(self.interval)
            stuck = self._idle() and self._waiting() > 0
            strikes = strikes + 1 if stuck else 0
            if strikes >= 2:
                self._restart()

    def _restart(self) -> None:
        log.warning("Not consuming although messages wait on %s; restarting the worker.", ", ".join(self.queues))
        for handler in logging.getLogger().handlers:
            handler.flush()
        me = os.getpid()
        try:
            children = [int(x) for x in open(f"/proc/{me}/task/{me}/children").read().split()]  # noqa: SIM115
        except OSError:
            children = []
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except OSError:
                pass
        os.execv(sys.executable, [sys.executable, "-m", "llmid", *sys.argv[1:]])


def _depth(conn: Any, queue: str) -> int:
    try:
        return int(conn.default_channel.queue_declare(queue=queue, passive=True).message_count)
    except Exception:  # noqa: BLE001 - a queue nobody declared yet holds nothing
        return 0


def _redact(url: str) -> str:
    """The URL without its password."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    cred, host = rest.rsplit("@", 1)
    user = cred.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if user else f"{scheme}://***@{host}"


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text.rstrip(".")


def record_dead(reason: str, raw: Any, *, task: str = "?", queue: str | None = None,
                message_id: str | None = None) -> None:
    """Record a message no task will see in the worker's dead-letter store; never raises (consuming goes on)."""
    try:
        from llmid.workers.deadletter import record
        from llmid.workers.tasks import CTX

        url = defaults.dead_letter_store
        if url is None:
            return
        if isinstance(raw, bytes | bytearray):
            raw = bytes(raw).decode("utf-8", "replace")
        record(CTX.store(url), task=task, error=reason, payload=raw, queue=queue, message_id=message_id)
        log.error("Dead-lettered a message: %s", reason)
    except Exception as err:  # noqa: BLE001 - the consumer must keep consuming
        log.error("Could not record a dead letter (%s): %s", reason, err)


def use_safe_redis_transport() -> None:
    """Make redis:// URLs use SafeRedisTransport in this process (the worker's): kombu's own Redis channel
    stops the worker on an item of its list that is not a kombu message."""
    import kombu.transport

    for alias in ("redis", "rediss"):
        kombu.transport.TRANSPORT_ALIASES[alias] = "llmid.workers.app:SafeRedisTransport"


def _safe_redis_transport() -> type:
    from kombu.transport import redis as kredis

    class SafeChannel(kredis.Channel):  # type: ignore[misc, name-defined]
        def _brpop_read(self, **options: Any) -> bool:
            try:
                return bool(super()._brpop_read(**options))
            except ValueError as err:  # not JSON, not UTF-8: already taken off the list, so record and go on
                record_dead(f"The queue held something that is not a message ({_reason(err)}).",
                            getattr(err, "doc", None) or getattr(err, "object", b""))
                return True

    class Transport(kredis.Transport):  # type: ignore[misc, name-defined]
        Channel = SafeChannel

    return Transport


class DeadLetterConsumer(Consumer):
    """Celery's consumer, recording the messages it throws away (undecodable, unknown task) as dead letters."""

    def _dead(self, reason: str, message: Any, body: Any = None) -> None:
        raw = body if body is not None else getattr(message, "body", None)
        info = getattr(message, "delivery_info", {}) or {}
        headers = getattr(message, "headers", {}) or {}
        record_dead(reason, raw, task=str(headers.get("task") or "?"), queue=info.get("routing_key"),
                    message_id=headers.get("id"))

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        self._dead(f"The message cannot be decoded ({_reason(exc)}).", message)
        super().on_decode_error(message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self._dead("The message is not a task message.", message, body)
        super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        self._dead(f"The message names an unknown task ({_reason(exc)}).", message, body)
        super().on_unknown_task(body, message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        self._dead(f"The message is not a valid task ({_reason(exc)}).", message, body)
        super().on_invalid_task(body, message, exc)


def __getattr__(name: str) -> Any:
    """`SafeRedisTransport` is built on first use (kombu's Redis transport imports redis-py)."""
    if name == "SafeRedisTransport":
        cls = _safe_redis_transport()
        globals()[name] = cls
        return cls
    raise AttributeError(name)
