"""Executor hooks: run an approved recommendation through a webhook or a configured command, with an audit trail.

Nothing runs unless execution is switched on explicitly (`--execute`, `LLMID_EXECUTE=true` or `execute = true`
in the settings file) *and* the safety policy names an executor. Every attempt is re-checked by the safety gate
at the moment of execution (rate limits and blast radius count the executions already in the audit trail of the
last hour; the verdict is never looser than the one stored at analysis time, which saw the incident), needs the
gate's `allowed` or an operator's approval (`status = approved`) for `needs_approval`, and leaves audit entries:
the gate's decision, then `recommendation.executed`, `recommendation.execution_failed` or
`recommendation.execution_skipped` with the reason.

The hook receives the recommendation document as JSON (the webhook as a POST body, the command on stdin); the
command's argv may use `{action}`, `{target}`, `{recommendation_id}` and `{incident_id}` placeholders.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import replace
from typing import Any

from llmid.config import Settings
from llmid.documents import Confidence, Recommendation
from llmid.engine.safety import VERDICTS, SafetyGate, SafetyPolicy, stricter
from llmid.errors import ConfigError, InputError
from llmid.store.base import Store

HOOK_TIMEOUT = 60.0


def recommendation_from_doc(doc: dict[str, Any]) -> Recommendation:
    c = doc.get("confidence") or {}
    return Recommendation(
        recommendation_id=str(doc.get("recommendation_id") or doc.get("_id")), incident_id=str(doc["incident_id"]),
        action=str(doc["action"]), target=doc.get("target"),
        confidence=Confidence(**{k: float(c.get(k, 0.0)) for k in ("alpha", "beta", "mean", "low", "high")}),
        alternatives=list(doc.get("alternatives") or []), rationale=list(doc.get("rationale") or []),
        status=str(doc.get("status") or "proposed"), method=str(doc.get("method") or "baseline"))


def gate_with_history(policy: SafetyPolicy, store: Store, now: float | None = None) -> SafetyGate:
    """A gate that knows the executions of the last hour from the store's audit trail."""
    now = time.time() if now is None else now
    gate = SafetyGate(policy)
    for e in reversed(store.audit(limit=10_000)):
        if e["action"] == "recommendation.executed" and e["ts"] >= now - 3600.0:
            d = e.get("details") or {}
            gate.record_execution(str(d.get("action")), d.get("target"), float(e["ts"]))
    return gate


