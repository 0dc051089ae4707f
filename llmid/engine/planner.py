"""Recovery recommendation with a Beta confidence: the BASELINE keyword planner.

`KeywordPlanner` maps the incident's root cause and fault chain to an action of `ACTIONS` with a regex rule
table. It is the reference the learned actor-critic planner must beat, and shares its output contract
(`Planner.recommend(incident) -> list[Recommendation]`) and its confidence math (`engine.beta`).

Evidence and confidence: every rule whose pattern matches an event adds weight to its action, ROOT_WEIGHT (3.0)
for the root cause (ranking[0]) and CHAIN_WEIGHT / (1 + position) for the other chain events (later events are
more likely symptoms). For action a with evidence w_a, out of W = Σ w over all matched actions:
`alpha = 1 + w_a`, `beta = 1 + SKEPTICISM + (W - w_a) / 2` — a keyword is never proof (SKEPTICISM = 1), and
evidence for competing actions lowers the belief. mean = alpha / (alpha + beta); low/high = 90% interval.
With no match the recommendation is escalate_to_human with Beta(1, 1).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from llmid.documents import ACTIONS, Incident, LogRecord, RankedEvent, Recommendation, stable_id
from llmid.engine.beta import beta_confidence
from llmid.errors import ConfigError

if TYPE_CHECKING:
    from llmid.config import Settings

PLANNERS = ("auto", "learned", "baseline")


class Planner(Protocol):
    """What the pipeline needs from any planner (baseline or learned). `records` are the incident window's
    records (the learned planner reads target names such as a job id from their parameters); optional."""

    def recommend(self, incident: Incident, records: Sequence[LogRecord] | None = None) -> list[Recommendation]: ...


def make_planner(settings: Settings) -> Planner:
    """The planner `settings.planner` names: "auto" (learned when models/planner.onnx or `planner_model` is
    there, else the keyword baseline), "learned" or "baseline" — mirrors `make_reasoner`."""
    kind = (getattr(settings, "planner", None) or "auto").strip().lower()
    model = getattr(settings, "planner_model", None)
    if kind == "auto":
        shipped = Path(__file__).resolve().parents[1] / "models" / "planner.onnx"
        kind = "learned" if model or shipped.is_file() else "baseline"
    if kind == "baseline":
        return KeywordPlanner()
    if kind == "learned":
        from llmid.engine.planner_learned import LearnedPlanner

        try:
            return LearnedPlanner(model or None)
        except FileNotFoundError as e:
            raise ConfigError(str(e)) from None
    raise ConfigError(f"Unknown planner {settings.planner!r}: use {' or '.join(PLANNERS)}.")


@dataclass(frozen=True, slots=True)
class KeywordRule:
    """One row of the rule table: a regex over event text (template + service) → an action."""

    action: str
    pattern: re.Pattern[str]
    label: str

    def match(self, text: str) -> str | None:
        m = self.pattern.search(text)
        return m.group(0) if m else None


def _rule(action: str, pattern: str) -> KeywordRule:
    if action not in ACTIONS:
        raise ValueError(f"Unknown action {action!r}.")
    return KeywordRule(action, re.compile(pattern, re.IGNORECASE), pattern)


DEFAULT_RULES: tuple[KeywordRule, ...] = (
    _rule("raise_memory_limit", r"out of memory|\bOOM\b|OOMKilled|MemoryError|Killed process|cannot allocate memory"),
    _rule("free_disk", r"disk full|No space left|\b9[0-9]% full|quota exceeded|\bquota\b|filesystem full"),
    _rule("renew_certificate", r"certificate|\bx509\b|TLS handshake|\bexpired\b|\bSSL\b"),
    _rule("rollback_deploy", r"\bdeploy(ed|ment|ing)?\b|\brollout\b|\bversion v?\d|\bupgrad(e|ed|ing)\b"),
    _rule("failover_database", r"database|replication|\bprimary\b|deadlock|\breplica lag\b|postgres|mysql"),
    _rule(
        "restart_job_from_checkpoint",
        r"checkpoint|\bNCCL\b|CUDA error|job failed|worker lost|\btraining (job )?(crash|fail)",
    ),
    _rule(
        "drain_node",
        r"\bnode\b|hardware|\bECC\b|parity|machine check|kernel panic|\bddr\b|\bnode card\b|\bfan\b|temperature",
    ),
    _rule("scale_out", r"queue depth|latency|throttl|too many requests|\b429\b|overload|backlog|saturat"),
    _rule(
        "restart_service",
        r"connection refused|time(d)? ?out|unreachable|\b5\d\d\b|service unavailable|not responding|health ?check fail",
    ),
)
"""Rule table, most specific first; on equal evidence the earlier rule wins."""


class KeywordPlanner:
    """Regex rules over root cause and chain → one Recommendation (with alternatives). method="baseline"."""

    METHOD = "baseline"
    ROOT_WEIGHT = 3.0
    CHAIN_WEIGHT = 1.0
    SKEPTICISM = 1.0

    def __init__(self, rules: tuple[KeywordRule, ...] = DEFAULT_RULES) -> None:
        self.rules = rules

    def _evidence(self, incident: Incident) -> tuple[dict[str, float], dict[str, list[str]]]:
        """Weight per action, and the sentences saying which event and keyword gave it."""
        weight: dict[str, float] = {}
        why: dict[str, list[str]] = {}
        events: list[tuple[str, RankedEvent, float]] = [("root cause", incident.root_cause, self.ROOT_WEIGHT)]
        others = [e for e in incident.chain if e is not incident.root_cause]
        for pos, e in enumerate(others, start=1):
            events.append((f"chain event {pos}", e, self.CHAIN_WEIGHT / (1.0 + pos)))
        for where, ev, w in events:
            text = f"{ev.template} {ev.service or ''}"
            for rule in self.rules:
                hit = rule.match(text)
                if hit is None:
                    continue
                weight[rule.action] = weight.get(rule.action, 0.0) + w
                why.setdefault(rule.action, []).append(f"{where} '{ev.template}' matched '{hit}' (weight {w:.2f}).")
        return weight, why

    def _target(self, action: str, incident: Incident) -> str | None:
        """Node actions target the root cause's host; every other action its service (host if no service)."""
        rc = incident.root_cause
        if action == "drain_node":
            return rc.host or rc.service
        return rc.service or rc.host

    def recommend(self, incident: Incident, records: Sequence[LogRecord] | None = None) -> list[Recommendation]:
        """One recommendation: the best-supported action, the others (and escalation) as alternatives."""
        weight, why = self._evidence(incident)
        total = sum(weight.values())
        order = {r.action: i for i, r in enumerate(self.rules)}
        ranked = sorted(weight, key=lambda a: (-weight[a], order.get(a, len(order))))

        def conf(action: str):
            if action not in weight:
                return beta_confidence(1.0, 1.0)
            w = weight[action]
            return beta_confidence(1.0 + w, 1.0 + self.SKEPTICISM + (total - w) / 2.0)

        if ranked:
            action = ranked[0]
            rationale = list(why[action])
        else:
            action = "escalate_to_human"
            rationale = ["No rule matched the root cause or the chain; a human has to look."]
        alt_actions = ranked[1:] + (["escalate_to_human"] if action != "escalate_to_human" else [])
        alternatives: list[dict[str, Any]] = []
        for a in alt_actions:
            alternatives.append(
                {
                    "action": a,
                    "target": self._target(a, incident),
                    "confidence": conf(a).to_doc(),
                    "rationale": list(why.get(a, ["Safe fallback: a human decides."])),
                }
            )
        target = self._target(action, incident)
        rec = Recommendation(
            recommendation_id=stable_id("rec", incident.incident_id, action, target),
            incident_id=incident.incident_id,
            action=action,
            target=target,
            confidence=conf(action),
            alternatives=alternatives,
            rationale=rationale,
            method=self.METHOD,
        )
        return [rec]
