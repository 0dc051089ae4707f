"""The learned recovery planner at run time: ONNX Runtime + numpy, no torch.

`LearnedPlanner.recommend(incident, records)` featurises the incident (`planner_features.planner_state`), asks
the exported actor-critic (`models/planner.onnx`) for the confidence-shaped policy, and ranks candidates the way
an operator would try them: the policy's best action, then — re-planned with that one masked as failed, and with
the reasoner's next suspect in front — the candidate most likely to fix it given that failure, and so on
(`RANKED` deep; escalation always offered, and after a failure only once no remaining action is plausible;
`PlannerModel.rank_batch`). Each carries its Beta(α, β) confidence (given the failures before it, Platt-calibrated
on the validation split when the model card says so) with a 90% interval. The rationale names the chain events
the state was built from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmid.documents import Incident, LogRecord, Recommendation, stable_id
from llmid.engine.beta import beta_confidence, platt_apply
from llmid.engine.planner_features import (
    EVENTS,
    JOINT,
    N_EVENT,
    N_JOINT,
    PlannerState,
    event_swap_columns,
    planner_state,
    swap_events,
)

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL = MODELS_DIR / "planner.onnx"
ESCALATE = N_JOINT - 1
RANKED = 4
PLAUSIBLE: float | None = 0.5
"""After a failed action, escalation waits while a remaining candidate's Beta mean is at least this."""
AFTER_FAILURE = "next_cause"
"""How candidates after the first are chosen: "next_cause" (step k re-plans as if the reasoner's k-th event were
the cause, for k < EVENTS, then as "mean"), "mean" (the highest Beta mean given the failures) or "policy"."""


class PlannerModel:
    """The ONNX policy: `rank(state)` gives [(joint index, α, β, policy prob)] in the order to try them."""

    def __init__(self, path: str | Path | None = None, device: str | None = None) -> None:
        from llmid.engine.runtime import get_session

        self.path = Path(path) if path else DEFAULT_MODEL
        if not self.path.is_file():
            raise FileNotFoundError(f"No planner model at {self.path}; run `llmid train planner`.")
        self.session = get_session(self.path, device)
        card = self.path.with_suffix(".json")
        self.card: dict[str, Any] = json.loads(card.read_text(encoding="utf-8")) if card.is_file() else {}
        self.fault_classes: list[str] = list(self.card.get("fault_classes", []))
        cal = self.card.get("calibration") or {}
        self.platt: tuple[float, float] | None = (float(cal["a"]), float(cal["b"])) if "a" in cal else None

    def run(self, x: np.ndarray, avail: np.ndarray) -> dict[str, np.ndarray]:
        policy, alpha, beta, value, fault = self.session.run(
            None, {"x": np.asarray(x, np.float32), "avail": np.asarray(avail, np.float32)})
        if self.platt is not None:  # the card's calibration, fitted on the validation split after training
            alpha, beta = platt_apply(alpha, beta, *self.platt)
        return {"policy": policy, "alpha": alpha, "beta": beta, "value": value, "fault": fault}

    def rank_batch(self, x: np.ndarray, avail: np.ndarray, depth: int = RANKED,
                   targets: Sequence[Sequence[str | None]] | None = None,
                   plausible: float | None = PLAUSIBLE,
                   after_failure: str = AFTER_FAILURE) -> list[list[tuple[int, float, float, float]]]:
        """Sequential ranking for a batch of states, as an operator would try them. The first candidate is the
        policy's choice. Each next one is re-planned as if everything before it had failed: the failed action is
        masked (and, when `targets` gives each joint action's concrete target, every other way of naming the
        same action on the same target), and the network, which reads the mask, gives its Beta confidences
        conditioned on that failure; the next candidate is the one most likely to fix it now (the highest Beta
        mean; `after_failure="policy"`: the re-run policy's choice instead). With "next_cause" (the default),
        a failed fix is also taken as evidence against the reasoner's top event: step k (k < EVENTS) is
        re-planned on the view in which the k-th ranked event leads (`swap_events`), as an operator moves to the
        next suspect; later steps re-plan on the incident as ranked. The view only chooses: the confidence given
        is the network's for that action on the incident as ranked, given the failures before it. Escalation
        ends the list; after a failure it waits while a remaining action is still plausible in the view (Beta
        mean ≥ `plausible`; None = no such rule). Returns [(joint index, α, β, policy probability)] per state."""
        avail = np.asarray(avail, np.float32).copy()
        x = np.asarray(x, np.float32)
        out: list[list[tuple[int, float, float, float]]] = [[] for _ in range(len(x))]
        live = np.ones(len(x), bool)
        for step in range(depth):
            if not live.any():
                break
            k = step if after_failure == "next_cause" and 0 < step < EVENTS else 0
            cols = event_swap_columns(k)
            vx = swap_events(x, k) if k else x
            res = self.run(vx, avail[:, cols])
            said = self.run(x, avail) if k else res  # confidence is stated for the incident as ranked
            mean_all = res["alpha"] / (res["alpha"] + res["beta"])
            for i in np.nonzero(live)[0]:
                ok = avail[i, cols] > 0.5
                if not ok.any():
                    live[i] = False
                    continue
                if k and not np.abs(x[i, k * N_EVENT:(k + 1) * N_EVENT]).any():
                    continue  # no such event to re-plan on: the next step re-plans on the original view
                score = res["policy"][i] if step == 0 or after_failure == "policy" else mean_all[i]
                jv = int(np.argmax(np.where(ok, score, -1.0)))
                if step > 0 and jv == ESCALATE and plausible is not None:
                    still = ok & (mean_all[i] >= plausible)
                    still[ESCALATE] = False
                    if still.any():
                        jv = int(np.argmax(np.where(still, score, -1.0)))
                j = int(cols[jv])
                out[i].append((j, float(said["alpha"][i, j]), float(said["beta"][i, j]), float(said["policy"][i, j])))
                avail[i, j] = 0.0
                if targets is not None:
                    same = [q for q in range(N_JOINT) if JOINT[q][0] == JOINT[j][0] and targets[i][q] == targets[i][j]]
                    avail[i, same] = 0.0
                if j == ESCALATE:
                    live[i] = False
        return out

    def confidence_of(self, x: np.ndarray, avail: np.ndarray, j: int) -> tuple[float, float]:
        res = self.run(x[None], avail[None])
        return float(res["alpha"][0, j]), float(res["beta"][0, j])