def run_hook(executor: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """Call the configured hook once; returns {"ok", "detail"}."""
    body = json.dumps(doc).encode("utf-8")
    timeout = float(executor.get("timeout", HOOK_TIMEOUT))
    if "webhook" in executor:
        req = urllib.request.Request(str(executor["webhook"]), data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - operator-configured URL
                return {"ok": 200 <= resp.status < 300, "detail": f"HTTP {resp.status}"}
        except (urllib.error.URLError, OSError) as e:
            return {"ok": False, "detail": f"webhook failed: {e}"}
    argv = executor.get("command")
    if isinstance(argv, str):
        argv = argv.split()
    fields = {k: str(doc.get(k) or "") for k in ("action", "target", "recommendation_id", "incident_id")}
    cmd = [str(a).format(**fields) for a in argv or []]
    if not cmd:
        return {"ok": False, "detail": "the executor command is empty"}
    try:
        p = subprocess.run(cmd, input=body, capture_output=True, timeout=timeout, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"ok": False, "detail": f"command failed: {e}"}
    out = p.stdout.decode("utf-8", "replace")[-500:]
    return {"ok": p.returncode == 0, "detail": f"exit {p.returncode}", "output": out}


def execute_recommendation(store: Store, recommendation_id: str, settings: Settings, actor: str = "cli",
                           now: float | None = None) -> dict[str, Any]:
    """Gate, then (only with execution on and an executor configured) run the hook; audit every step."""
    doc = store.get_recommendation(recommendation_id)
    if doc is None:
        raise InputError(f"No recommendation {recommendation_id!r} in the store.")
    doc = {k: v for k, v in doc.items() if not k.startswith("_")} | {"recommendation_id": recommendation_id}
    policy = (SafetyPolicy.load(settings.safety_policy, confidence_floor=settings.confidence_floor)
              if settings.safety_policy else SafetyPolicy(confidence_floor=settings.confidence_floor))
    now = time.time() if now is None else now
    rec = gate_with_history(policy, store, now).assess(recommendation_from_doc(doc), now)
    stored = doc.get("safety") or {}
    if stored.get("verdict") in VERDICTS and stored.get("reasons") and \
            stricter(stored["verdict"], rec.safety_verdict) != rec.safety_verdict:
        # The gate's verdict at analysis time saw the incident (evidence rules); a re-check never loosens it.
        rec = replace(rec, safety_verdict=stored["verdict"], safety_reasons=[*rec.safety_reasons, *stored["reasons"]])
    store.record_audit(actor, "recommendation.gate", recommendation_id,
                       {"verdict": rec.safety_verdict, "reasons": rec.safety_reasons, "action": rec.action,
                        "target": rec.target, "confidence": rec.confidence.mean})

    def skip(why: str) -> dict[str, Any]:
        store.record_audit(actor, "recommendation.execution_skipped", recommendation_id, {"reason": why})
        return {"executed": False, "verdict": rec.safety_verdict, "reason": why}

    status = doc.get("status") or "proposed"
    if status in ("rejected", "executed"):
        return skip(f"The recommendation is already {status}.")
    if rec.safety_verdict == "blocked":
        return skip("The safety gate blocks it: " + " ".join(rec.safety_reasons))
    if rec.safety_verdict == "needs_approval" and status != "approved":
        return skip("It needs an operator's approval first: " + " ".join(rec.safety_reasons))
    if not settings.execute:
        return skip("Execution is switched off (use --execute or execute = true to switch it on).")
    if not policy.executor:
        return skip("The safety policy names no executor (webhook or command).")
    result = run_hook(policy.executor, doc)
    details = {"action": rec.action, "target": rec.target, **result}
    if result["ok"]:
        store.set_recommendation_status(recommendation_id, "executed", actor, reason=result["detail"])
        store.record_audit(actor, "recommendation.executed", recommendation_id, details)
    else:
        store.record_audit(actor, "recommendation.execution_failed", recommendation_id, details)
    return {"executed": bool(result["ok"]), "verdict": rec.safety_verdict, **result}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "execute", help="run an approved recommendation through the policy's executor hook (off by default)",
        description="Check a stored recommendation against the safety gate and, only when --execute is given "
                    "(or execute = true in the settings) and the policy names an executor, run it. Every "
                    "decision and execution is written to the store's audit trail.")
    p.add_argument("recommendation_id")
    p.add_argument("--store", metavar="URL", help="result store (default sqlite:///./llmid.db)")
    p.add_argument("--safety-policy", metavar="FILE", help="safety policy file (TOML or JSON)")
    p.add_argument("--execute", action="store_true", help="really run the hook (otherwise only the gate decides)")
    p.add_argument("--config", metavar="FILE", help="TOML settings file")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_execute)


def cmd_execute(args: argparse.Namespace) -> int:
    from llmid.config import load_settings
    from llmid.store import open_store

    flags = {"store": args.store, "safety_policy": args.safety_policy, "execute": True if args.execute else None}
    settings = load_settings({k: v for k, v in flags.items() if v is not None}, args.config)
    store = open_store(settings.store)
    try:
        out = execute_recommendation(store, args.recommendation_id, settings)
    except ConfigError:
        raise
    finally:
        close = getattr(store, "close", None)
        if close:
            close()
    print(json.dumps(out))
    return 0 if out["executed"] or not settings.execute else 1


__all__ = ["execute_recommendation", "gate_with_history", "recommendation_from_doc", "run_hook"]
