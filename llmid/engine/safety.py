"""What may be recommended or executed, and why not: the safety gate between planner and operator.

The gate only *labels* recommendations (`allowed`, `needs_approval`, `blocked`, with reasons in plain
sentences); nothing is ever executed here (executors are hooks in `plugin/executors.py`, off by default). The
baseline policy: escalate_to_human is always allowed; every other action below the confidence floor is blocked;
disruptive actions need approval. A policy file (`SafetyPolicy.load`, TOML or JSON) sets every knob:

```toml
confidence_floor = 0.5                 # below it only escalate_to_human is allowed
approval_floor = 0.9                   # below it (and above the floor) an action needs an operator's approval
approval_on = "mean"                   # or "low": the lower end of the 90% interval must reach approval_floor
disruptive = ["drain_node", "failover_database", "rollback_deploy"]   # always need approval

[allowed_actions]                      # per service/host allow-list; a target not listed allows every action
metadata-db = ["failover_database", "escalate_to_human"]

[blast_radius]                         # distinct targets per action per hour; beyond it: blocked
drain_node = 2                         # never drain more than 2 nodes an hour
restart_service = 3

[max_per_hour]                         # the same action on the same target per hour; beyond it: needs approval
restart_service = 6

[[maintenance_windows]]                # automation held (needs approval) inside these
daily = "02:00-04:00"                  # UTC, every day; or start/end as ISO-8601 times
targets = ["metadata-db"]              # omitted = all targets

[executor]                             # what runs an approved action (only with execution switched on)
command = ["/usr/local/bin/remediate", "{action}", "{target}"]   # or: webhook = "https://..."

[evidence]                             # what the incident itself shows about the target (rules need the incident)
off_chain = "needs_approval"           # target named by no fault-chain event: allowed | needs_approval | blocked
healthy = "needs_approval"             # target named by no incident line at WARN or worse
host_actions = ["drain_node"]          # node actions: the target must be a host of an incident event ...
not_host = "blocked"                   # ... else this verdict
weak = "needs_approval"                # target's best root-cause score below min_score
min_score = 0.0                        # 0 = off
```

**Evidence rules** (generic: they read only the incident, never a service name or wording). A recovery action
should act on something the incident implicates. `IncidentContext` lists what that is: the service and host of
every event on the fault chain, and the identifiers (job ids, pod and volume names, ...) in the parameters of
those events' lines. An action whose target is none of them, e.g. a host that only logged a benign one-off which
the reasoner ranked high, gets the `off_chain` verdict (default: an operator approves it); `min_score` holds an
action whose target's strongest chain event has a root-cause score below it; `healthy` is for a target that no
line of the incident names at WARN or worse (a line without a level counts as WARN): nothing shows it is
unhealthy, so restarting, draining or scaling it would only disturb it; `host_actions` (default drain_node) act
on a node, so their target must be a host some incident event comes from (a job id or a service is no node:
`not_host`, default blocked). The rules apply only where the
incident is known (`assess(..., context=...)`, as the pipeline does); a later re-check without it (`llmid execute`)
keeps the stricter of its own verdict and the one stored at analysis time. Alternatives are labelled as well.
"""

from __future__ import annotations

import json
import time
import tomllib
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmid.config import Settings
from llmid.documents import ACTIONS, Incident, LogRecord, Recommendation
from llmid.engine.graph import normalize_level
from llmid.errors import ConfigError

SAFE_ACTION = "escalate_to_human"
DISRUPTIVE_ACTIONS: frozenset[str] = frozenset({"drain_node", "failover_database", "rollback_deploy"})
_VERDICT_ORDER = {"allowed": 0, "needs_approval": 1, "blocked": 2}
VERDICTS = tuple(_VERDICT_ORDER)


def stricter(a: str, b: str) -> str:
    """The stricter of two verdicts."""
    return a if _VERDICT_ORDER.get(a, 2) >= _VERDICT_ORDER.get(b, 2) else b