def _rationale(incident: Incident, state: PlannerState, j: int, fault: tuple[str, float] | None) -> list[str]:
    """Which chain events led to the recommendation, in words."""
    _, ev, kind = JOINT[j]
    rc = state.events[ev] if ev is not None and ev < len(state.events) else incident.root_cause
    where = ", ".join(x for x in (rc.service and f"service {rc.service}", rc.host and f"host {rc.host}") if x)
    which = "the root cause" if rc is incident.root_cause else f"ranked event {incident.ranking.index(rc) + 1}"
    out = [f"Acts on {which} '{rc.template}' ({rc.level or 'no level'}{', ' + where if where else ''}, "
           f"score {rc.score:.2f})."]
    rc = incident.root_cause
    others = [e for e in incident.chain if e is not rc]
    if others:
        shown = "; ".join(f"'{e.template}' on {e.service or e.host or '?'}" for e in others[:3])
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        out.append(f"It was followed by {shown}{more} (the fault signature).")
    if fault is not None:
        out.append(f"Closest learned fault pattern: {fault[0]} (p={fault[1]:.2f}).")
    if kind is not None:
        out.append(f"Target {state.target(j)}: that event's {kind}.")
    else:
        out.append("No action is likely enough to fix it; a human decides.")
    return out


class LearnedPlanner:
    """Planner protocol over the ONNX actor-critic; method="learned"."""

    METHOD = "learned"

    def __init__(self, model_path: str | Path | None = None, embedder: Any = None,
                 device: str | None = None) -> None:
        from llmid.engine.embeddings import default_embedder

        self.model = PlannerModel(model_path, device)
        self.embedder = embedder or default_embedder()

    def recommend(self, incident: Incident, records: Sequence[LogRecord] | None = None) -> list[Recommendation]:
        state = planner_state(incident, records, self.embedder)
        x = state.features[None]
        names = [[state.target(j) for j in range(N_JOINT)]]
        ranked = self.model.rank_batch(x, state.mask[None].astype(np.float32), targets=names)[0]
        if not any(j == ESCALATE for j, *_ in ranked):
            a, b = self.model.confidence_of(state.features, state.mask.astype(np.float32), ESCALATE)
            ranked.append((ESCALATE, a, b, 0.0))
        fault = None
        if self.model.fault_classes:
            fp = self.model.run(x, state.mask[None].astype(np.float32))["fault"][0]
            k = int(np.argmax(fp))
            fault = (self.model.fault_classes[k], float(fp[k]))
        items = []
        for j, a, b, p in ranked:
            target = None if j == ESCALATE else state.target(j)
            items.append((JOINT[j][0], target, beta_confidence(a, b), p))
        action, target, conf, _ = items[0]
        alternatives = [{"action": a, "target": t, "confidence": c.to_doc(), "policy": round(p, 6),
                         "rationale": [f"Next to try if the ones before it did not help: the most likely fix once "
                                       f"they failed (confidence {c.mean:.2f} given those failures)."
                                       if a != "escalate_to_human" else "Safe fallback: a human decides."]}
                        for a, t, c, p in items[1:]]
        rec = Recommendation(
            recommendation_id=stable_id("rec", incident.incident_id, action, target),
            incident_id=incident.incident_id, action=action, target=target, confidence=conf,
            alternatives=alternatives, rationale=_rationale(incident, state, ranked[0][0], fault),
            method=self.METHOD,
        )
        return [rec]


__all__ = ["DEFAULT_MODEL", "LearnedPlanner", "PlannerModel"]
