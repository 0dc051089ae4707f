"""The simulator as a recovery environment: `reset()` shows the incident, `step(action, target)` acts on it.

This is the environment of the recovery planner (actor-critic with Beta confidence). One episode is one
simulated incident (`generate(seed, ...)`): the observation starts with the incident log, and each step applies
one action of `documents.ACTIONS` to one target until the fault is fixed, a human takes over, or the step budget
runs out.

    env = RecoveryEnv(seed=7)
    obs = env.reset()                      # obs.lines: the incident log so far; obs.targets: what can be acted on
    res = env.step("failover_database", "metadata-db")
    res.reward, res.done, res.info["outcome"]   # e.g. 0.93, True, "fixed"

Rules (all numbers are module constants):

- Every action takes `ACTION_MINUTES[action]` minutes; the fault goes on meanwhile (more symptom lines) and the
  step costs `minutes / 60` (impact-hours).
- The fault's own action on an accepted target (the truth's `accepted_targets`) fixes it: `+FIX_REWARD`, done.
- Any other action is wrong. A wrong action on a healthy target has a side effect (a restarted healthy service
  drops requests, a drained node loses capacity, a needless failover risks split brain, ...), costing
  `SIDE_EFFECT[action]` and listed in `info["side_effects"]`. Some wrong actions bring temporary relief
  (`RELIEF`: e.g. restarting a job that is running out of memory) that hides the symptoms for a while, without
  fixing anything.
- `escalate_to_human` always ends the episode: a human needs `ESCALATION_MINUTES`; if escalation is the fault's
  correct action (a config typo no action can fix) that counts as fixed (`FIX_REWARD`), otherwise the human
  fixes it later and the episode gets `ESCALATION_CREDIT`.
- After `max_steps` steps without a fix the episode ends as if escalated, with `truncated=True`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random
from typing import Any

from llmid.documents import ACTIONS
from llmid.sim.emit import render
from llmid.sim.faults import FAULTS, split_phrasings
from llmid.sim.phrases import fill
from llmid.sim.scenario import Scenario, generate
from llmid.sim.topology import SERVICES, all_hosts, blast_radius

ACTION_MINUTES: dict[str, float] = {
    "restart_service": 3.0,
    "rollback_deploy": 6.0,
    "scale_out": 5.0,
    "drain_node": 10.0,
    "free_disk": 4.0,
    "renew_certificate": 4.0,
    "raise_memory_limit": 5.0,
    "failover_database": 4.0,
    "restart_job_from_checkpoint": 8.0,
    "escalate_to_human": 0.0,
}
"""How long an action takes (minutes of continued impact)."""
SIDE_EFFECT: dict[str, float] = {
    "restart_service": 0.1,
    "rollback_deploy": 0.1,
    "scale_out": 0.05,
    "drain_node": 0.3,
    "free_disk": 0.2,
    "renew_certificate": 0.0,
    "raise_memory_limit": 0.05,
    "failover_database": 0.5,
    "restart_job_from_checkpoint": 0.15,
    "escalate_to_human": 0.0,
}
"""Penalty of a wrong action on a healthy target (what it breaks or costs besides time)."""
SIDE_EFFECT_TEXT: dict[str, str] = {
    "restart_service": "restarted healthy {target}: in-flight requests dropped",
    "rollback_deploy": "rolled back {target} without cause: recent fixes reverted",
    "scale_out": "scaled out {target}: extra capacity billed",
    "drain_node": "drained {target}: its jobs were evicted and capacity lost",
    "free_disk": "freed disk on {target}: caches deleted and rebuilt",
    "raise_memory_limit": "raised the memory limit of {target}: fewer jobs fit per node",
    "failover_database": "failed over a healthy database ({target}): writes paused, split-brain risk",
    "restart_job_from_checkpoint": "restarted {target} from checkpoint: progress since it was lost",
}
RELIEF: dict[tuple[str, str], float] = {
    ("trainer_oom", "restart_job_from_checkpoint"): 10.0,
    ("cache_overload", "restart_service"): 4.0,
    ("serving_memory_leak", "raise_memory_limit"): 15.0,
}
"""(fault, wrong action) → minutes of relief: symptoms pause, then return (nothing is fixed)."""
FIX_REWARD = 1.0
ESCALATION_MINUTES = 30.0
ESCALATION_CREDIT = 0.5
MAX_STEPS = 5


@dataclass(slots=True)
class Observation:
    """What the planner sees after reset or a step."""

    step: int
    minutes: float
    """Minutes since the fault started."""
    lines: list[str]
    """Log lines written since the last observation (the whole incident log on reset)."""
    symptomatic: list[str]
    """Services still logging symptoms (empty once fixed or while relieved)."""
    targets: list[str]
    """Everything an action can name: services, hosts, and the jobs and volumes the incident involves."""
    resolved: bool = False
    escalated: bool = False


@dataclass(slots=True)
class StepResult:
    observation: Observation
    reward: float
    done: bool
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class RecoveryEnv:
    """One simulated incident as an episodic environment over `ACTIONS` × `targets`."""

    def __init__(self, seed: int, *, fault_type: str | None = None, phrasings: str = "all",
                 max_steps: int = MAX_STEPS, **scenario_kwargs: Any) -> None:
        self.seed = seed
        self.fault_type = fault_type
        self.phrasings = phrasings
        self.max_steps = max_steps
        self.scenario_kwargs = scenario_kwargs
        self.scenario: Scenario | None = None
        self._rng = Random(f"llmid-env:{seed}")
        self._reset_state()

    def _reset_state(self) -> None:
        self.steps = 0
        self.minutes = 0.0
        self.resolved = False
        self.escalated = False
        self.done = False
        self.relief_until = -1.0
        self.history: list[dict[str, Any]] = []
        self._t = 0.0

    # -- the interface ---------------------------------------------------------------------------------------
    def reset(self) -> Observation:
        """Generate the incident (deterministic per seed) and return its whole log as the first observation."""
        self._rng = Random(f"llmid-env:{self.seed}")
        self._reset_state()
        self.scenario = generate(self.seed, fault_type=self.fault_type, phrasings=self.phrasings,
                                 **self.scenario_kwargs)
        self._t = self.scenario.records[-1].ts if self.scenario.records else 0.0
        t = self.scenario.truth
        self.minutes = (self._t - _epoch(t["fault_start"])) / 60.0
        return self._observe(list(self.scenario.lines))

    @property
    def truth(self) -> dict[str, Any]:
        if self.scenario is None:
            raise RuntimeError("call reset() first")
        return self.scenario.truth

    def targets(self) -> list[str]:
        """Valid targets: every service, every host, and the jobs/volumes named by this incident's fault."""
        t = self.truth
        names = {s for s in SERVICES if s != "host"} | set(all_hosts()) | {t["target"]}
        return sorted(names)

    def actions(self) -> list[tuple[str, str]]:
        """Every (action, target) pair; escalate_to_human takes no real target (its target is ignored)."""
        tg = self.targets()
        return [(a, x) for a in ACTIONS if a != "escalate_to_human" for x in tg] + [("escalate_to_human", "-")]

    def step(self, action: str, target: str | None) -> StepResult:
        """Apply `action` to `target`; see the module docstring for the rules."""
        if self.scenario is None:
            raise RuntimeError("call reset() before step()")
        if self.done:
            raise RuntimeError("episode is over; call reset()")
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
        truth = self.truth
        fault = FAULTS[truth["fault_type"]]
        target = (target or "").strip()
        self.steps += 1
        info: dict[str, Any] = {"action": action, "target": target, "side_effects": []}
        lines = [self._audit(f"action {action} on {target or '-'} requested (step {self.steps})")]
        reward = 0.0
        truncated = False
        if action == "escalate_to_human":
            self.escalated = self.done = True
            self.minutes += ESCALATION_MINUTES
            reward -= ESCALATION_MINUTES / 60.0
            if fault.action == "escalate_to_human":
                self.resolved = True
                reward += FIX_REWARD
                info["outcome"] = "fixed"
            else:
                reward += ESCALATION_CREDIT
                info["outcome"] = "escalated"
            lines.append(self._audit("incident handed to the on-call engineer"))
        else:
            minutes = ACTION_MINUTES[action]
            reward -= minutes / 60.0
            fixed = action == fault.action and target in truth["accepted_targets"]
            if fixed:
                lines += self._symptoms(minutes * 0.5)
                self.minutes += minutes
                self.resolved = self.done = True
                reward += FIX_REWARD
                info["outcome"] = "fixed"
                lines.append(self._audit(f"{truth['root_cause_service']} healthy again; error rates back to "
                                         "baseline"))
            else:
                relief = RELIEF.get((fault.name, action), 0.0) if target in truth["accepted_targets"] or \
                    target == truth["root_cause_service"] else 0.0
                lines += self._symptoms(minutes)
                self.minutes += minutes
                if relief > 0:
                    self.relief_until = self.minutes + relief
                    info["outcome"] = "relieved"
                else:
                    info["outcome"] = "no_effect"
                if target and not self._affected(target):
                    effect = SIDE_EFFECT_TEXT.get(action, "").format(target=target)
                    reward -= SIDE_EFFECT[action]
                    if effect:
                        info["side_effects"].append(effect)
                        lines.append(self._audit(effect, level="WARN"))
            if not self.done and self.steps >= self.max_steps:
                self.done = self.escalated = truncated = True
                self.minutes += ESCALATION_MINUTES
                reward += ESCALATION_CREDIT - ESCALATION_MINUTES / 60.0
                info["outcome"] = "out_of_steps"
        self.history.append({"action": action, "target": target, "outcome": info["outcome"],
                             "reward": round(reward, 6)})
        info["minutes"] = round(self.minutes, 3)
        return StepResult(self._observe(lines), reward, self.done, truncated, info)

    # -- internals -------------------------------------------------------------------------------------------
    def _observe(self, lines: list[str]) -> Observation:
        truth = self.truth
        symptomatic: list[str] = []
        if not self.resolved and self.minutes >= self.relief_until:
            symptomatic = sorted({truth["root_cause_service"], *truth["chain_services"]})
        return Observation(self.steps, round(self.minutes, 3), lines, symptomatic, self.targets(),
                           self.resolved, self.escalated)

    def _affected(self, target: str) -> bool:
        """Is the target part of the fault (its service, host, accepted targets, or a service it spreads to)?"""
        t = self.truth
        hit = {t["root_cause_service"], t["root_cause_host"], *t["accepted_targets"], *t["chain_services"]}
        hit |= set(blast_radius(t["root_cause_service"])) if t["root_cause_service"] in SERVICES else set()
        return target in hit

    def _audit(self, text: str, level: str = "INFO") -> str:
        self._t += 1.0
        return render("iso", self._t, level, "llmid-ops", "ops", text)[0]

    def _symptoms(self, minutes: float) -> list[str]:
        """Symptom lines the fault keeps writing for `minutes` (none while relieved)."""
        if self.minutes < self.relief_until:
            self._t += minutes * 60.0
            return []
        fault = FAULTS[self.truth["fault_type"]]
        rng = self._rng
        out: list[str] = []
        end = self._t + minutes * 60.0
        params: dict[str, object] = {n: g(rng) for n, g in sorted(fault.params.items())}
        params["host"] = self.truth["root_cause_host"]
        t = self._t
        while True:
            t += rng.expovariate(sum(s.rate for s in fault.symptoms))
            if t >= end:
                break
            sym = rng.choices(fault.symptoms, [s.rate for s in fault.symptoms])[0]
            svc = SERVICES[sym.service]
            host = params["host"] if sym.host == "origin" else rng.choice(svc.hosts or all_hosts())
            msg = fill(rng.choice(split_phrasings(sym.phrasings, self.phrasings)), rng, params)
            out += render(sym.fmt or svc.fmt, t, sym.level, sym.service, str(host), msg,
                          program=sym.program or svc.program or sym.service, pid=4242, logger=svc.logger)
        self._t = end
        return out


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


__all__ = ["ACTION_MINUTES", "Observation", "RecoveryEnv", "StepResult"]
