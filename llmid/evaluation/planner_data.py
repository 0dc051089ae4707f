"""Planner cases: simulator scenarios seen through the engine, with every candidate action tried in the env.

Shared by `llmid train planner` and `llmid eval planner` (numpy only). A case is built the way production sees an
incident: the scenario log is parsed by the real ingest path, run through the pipeline (structurer → windows →
the installed reasoner), and the first incident whose window reaches the root-cause line is featurised by
`engine.planner_features.planner_state`. The simulator's `RecoveryEnv` then tries every joint (action, target)
candidate of that incident once, from the same starting point, giving the outcome table the policy learns from
(training) or is scored on (evaluation). Ground truth is used only for these outcomes and the auxiliary
fault-class label, never for the state.

Seeds: training uses low seeds with the "train" phrasings; evaluation uses `HELDOUT_SEED_BASE + i` with the
held-out "test" phrasings, exactly as the reasoner's benchmark does. Settings are chosen without the test seeds
and wording: a model fitted on the "fit" share of the training phrasings (low seeds) is scored on
`VALIDATION_SEED_BASE + i` with the "dev" share (wording that model never saw; `sim.faults.split_phrasings`).
"""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import numpy as np

from llmid.config import Settings
from llmid.documents import Incident, LogRecord
from llmid.engine.pipeline import Pipeline, batched
from llmid.engine.planner import KeywordPlanner
from llmid.engine.planner_features import FEATURE_DIM, JOINT, N_JOINT, PlannerState, planner_state
from llmid.engine.reasoner import make_reasoner
from llmid.engine.safety import IncidentContext
from llmid.evaluation.rca_data import HELDOUT_SEED_BASE, scenario_kwargs, sim_case
from llmid.sim.env import RecoveryEnv
from llmid.sim.faults import FAULTS

FAULT_NAMES: tuple[str, ...] = tuple(sorted(FAULTS))
TRAIN_SEED_BASE = 0
VALIDATION_SEED_BASE = 500_000
"""Validation ("dev" phrasings) scenarios use seeds VALIDATION_SEED_BASE + i."""
RUNBOOK_STEPS = 5
TRAIN_SCENARIOS = 700
"""Training scenarios of `llmid train planner` by default."""


@dataclass(slots=True)
class PlannerCase:
    """One scenario: the incident the engine raised (None if it raised none) and the outcome of each action."""

    seed: int
    split: str
    fault: str
    incident: Incident | None = None
    records: list[LogRecord] = field(default_factory=list)
    state: PlannerState | None = None
    fixed: np.ndarray = field(default_factory=lambda: np.zeros(N_JOINT, bool))
    harmful: np.ndarray = field(default_factory=lambda: np.zeros(N_JOINT, bool))
    reward: np.ndarray = field(default_factory=lambda: np.zeros(N_JOINT, np.float32))
    runbook: list[dict[str, Any]] = field(default_factory=list)
    """The runbook baseline's ranked (action, target, confidence) with the env outcome of each."""

    def env(self) -> RecoveryEnv:
        """A fresh recovery environment of this scenario (the same log the case was built from)."""
        return RecoveryEnv(self.seed, phrasings=self.split, **scenario_kwargs(self.seed))


def try_action(env: RecoveryEnv, action: str, target: str | None) -> dict[str, Any]:
    """Outcome of one action from the env's current point, leaving `env` untouched (a shallow what-if copy)."""
    e = copy.copy(env)
    e.history = []
    e._rng = Random(f"llmid-env:{env.seed}:try:{action}:{target}")  # noqa: SLF001 - what-if copy only
    res = e.step(action, target)
    return {"fixed": res.info["outcome"] == "fixed", "harmful": bool(res.info["side_effects"]),
            "reward": float(res.reward), "outcome": res.info["outcome"]}


