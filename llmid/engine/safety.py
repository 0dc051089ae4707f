"""What may be recommended or executed, and why not: the safety gate between planner and operator.

The gate only *labels* recommendations (`allowed`, `needs_approval`, `blocked`, with reasons in plain
sentences); nothing is ever executed here. The baseline policy: escalate_to_human is always allowed; every other
action below the confidence floor is blocked; disruptive actions need approval. `SafetyPolicy` already holds the
knobs the full policy file will set (per-service allow-lists, rate limits, maintenance windows), so reading that
file later changes only `SafetyPolicy` construction, not the gate.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace

from llmid.config import Settings
from llmid.documents import ACTIONS, Recommendation

SAFE_ACTION = "escalate_to_human"
DISRUPTIVE_ACTIONS: frozenset[str] = frozenset({"drain_node", "failover_database", "rollback_deploy"})
_VERDICT_ORDER = {"allowed": 0, "needs_approval": 1, "blocked": 2}


@dataclass(slots=True)
class MaintenanceWindow:
    """A period (epoch seconds) during which automated actions on the listed targets are held for approval."""

    start: float
    end: float
    targets: list[str] | None = None
    """Services or hosts it covers; None = all."""

    def covers(self, target: str | None, now: float) -> bool:
        in_time = self.start <= now < self.end
        return in_time and (self.targets is None or (target is not None and target in self.targets))


@dataclass(slots=True)
class SafetyPolicy:
    """The knobs of the gate; defaults are the baseline policy."""

    confidence_floor: float = 0.3
    disruptive: frozenset[str] = DISRUPTIVE_ACTIONS
    allowed_actions: dict[str, list[str]] = field(default_factory=dict)
    """Per target (service or host): the only actions allowed on it. A target not listed allows all actions."""
    max_per_hour: dict[str, int] = field(default_factory=lambda: {"restart_service": 6, "drain_node": 2})
    """Rate limits per action and target over the last hour; beyond them an action needs approval."""
    maintenance_windows: list[MaintenanceWindow] = field(default_factory=list)


class SafetyGate:
    """Labels a Recommendation with a verdict and reasons; keeps a record of executions for rate limits."""

    def __init__(self, policy: SafetyPolicy | None = None) -> None:
        self.policy = policy or SafetyPolicy()
        self._executed: dict[tuple[str, str | None], deque[float]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> SafetyGate:
        return cls(SafetyPolicy(confidence_floor=settings.confidence_floor))

    def record_execution(self, action: str, target: str | None, ts: float | None = None) -> None:
        """Remember that an action ran (called by whatever executes; the gate itself never does)."""
        self._executed.setdefault((action, target), deque()).append(time.time() if ts is None else ts)

    def _recent(self, action: str, target: str | None, now: float) -> int:
        q = self._executed.get((action, target))
        if not q:
            return 0
        while q and q[0] < now - 3600.0:
            q.popleft()
        return len(q)

    def assess(self, rec: Recommendation, now: float | None = None) -> Recommendation:
        """A copy of `rec` with `safety_verdict` and `safety_reasons` set (the strictest rule wins)."""
        now = time.time() if now is None else now
        p = self.policy
        action, target = rec.action, rec.target
        if action == SAFE_ACTION:
            return replace(
                rec,
                safety_verdict="allowed",
                safety_reasons=["Escalating to a human is always allowed."],
            )
        verdict = "allowed"
        reasons: list[str] = []

        def worsen(v: str, reason: str) -> None:
            nonlocal verdict
            if _VERDICT_ORDER[v] > _VERDICT_ORDER[verdict]:
                verdict = v
            reasons.append(reason)

        if action not in ACTIONS:
            worsen("blocked", f"'{action}' is not a known recovery action.")
        mean = rec.confidence.mean
        if mean < p.confidence_floor:
            worsen(
                "blocked",
                f"Confidence {mean:.2f} is below the floor {p.confidence_floor:.2f}; only escalation is allowed.",
            )
        if target is not None and target in p.allowed_actions and action not in p.allowed_actions[target]:
            worsen("blocked", f"'{action}' is not on the allow-list for {target}.")
        if action in p.disruptive:
            worsen("needs_approval", f"'{action}' is disruptive and needs an operator's approval.")
        limit = p.max_per_hour.get(action)
        if limit is not None and self._recent(action, target, now) >= limit:
            worsen("needs_approval", f"'{action}' already ran {limit} times on {target} in the last hour.")
        for mw in p.maintenance_windows:
            if mw.covers(target, now):
                worsen("needs_approval", f"{target or 'The target'} is in a maintenance window; automation is held.")
                break
        if not reasons:
            reasons.append(f"Confidence {mean:.2f} is at or above the floor and '{action}' is not disruptive.")
        return replace(rec, safety_verdict=verdict, safety_reasons=reasons)
