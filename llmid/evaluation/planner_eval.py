"""`llmid eval planner`: recovery success, harm before/after the safety gate, and calibration, on held-out seeds.

Cases come from `planner_data` (seeds from `HELDOUT_SEED_BASE`, the held-out "test" phrasings) through the real
pipeline. Each planner gives a ranked list of (action, target, confidence); an episode tries them in order in
the scenario's `RecoveryEnv` (outcomes of every candidate were taken from the env at the incident's start; the
env's fix rule does not depend on earlier wrong steps, so this equals stepping it): it ends when the fault is
fixed, on escalation, or after `MAX_STEPS`. An incident the engine did not raise counts as a failure.

Metrics per planner: success@1 (the top recommendation fixes it), success within 3 steps, mean steps to
recovery (over fixed episodes), harmful-action rate (actions with a side effect on a healthy target, per action
taken) before the gate and after it (a blocked action is not run; the episode escalates; the gate sees the
incident's `IncidentContext`, as in the pipeline, so its evidence rules apply), success after the gate, and
the expected calibration error (10 equal-width bins) of the top recommendation's confidence mean against its
success, with a reliability diagram (PNG). Planners: learned (Beta-shaped), unshaped (κ = 0,
trained the same way), runbook (`KeywordPlanner`), random (uniform over the available candidates, Beta(1, 1)).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import numpy as np

from llmid.documents import Confidence, Recommendation
from llmid.engine.beta import beta_confidence
from llmid.engine.planner_features import JOINT, N_JOINT
from llmid.engine.safety import IncidentContext, SafetyGate, SafetyPolicy
from llmid.sim.env import MAX_STEPS

ESCALATE = N_JOINT - 1
BINS = 10


@dataclass(slots=True)
class Step:
    action: str
    target: str | None
    confidence: Confidence
    fixed: bool
    harmful: bool


@dataclass(slots=True)
class Tally:
    n: int = 0
    fixed1: int = 0
    fixed3: int = 0
    fixed_any: int = 0
    steps_fixed: list[int] = field(default_factory=list)
    actions: int = 0
    harmful: int = 0
    actions_gated: int = 0
    harmful_gated: int = 0
    harmful_allowed: int = 0
    fixed_gated: int = 0
    fixed_auto: int = 0
    """Episodes fixed by an action the gate let run unattended (the rest needed an operator's approval)."""
    blocked: int = 0
    conf: list[float] = field(default_factory=list)
    hit: list[bool] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        n = max(self.n, 1)
        ece, bins = calibration(np.array(self.conf), np.array(self.hit, bool))
        return {
            "n": self.n,
            "success@1": round(self.fixed1 / n, 4),
            "success@3": round(self.fixed3 / n, 4),
            "success_any": round(self.fixed_any / n, 4),
            "mean_steps": round(float(np.mean(self.steps_fixed)), 3) if self.steps_fixed else None,
            "harmful_rate_before_gate": round(self.harmful / max(self.actions, 1), 4),
            "harmful_actions_before_gate": self.harmful,
            "harmful_rate_after_gate": round(self.harmful_gated / max(self.actions_gated, 1), 4),
            "harmful_actions_after_gate": self.harmful_gated,
            "harmful_auto_allowed": self.harmful_allowed,
            "success_after_gate": round(self.fixed_gated / n, 4),
            "fixed_unattended": round(self.fixed_auto / n, 4),
            "blocked_by_gate": self.blocked,
            "ece": round(ece, 4),
            "reliability": bins,
        }


def calibration(conf: np.ndarray, hit: np.ndarray, bins: int = BINS) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error over equal-width bins, and the per-bin (confidence, accuracy, count)."""
    if len(conf) == 0:
        return 0.0, []
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    out = []
    for b in range(bins):
        m = idx == b
        if not m.any():
            continue
        c, a = float(conf[m].mean()), float(hit[m].mean())
        ece += m.sum() / len(conf) * abs(c - a)
        out.append({"bin": b, "confidence": round(c, 4), "accuracy": round(a, 4), "count": int(m.sum())})
    return float(ece), out


def run_episode(steps: list[Step], gate: SafetyGate | None, tally: Tally, incident_id: str,
                context: IncidentContext | None = None) -> None:
    """Try `steps` in order (before the gate), and again through the gate (which sees the incident's `context`);
    add to the tally."""
    tally.n += 1
    if steps:
        tally.conf.append(steps[0].confidence.mean)
        tally.hit.append(steps[0].fixed)
    for k, s in enumerate(steps[:MAX_STEPS], start=1):
        tally.actions += 1
        tally.harmful += s.harmful
        if s.fixed:
            tally.fixed1 += k == 1
            tally.fixed3 += k <= 3
            tally.fixed_any += 1
            tally.steps_fixed.append(k)
            break
        if s.action == "escalate_to_human":
            break
    if gate is None:
        return
    for k, s in enumerate(steps[:MAX_STEPS]):
        # the gate sees the step as the product shows it: with the planner's other proposals as alternatives
        others = [{"action": o.action, "target": o.target, "confidence": o.confidence.to_doc()}
                  for o in steps[:MAX_STEPS] if o is not s]
        rec = Recommendation(recommendation_id=f"{incident_id}-{k}", incident_id=incident_id, action=s.action,
                             target=s.target, confidence=s.confidence, alternatives=others)
        verdict = gate.assess(rec, context=context).safety_verdict
        if verdict == "blocked":
            tally.blocked += 1
            break  # only escalation is allowed now: a human takes over
        tally.actions_gated += 1
        tally.harmful_gated += s.harmful
        tally.harmful_allowed += s.harmful and verdict == "allowed"
        gate.record_execution(s.action, s.target)
        if s.fixed:
            tally.fixed_gated += 1
            tally.fixed_auto += verdict == "allowed"
            break
        if s.action == "escalate_to_human":
            break


def model_steps(model_path: str | Path, data: dict[str, np.ndarray]) -> list[list[Step]]:
    """Ranked steps of an ONNX planner for every case (empty for undetected cases)."""
    from llmid.engine.planner_learned import PlannerModel

    model = PlannerModel(model_path)
    det = np.nonzero(data["detected"])[0]
    names = [json.loads(str(data["targets"][i])) for i in det]
    ranked = model.rank_batch(data["x"][det], data["mask"][det].astype(np.float32), depth=MAX_STEPS, targets=names)
    out: list[list[Step]] = [[] for _ in range(len(data["seed"]))]
    for i, r in zip(det, ranked, strict=True):
        targets = json.loads(str(data["targets"][i]))
        for j, a, b, _ in r:
            action = JOINT[j][0]
            out[i].append(Step(action, None if j == ESCALATE else targets[j], beta_confidence(a, b),
                               bool(data["fixed"][i, j]), bool(data["harmful"][i, j])))
    return out


def runbook_steps(data: dict[str, np.ndarray]) -> list[list[Step]]:
    out = []
    for i in range(len(data["seed"])):
        rb = json.loads(str(data["runbook"][i])) if data["detected"][i] else []
        steps = []
        for s in rb:
            c = float(s["confidence"])
            steps.append(Step(s["action"], s["target"], Confidence(alpha=0, beta=0, mean=c, low=c, high=c),
                              bool(s["fixed"]), bool(s["harmful"])))
        out.append(steps)
    return out


def random_steps(data: dict[str, np.ndarray], seed: int = 0) -> list[list[Step]]:
    rng = Random(seed)
    uniform = beta_confidence(1.0, 1.0)
    out = []
    for i in range(len(data["seed"])):
        if not data["detected"][i]:
            out.append([])
            continue
        targets = json.loads(str(data["targets"][i]))
        avail = [int(j) for j in np.nonzero(data["mask"][i])[0]]
        rng.shuffle(avail)
        seen: set[tuple[str, str | None]] = set()
        avail = [j for j in avail if (JOINT[j][0], targets[j]) not in seen and not seen.add((JOINT[j][0], targets[j]))]
        out.append([Step(JOINT[j][0], None if j == ESCALATE else targets[j], uniform,
                         bool(data["fixed"][i, j]), bool(data["harmful"][i, j])) for j in avail[:MAX_STEPS]])
    return out


def evaluate(data: dict[str, np.ndarray], planners: dict[str, list[list[Step]]],
             policy: Callable[[], SafetyPolicy]) -> dict[str, Any]:
    res: dict[str, Any] = {"scenarios": int(len(data["seed"])), "detected": int(data["detected"].sum()),
                           "planners": {}}
    for name, steps in planners.items():
        t = Tally()
        for i, s in enumerate(steps):
            ctx = json.loads(str(data["context"][i])) if "context" in data else {}
            run_episode(s, SafetyGate(policy()), t, f"case-{int(data['seed'][i])}",
                        IncidentContext.from_doc(ctx) if ctx else None)
        res["planners"][name] = t.to_json()
    return res


# -- reliability diagram (PNG without plotting libraries) -------------------------------------------------------
def _png(path: Path, img: np.ndarray) -> None:
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].astype(np.uint8).tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40)]


def reliability_png(result: dict[str, Any], path: str | Path, size: int = 240, pad: int = 20) -> Path:
    """One panel per planner: bars = accuracy per confidence bin, grey diagonal = perfect calibration."""
    names = list(result["planners"])
    w = pad + len(names) * (size + pad)
    img = np.full((size + 2 * pad, w, 3), 255, np.uint8)
    for p, name in enumerate(names):
        x0, y0 = pad + p * (size + pad), pad
        img[y0:y0 + size, x0] = img[y0:y0 + size, x0 + size - 1] = 0
        img[y0, x0:x0 + size] = img[y0 + size - 1, x0:x0 + size] = 0
        for k in range(size):
            img[y0 + size - 1 - k, x0 + k] = (170, 170, 170)
        bw = size // BINS
        for b in result["planners"][name]["reliability"]:
            hgt = int(round(b["accuracy"] * (size - 2)))
            bx = x0 + b["bin"] * bw + 2
            img[y0 + size - 1 - hgt:y0 + size - 1, bx:bx + bw - 3] = COLORS[p % len(COLORS)]
            cy = y0 + size - 1 - int(round(b["confidence"] * (size - 2)))
            img[max(cy - 1, y0):cy + 2, bx:bx + bw - 3] = (0, 0, 0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _png(path, img)
    return path


def format_markdown(result: dict[str, Any]) -> str:
    cols = ["success@1", "success@3", "mean_steps", "harmful_rate_before_gate", "harmful_actions_after_gate",
            "harmful_auto_allowed", "success_after_gate", "fixed_unattended", "ece"]
    lines = [f"{result.get('split', 'held-out')} scenarios: {result['scenarios']} (incident raised: "
             f"{result['detected']})", "",
             "| planner | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, m in result["planners"].items():
        lines.append(f"| {name} | " + " | ".join(str(m[c]) for c in cols) + " |")
    return "\n".join(lines)


__all__ = ["calibration", "evaluate", "format_markdown", "model_steps", "random_steps", "reliability_png",
           "runbook_steps"]
