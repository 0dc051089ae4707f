"""The Celery tasks: thin wrappers that check the message, run the stage and decide what a failure means.

- a malformed message is dead-lettered at once (it would fail the same way forever);
- a message whose predecessor has not committed yet goes back on its queue (not a failure);
- a store error is retried with exponential backoff (`broker_retries` times), other errors twice;
- a message that keeps failing is dead-lettered, and its run moves on without it (`stages.give_up`).

Every decision returns normally, so the message is acknowledged only once its outcome is settled: committed,
re-queued as a new message, or dead-lettered.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from celery import Task

from llmid.config import Settings, load_settings
from llmid.errors import LlmidError, StoreError
from llmid.workers import deadletter
from llmid.workers.app import app, chain, defaults
from llmid.workers.stages import (
    KICK,
    PLAN,
    QUEUES,
    REASON,
    STAGES,
    STRUCTURE,
    Context,
    FollowUp,
    Malformed,
    NotYet,
    UnknownRun,
    check,
    give_up,
)

log = logging.getLogger("llmid.workers")

OTHER_RETRIES = 2
MAX_WAITS = 1200
"""Times a message is put back waiting for its predecessor (3 s apart at most: about an hour) before it is
dead-lettered."""

CTX = Context(warn=lambda msg: log.warning("%s", msg))
_settings: Settings | None = None


def worker_settings() -> Settings:
    """This worker's own settings (retries); the engine settings come with each run."""
    global _settings
    if _settings is None:
        _settings = load_settings()
    return _settings


def task_name(stage: str) -> str:
    return f"llmid.{stage}"


def publish(messages: list[FollowUp]) -> None:
    """Send follow-up messages; if the broker stays away they are lost, but the run is not: its state is in the
    store, and the ingesting side sends a `kick` when it sees no progress."""
    for stage, payload in messages:
        try:
            app.send_task(task_name(stage), args=[payload], queue=QUEUES[stage], retry=True)
        except Exception as err:  # noqa: BLE001 - kombu's errors differ per transport and reconnect state
            log.warning("Could not send a %s message (%s); it is sent again when the run is kicked.", stage, err)


def _backoff(failures: int) -> float:
    return min(60.0, 0.5 * 2 ** failures) * random.uniform(0.8, 1.2)


def _again(stage: str, payload: Any, failures: int, waits: int, countdown: float) -> None:
    app.send_task(task_name(stage), args=[payload], kwargs={"failures": failures, "waits": waits},
                  queue=QUEUES[stage], countdown=countdown, retry=True)


def _dead(task: Task, stage: str, payload: Any, error: str, attempts: int) -> bool:
    """Record a dead letter where the run's results go (else in the worker's store); False when impossible."""
    url = payload.get("store") if isinstance(payload, dict) else None
    for target in (url, defaults.dead_letter_store):
        if not isinstance(target, str):
            continue
        try:
            deadletter.record(CTX.store(target), task=task_name(stage), error=error, payload=payload,
                              attempts=attempts, queue=QUEUES.get(stage), message_id=task.request.id)
            log.error("Dead-lettered a %s message after %d attempt(s): %s", stage, attempts, error)
            return True
        except LlmidError as err:
            CTX.reset_store(target)
            log.error("Cannot record a dead letter in %s: %s", target, err)
    return False


def run_stage(task: Task, stage: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Run one message; then tell the consumer which queue to take the next one from (app.ChainCycle)."""
    CTX.prefer = None
    try:
        _run_stage(task, stage, args, kwargs)
    finally:
        chain.prefer(QUEUES.get(CTX.prefer or ""))


def _run_stage(task: Task, stage: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    payload = args[0] if len(args) == 1 else {"args": list(args)}
    failures = int(kwargs.get("failures", 0) or 0)
    waits = int(kwargs.get("waits", 0) or 0)
    try:
        check(stage, payload)
        extra = sorted(set(kwargs) - {"failures", "waits"})
        if extra:
            raise Malformed(f"The {stage} message has unexpected options {extra}.")
    except Malformed as err:
        _dead(task, stage, payload, str(err), failures + 1)
        return
    try:
        try:
            follow = STAGES[stage](CTX, payload)
        except UnknownRun:  # maybe our connection is to a store file since replaced: look once more, afresh
            CTX.reset_store(payload["store"])
            follow = STAGES[stage](CTX, payload)
    except UnknownRun as err:
        log.info("Dropped a %s message: %s", stage, err)
        return
    except NotYet as err:
        if waits >= MAX_WAITS:
            if _dead(task, stage, payload, f"Its predecessor never committed ({err})", failures + 1):
                publish(give_up(CTX, stage, payload))
            return
        _again(stage, payload, failures, waits + 1, min(0.25 * 1.5 ** waits, 3.0))
        return
    except Malformed as err:
        _dead(task, stage, payload, str(err), failures + 1)
        return
    except StoreError as err:
        CTX.reset_store(payload["store"])
        if failures < worker_settings().broker_retries:
            log.warning("Store error on a %s message (attempt %d, retrying): %s", stage, failures + 1, err)
            _again(stage, payload, failures + 1, waits, _backoff(failures))
            return
        if _dead(task, stage, payload, str(err), failures + 1):
            publish(give_up(CTX, stage, payload))
        else:  # the store is still away: keep the message rather than lose it
            _again(stage, payload, failures, waits, 60.0)
        return
    except Exception as err:  # noqa: BLE001 - a bug or odd input: retry, then dead-letter, never lose the run
        log.exception("A %s message failed (attempt %d)", stage, failures + 1)
        if failures < OTHER_RETRIES:
            _again(stage, payload, failures + 1, waits, _backoff(failures))
            return
        if _dead(task, stage, payload, f"{type(err).__name__}: {err}", failures + 1):
            try:
                publish(give_up(CTX, stage, payload))
            except LlmidError as give_err:
                log.error("Could not move the run past the failed %s message: %s", stage, give_err)
        return
    publish(follow)


_OPTIONS: dict[str, Any] = {"bind": True, "acks_late": True, "reject_on_worker_lost": True, "ignore_result": True,
                            "typing": False}


@app.task(name=task_name(STRUCTURE), queue=QUEUES[STRUCTURE], **_OPTIONS)
def structure_task(self: Task, *args: Any, **kwargs: Any) -> None:
    """Parse, template and window one chunk of input."""
    run_stage(self, STRUCTURE, args, kwargs)


@app.task(name=task_name(REASON), queue=QUEUES[REASON], **_OPTIONS)
def reason_task(self: Task, *args: Any, **kwargs: Any) -> None:
    """Score closed windows against the run's history."""
    run_stage(self, REASON, args, kwargs)


@app.task(name=task_name(PLAN), queue=QUEUES[PLAN], **_OPTIONS)
def plan_task(self: Task, *args: Any, **kwargs: Any) -> None:
    """Recommend, and write the windows' final documents."""
    run_stage(self, PLAN, args, kwargs)


@app.task(name=task_name(KICK), queue=QUEUES[KICK], **_OPTIONS)
def kick_task(self: Task, *args: Any, **kwargs: Any) -> None:
    """Re-send what a stalled run waits for."""
    run_stage(self, KICK, args, kwargs)