def build_case(seed: int, split: str, settings: Settings | None = None, embedder: Any = None,
               raw_cache: str | Path | None = None) -> PlannerCase:
    """Scenario → pipeline → incident → state, and the env outcome of every joint action. `raw_cache`: a folder
    keeping each scenario's incident and window records, so a featurisation change needs no pipeline re-run."""
    from llmid.engine.embeddings import default_embedder

    settings = settings or Settings()
    embedder = embedder or default_embedder()
    raw = Path(raw_cache) / f"{split}-{seed}.pkl" if raw_cache else None
    if raw is not None and raw.is_file():
        fault, inc, window = pickle.loads(raw.read_bytes())  # noqa: S301 - our own cache file
    else:
        sc = sim_case(seed, split)
        fault, records = sc.truth["fault_type"], sc.fresh_records()
        pipe = Pipeline(settings, reasoner=make_reasoner(settings))
        incidents: list[Incident] = []
        for chunk in batched(records, settings.batch_size):
            incidents += pipe.feed(chunk).incidents
        incidents += pipe.finish().incidents
        root = sc.truth["root_cause_line"]
        after = [i for i in incidents if i.last_line >= root]
        inc = after[0] if after else None
        window = [r for r in records if inc and inc.first_line <= r.line_id <= inc.last_line]
        if raw is not None:
            raw.parent.mkdir(parents=True, exist_ok=True)
            raw.write_bytes(pickle.dumps((fault, inc, window)))
    case = PlannerCase(seed, split, fault)
    if inc is None:
        return case
    case.incident = inc
    case.records = window
    case.state = planner_state(inc, case.records, embedder)
    env = case.env()
    env.reset()
    for j, (action, _, _) in enumerate(JOINT):
        tgt = case.state.target(j)
        if tgt is None:
            continue
        out = try_action(env, action, tgt)
        case.fixed[j], case.harmful[j], case.reward[j] = out["fixed"], out["harmful"], out["reward"]
    (rec,) = KeywordPlanner().recommend(inc)
    ranked = [(rec.action, rec.target, rec.confidence.mean)]
    ranked += [(a["action"], a["target"], a["confidence"]["mean"]) for a in rec.alternatives]
    for action, tgt, conf in ranked[:RUNBOOK_STEPS]:
        out = try_action(env, action, tgt or "")
        case.runbook.append({"action": action, "target": tgt, "confidence": conf, **out})
    return case


def seeds_for(split: str, n: int, offset: int = 0) -> list[int]:
    base = {"test": HELDOUT_SEED_BASE, "dev": VALIDATION_SEED_BASE}.get(split, TRAIN_SEED_BASE)
    return [base + offset + i for i in range(n)]


def build_arrays(cases: Iterable[PlannerCase]) -> dict[str, np.ndarray]:
    """Stack cases into arrays (the cache format and what training consumes); undetected cases are kept with
    `detected = False` and zero features."""
    cs = list(cases)
    n = len(cs)
    x = np.zeros((n, FEATURE_DIM), np.float32)
    mask = np.zeros((n, N_JOINT), bool)
    for i, c in enumerate(cs):
        if c.state is not None:
            x[i], mask[i] = c.state.features, c.state.mask
    return {
        "seed": np.array([c.seed for c in cs], np.int64),
        "detected": np.array([c.state is not None for c in cs], bool),
        "fault": np.array([FAULT_NAMES.index(c.fault) for c in cs], np.int64),
        "x": x, "mask": mask,
        "fixed": np.stack([c.fixed for c in cs]) if cs else np.zeros((0, N_JOINT), bool),
        "harmful": np.stack([c.harmful for c in cs]) if cs else np.zeros((0, N_JOINT), bool),
        "reward": np.stack([c.reward for c in cs]) if cs else np.zeros((0, N_JOINT), np.float32),
        "targets": np.array([json.dumps([c.state.target(j) for j in range(N_JOINT)] if c.state else [])
                             for c in cs]),
        "runbook": np.array([json.dumps(c.runbook) for c in cs]),
        "context": np.array([_context_json(c.incident, c.records) for c in cs]),
    }


def _context_json(incident: Incident | None, records: list[LogRecord]) -> str:
    """The safety gate's view of an incident (`IncidentContext`), as the cached arrays keep it."""
    return json.dumps(IncidentContext.of(incident, records).to_doc() if incident else {})


def _add_context(d: dict[str, np.ndarray], split: str, raw: Path) -> bool:
    """Fill the safety gate's incident context into arrays cached before it existed, from the raw incident cache
    (no pipeline run). False when a scenario's raw incident is missing."""
    out = []
    for seed in d["seed"].tolist():
        f = raw / f"{split}-{seed}.pkl"
        if not f.is_file():
            return False
        _, inc, window = pickle.loads(f.read_bytes())  # noqa: S301 - our own cache file
        out.append(_context_json(inc, window))
    d["context"] = np.array(out)
    return True


def load_or_build(split: str, n: int, cache: str | Path | None = None, *, offset: int = 0,
                  log: Callable[[str], None] | None = None) -> dict[str, np.ndarray]:
    """Arrays of `n` cases of `split`, from the .npz cache when it holds exactly these seeds."""
    seeds = seeds_for(split, n, offset)
    if cache is not None and Path(cache).is_file():
        d = dict(np.load(cache, allow_pickle=False))
        if d["seed"].tolist() == seeds:
            if "context" not in d and _add_context(d, split, Path(cache).parent / "incidents"):
                np.savez_compressed(cache, **d)
            return d
    cases = []
    raw = Path(cache).parent / "incidents" if cache is not None else None
    for k, s in enumerate(seeds):
        cases.append(build_case(s, split, raw_cache=raw))
        if log and (k + 1) % 50 == 0:
            log(f"  {split}: {k + 1}/{n} scenarios")
    arrays = build_arrays(cases)
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, **arrays)
    return arrays


__all__ = ["FAULT_NAMES", "VALIDATION_SEED_BASE", "PlannerCase", "build_arrays", "build_case", "load_or_build",
           "seeds_for", "try_action"]