@dataclass(slots=True)
class IncidentContext:
    """What the gate knows of the incident a recommendation is for: the names its fault chain implicates."""

    incident_id: str | None = None
    implicated: dict[str, float] = field(default_factory=dict)
    """Service, host or identifier → the highest root-cause score of a fault-chain event naming it."""
    severity: dict[str, int] = field(default_factory=dict)
    """Service, host or identifier → the worst level (`SEVERITY` rank) of any incident line naming it."""
    places: list[tuple[str, str]] = field(default_factory=list)
    """(service, host) of every incident event: two names of the same place (acting on either is one choice)."""
    hosts: list[str] = field(default_factory=list)
    """Every host an incident event comes from (what a node action such as drain_node can name)."""

    def same_place(self, a: str, b: str) -> bool:
        return a == b or (a, b) in self.places or (b, a) in self.places

    @classmethod
    def of(cls, incident: Incident, records: list[LogRecord] | tuple[LogRecord, ...] | None = None) -> IncidentContext:
        """From the incident (and its window's records, whose parameters name jobs, pods, volumes ...)."""
        from llmid.engine.planner_features import identifiers

        by_line = {r.line_id: r for r in records or ()}
        implicated: dict[str, float] = {}
        severity: dict[str, int] = {}
        places: list[tuple[str, str]] = []
        on_chain = {id(e) for e in incident.chain}
        for e in [*incident.chain, *(e for e in incident.ranking if id(e) not in on_chain)]:
            names = {(n, level_rank(e.level)) for n in (e.service, e.host) if n}
            for ln in e.lines:
                if ln in by_line:
                    rank = level_rank(by_line[ln].level or e.level)
                    names |= {(n, rank) for n in identifiers(by_line[ln])}
            for n, rank in names:
                severity[n] = max(severity.get(n, 0), rank)
                if id(e) in on_chain:
                    implicated[n] = max(implicated.get(n, 0.0), float(e.score))
            if e.service and e.host and (e.service, e.host) not in places:
                places.append((e.service, e.host))
        hosts = sorted({e.host for e in [*incident.chain, *incident.ranking] if e.host})
        return cls(incident.incident_id, implicated, severity, places, hosts)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> IncidentContext:
        """From `to_doc()`, or from an `llmid-incidents` document (services and hosts of its events only)."""
        if "implicated" in doc:
            return cls(doc.get("incident_id"), {str(k): float(v) for k, v in doc["implicated"].items()},
                       {str(k): int(v) for k, v in (doc.get("severity") or {}).items()},
                       [(str(a), str(b)) for a, b in doc.get("places") or []], [str(h) for h in doc.get("hosts") or []])
        implicated: dict[str, float] = {}
        severity: dict[str, int] = {}
        places: list[tuple[str, str]] = []
        hosts: set[str] = set()
        for where in ("chain", "ranking"):
            for e in doc.get(where) or []:
                svc, host = (e.get("service") or {}).get("name"), (e.get("host") or {}).get("name")
                if host:
                    hosts.add(host)
                for n in (svc, host):
                    if n:
                        if where == "chain":
                            implicated[n] = max(implicated.get(n, 0.0), float(e.get("score") or 0.0))
                        severity[n] = max(severity.get(n, 0), level_rank((e.get("log") or {}).get("level")))
                if svc and host and (svc, host) not in places:
                    places.append((svc, host))
        return cls(doc.get("incident_id"), implicated, severity, places, sorted(hosts))

    def to_doc(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "implicated": dict(sorted(self.implicated.items())),
                "severity": dict(sorted(self.severity.items())), "places": [list(p) for p in self.places],
                "hosts": list(self.hosts)}


SEVERITY: dict[str, int] = {"TRACE": 0, "DEBUG": 0, "INFO": 1, "NOTICE": 1, "WARN": 2, "ERROR": 3, "FATAL": 4}
"""Canonical level (`engine.graph.normalize_level`, which knows the many spellings) → the gate's rank."""


def level_rank(level: str | None) -> int:
    """The gate's rank of a raw level; an unknown or missing level ranks as WARN (no level is no proof of health)."""
    norm = normalize_level(level)
    return SEVERITY[norm] if norm is not None else SEVERITY["WARN"]


@dataclass(slots=True)
class MaintenanceWindow:
    """A period (epoch seconds) during which automated actions on the listed targets are held for approval."""

    start: float
    end: float
    targets: list[str] | None = None
    """Services or hosts it covers; None = all."""
    daily: tuple[int, int] | None = None
    """Minutes after midnight UTC (from, to) when the window repeats every day; start/end are then ignored."""

    def covers(self, target: str | None, now: float) -> bool:
        if self.daily is not None:
            t = datetime.fromtimestamp(now, UTC)
            m = t.hour * 60 + t.minute
            lo, hi = self.daily
            in_time = lo <= m < hi if lo <= hi else (m >= lo or m < hi)
        else:
            in_time = self.start <= now < self.end
        return in_time and (self.targets is None or (target is not None and target in self.targets))

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> MaintenanceWindow:
        """{"daily": "HH:MM-HH:MM"} or {"start": ISO|epoch, "end": ISO|epoch}, with optional "targets"."""
        targets = list(d["targets"]) if d.get("targets") is not None else None
        if "daily" in d:
            try:
                a, b = (x.strip() for x in str(d["daily"]).split("-"))
                lo = int(a.split(":")[0]) * 60 + int(a.split(":")[1])
                hi = int(b.split(":")[0]) * 60 + int(b.split(":")[1])
            except (ValueError, IndexError):
                raise ConfigError(f"Maintenance window daily = {d['daily']!r} is not 'HH:MM-HH:MM'.") from None
            return cls(0.0, 0.0, targets, (lo, hi))
        if "start" not in d or "end" not in d:
            raise ConfigError("A maintenance window needs daily = 'HH:MM-HH:MM' or both start and end.")
        return cls(_when(d["start"]), _when(d["end"]), targets)


def _when(v: Any) -> float:
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).timestamp()
    try:
        t = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{v!r} is not an ISO-8601 time.") from None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


@dataclass(slots=True)
class SafetyPolicy:
    """The knobs of the gate; defaults are the baseline policy."""

    confidence_floor: float = 0.3
    approval_floor: float = 0.0
    """Below this confidence (and at or above the floor) an action is not run unattended: it needs approval."""
    ambiguity: float = 0.0
    """Hold (needs approval) an action when the planner also proposes the same action on another target with at
    least this confidence: it is unsure where to act (0 = rule off)."""
    approval_on: str = "mean"
    """What must reach `approval_floor` to run unattended: the confidence "mean", or "low", the lower end of its
    90% interval (an uncertain estimate, few pseudo-counts, is then held even when its mean is high)."""
    disruptive: frozenset[str] = DISRUPTIVE_ACTIONS
    allowed_actions: dict[str, list[str]] = field(default_factory=dict)
    """Per target (service or host): the only actions allowed on it. A target not listed allows all actions."""
    max_per_hour: dict[str, int] = field(default_factory=lambda: {"restart_service": 6, "drain_node": 2})
    """Rate limits per action and target over the last hour; beyond them an action needs approval."""
    maintenance_windows: list[MaintenanceWindow] = field(default_factory=list)
    blast_radius: dict[str, int] = field(default_factory=dict)
    """Most distinct targets an action may hit in an hour (e.g. drain_node: 2 nodes); beyond it: blocked."""
    executor: dict[str, Any] = field(default_factory=dict)
    """Hook that runs approved actions: {"webhook": URL} or {"command": [argv with {action} {target}]}."""
    off_chain: str = "needs_approval"
    """Verdict for an action whose target no fault-chain event names (needs the incident; see the module doc)."""
    weak: str = "needs_approval"
    """Verdict for an action whose target's strongest chain event scores below `min_score`."""
    min_score: float = 0.0
    """Root-cause score the target's strongest chain event must reach (0 = rule off)."""
    healthy: str = "needs_approval"
    """Verdict for an action on a target no incident line names at WARN or worse (it shows no trouble)."""
    host_actions: frozenset[str] = frozenset({"drain_node"})
    """Actions on a node: their target must be a host the incident shows (an event's host), else `not_host`."""
    not_host: str = "blocked"
    source: str | None = None
    """The policy file it was read from (None = built-in)."""

    KEYS = frozenset({"confidence_floor", "approval_floor", "approval_on", "ambiguity", "disruptive", "allowed_actions",
                      "max_per_hour", "maintenance_windows", "blast_radius", "executor", "evidence"})
    EVIDENCE_KEYS = frozenset({"off_chain", "weak", "min_score", "healthy", "host_actions", "not_host"})

    @classmethod
    def load(cls, path: str | Path, confidence_floor: float | None = None) -> SafetyPolicy:
        """Read a TOML (`.toml`) or JSON policy file; unknown keys or actions are errors, not silently ignored."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
            doc = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
        except OSError as e:
            raise ConfigError(f"Cannot read the safety policy {p}: {e.strerror or e}.") from None
        except (ValueError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"The safety policy {p} is not valid {p.suffix.lstrip('.') or 'TOML'}: {e}.") from None
        return cls.from_doc(doc, source=str(p), confidence_floor=confidence_floor)

    @classmethod
    def from_doc(cls, doc: dict[str, Any], source: str | None = None,
                 confidence_floor: float | None = None) -> SafetyPolicy:
        unknown = set(doc) - cls.KEYS
        if unknown:
            raise ConfigError(f"Unknown safety policy key(s): {', '.join(sorted(unknown))}.")
        pol = cls(source=source)
        if confidence_floor is not None:
            pol.confidence_floor = float(confidence_floor)
        if "confidence_floor" in doc:
            pol.confidence_floor = float(doc["confidence_floor"])
        pol.approval_floor = float(doc.get("approval_floor", 0.0))
        for name in ("confidence_floor", "approval_floor"):
            if not 0.0 <= getattr(pol, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(pol, name)}.")
        pol.ambiguity = float(doc.get("ambiguity", 0.0))
        if not 0.0 <= pol.ambiguity <= 1.0:
            raise ConfigError(f"ambiguity must be in [0, 1], got {pol.ambiguity}.")
        pol.approval_on = str(doc.get("approval_on", "mean"))
        if pol.approval_on not in ("mean", "low"):
            raise ConfigError(f"approval_on must be 'mean' or 'low', got {pol.approval_on!r}.")

        def actions(xs: Any, where: str) -> list[str]:
            bad = [a for a in xs if a not in ACTIONS]
            if bad:
                raise ConfigError(f"Unknown action(s) in {where}: {', '.join(map(str, bad))}.")
            return list(xs)

        if "disruptive" in doc:
            pol.disruptive = frozenset(actions(doc["disruptive"], "disruptive"))
        pol.allowed_actions = {str(t): actions(v, f"allowed_actions.{t}")
                               for t, v in (doc.get("allowed_actions") or {}).items()}
        if "max_per_hour" in doc:
            actions(doc["max_per_hour"], "max_per_hour")
            pol.max_per_hour = {a: int(n) for a, n in doc["max_per_hour"].items()}
        actions(doc.get("blast_radius") or {}, "blast_radius")
        pol.blast_radius = {a: int(n) for a, n in (doc.get("blast_radius") or {}).items()}
        pol.maintenance_windows = [MaintenanceWindow.from_doc(w) for w in doc.get("maintenance_windows") or []]
        ex = dict(doc.get("executor") or {})
        if ex and not ({"webhook", "command"} & set(ex)):
            raise ConfigError("executor needs webhook = URL or command = [argv].")
        pol.executor = ex
        ev = dict(doc.get("evidence") or {})
        bad = set(ev) - cls.EVIDENCE_KEYS
        if bad:
            raise ConfigError(f"Unknown evidence key(s): {', '.join(sorted(bad))}; use off_chain, weak, min_score, "
                              "healthy, host_actions, not_host.")
        if "host_actions" in ev:
            pol.host_actions = frozenset(actions(ev["host_actions"], "evidence.host_actions"))
        for name in ("off_chain", "weak", "healthy", "not_host"):
            if name in ev:
                if ev[name] not in VERDICTS:
                    raise ConfigError(f"evidence.{name} must be one of {', '.join(VERDICTS)}, got {ev[name]!r}.")
                setattr(pol, name, str(ev[name]))
        pol.min_score = float(ev.get("min_score", 0.0))
        if not 0.0 <= pol.min_score <= 1.0:
            raise ConfigError(f"evidence.min_score must be in [0, 1], got {pol.min_score}.")
        return pol


class SafetyGate:
    """Labels a Recommendation with a verdict and reasons; keeps a record of executions for rate limits."""

    def __init__(self, policy: SafetyPolicy | None = None) -> None:
        self.policy = policy or SafetyPolicy()
        self._executed: dict[tuple[str, str | None], deque[float]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> SafetyGate:
        """The policy file of `settings.safety_policy` when set (its floor wins), else the baseline policy."""
        path = getattr(settings, "safety_policy", None)
        if path:
            return cls(SafetyPolicy.load(path, confidence_floor=settings.confidence_floor))
        return cls(SafetyPolicy(confidence_floor=settings.confidence_floor))

    def _targets_hit(self, action: str, now: float) -> set[str | None]:
        """Distinct targets `action` ran on in the last hour (the blast radius used so far)."""
        return {t for (a, t) in list(self._executed) if a == action and self._recent(a, t, now) > 0}

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

    def assess(self, rec: Recommendation, now: float | None = None,
               context: IncidentContext | None = None) -> Recommendation:
        """A copy of `rec` with `safety_verdict` and `safety_reasons` set (the strictest rule wins), and every
        alternative labelled the same way (`alternatives[i]["safety"]`). `context`: the incident it is for (the
        evidence rules apply only with it)."""
        now = time.time() if now is None else now
        offered = [(rec.action, rec.target, rec.confidence.mean)] + [
            (str(a.get("action")), a.get("target"), float((a.get("confidence") or {}).get("mean", 0.0)))
            for a in rec.alternatives]
        verdict, reasons = self.verdict(rec.action, rec.target, rec.confidence.mean, now, context,
                                        low=rec.confidence.low, offered=offered)
        alternatives = []
        for alt in rec.alternatives:
            conf = alt.get("confidence") or {}
            v, r = self.verdict(str(alt.get("action")), alt.get("target"), float(conf.get("mean", 0.0)), now, context,
                                low=float(conf.get("low", conf.get("mean", 0.0))), offered=offered)
            alternatives.append({**alt, "safety": {"verdict": v, "reasons": r}})
        return replace(rec, safety_verdict=verdict, safety_reasons=reasons, alternatives=alternatives)

    def verdict(self, action: str, target: str | None, mean: float, now: float | None = None,
                context: IncidentContext | None = None, low: float | None = None,
                offered: list[tuple[str, str | None, float]] | None = None) -> tuple[str, list[str]]:
        """The verdict and reasons for one (action, target) at confidence `mean` (`low`: the lower end of its
        90% interval, used for running unattended when the policy says `approval_on = "low"`; `offered`: every
        (action, target, mean) the planner proposed for the incident, for the ambiguity rule)."""
        now = time.time() if now is None else now
        p = self.policy
        if action == SAFE_ACTION:
            return "allowed", ["Escalating to a human is always allowed."]
        verdict = "allowed"
        reasons: list[str] = []

        def worsen(v: str, reason: str) -> None:
            nonlocal verdict
            if _VERDICT_ORDER[v] > _VERDICT_ORDER[verdict]:
                verdict = v
            reasons.append(reason)

        if action not in ACTIONS:
            worsen("blocked", f"'{action}' is not a known recovery action.")
        if mean < p.confidence_floor:
            worsen(
                "blocked",
                f"Confidence {mean:.2f} is below the floor {p.confidence_floor:.2f}; only escalation is allowed.",
            )
        elif mean < p.approval_floor:
            worsen("needs_approval", f"Confidence {mean:.2f} is below {p.approval_floor:.2f}, the level for running "
                                     "unattended; an operator must approve it.")
        elif p.approval_on == "low" and (mean if low is None else low) < p.approval_floor:
            worsen("needs_approval", f"The 90% interval of the confidence reaches down to {low:.2f}, below "
                                     f"{p.approval_floor:.2f}, the level for running unattended; an operator must "
                                     "approve it.")
        if target is not None and target in p.allowed_actions and action not in p.allowed_actions[target]:
            worsen("blocked", f"'{action}' is not on the allow-list for {target}.")
        if action in p.disruptive:
            worsen("needs_approval", f"'{action}' is disruptive and needs an operator's approval.")
        radius = p.blast_radius.get(action)
        if radius is not None:
            hit = self._targets_hit(action, now)
            if target not in hit and len(hit) >= radius:
                worsen("blocked", f"'{action}' already hit {len(hit)} distinct targets in the last hour; the blast "
                                  f"radius allows {radius}.")
        limit = p.max_per_hour.get(action)
        if limit is not None and self._recent(action, target, now) >= limit:
            worsen("needs_approval", f"'{action}' already ran {limit} times on {target} in the last hour.")
        for mw in p.maintenance_windows:
            if mw.covers(target, now):
                worsen("needs_approval", f"{target or 'The target'} is in a maintenance window; automation is held.")
                break
        if context is not None and target:
            score = context.implicated.get(target)
            if score is None:
                if p.off_chain != "allowed":
                    worsen(p.off_chain, f"No event of the incident's fault chain names {target} (its service, host "
                                        "or parameters): the incident does not implicate it.")
            elif score < p.min_score and p.weak != "allowed":
                worsen(p.weak, f"The strongest fault-chain event naming {target} has root-cause score {score:.2f}, "
                               f"below {p.min_score:.2f}.")
            if action in p.host_actions and target not in context.hosts and p.not_host != "allowed":
                worsen(p.not_host, f"'{action}' acts on a node, but no event of the incident comes from a host named "
                                   f"{target}.")
            if context.severity.get(target, 0) < SEVERITY["WARN"] and p.healthy != "allowed":
                worsen(p.healthy, f"No line of the incident names {target} at WARN or worse: it shows no trouble, "
                                  "so acting on it may only disturb a healthy target.")
        if p.ambiguity > 0 and target:
            rivals = sorted({t for a, t, m in offered or () if a == action and t and m >= p.ambiguity
                             and not (context.same_place(t, target) if context is not None else t == target)})
            if rivals:
                worsen("needs_approval", f"The planner is unsure where to act: '{action}' on {', '.join(rivals)} is "
                                         f"also proposed with confidence ≥ {p.ambiguity:.2f}.")
        if not reasons:
            reasons.append(f"Confidence {mean:.2f} is at or above the floor and '{action}' is not disruptive.")
        return verdict, reasons
