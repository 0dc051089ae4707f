"""The learned reasoner: event-graph multi-hop attention over language-model template embeddings (ONNX).

Per window (`engine.graph.GraphStream`): the events of the window, plus the anomalous-looking events of the
previous window as context, become the nodes of a graph; each node carries the MiniLM embedding of its template
(`engine.embeddings`, cached per template) and the numeric features of `engine.graph.NODE_FEATURES`. The model
(`models/reasoner.onnx`, trained by `llmid train reasoner`, architecture in `model_export/reasoner_model.py`)
runs R rounds of bidirectional attention over it and returns the window's anomaly probability, a root-cause
logit per event, the probability that each event belongs to the fault, and the forward attention (influence)
between events.

- The window is an incident when its anomaly probability reaches `settings.anomaly_threshold`. While the
  source's normal profile is still being learned (`GraphStream.warming`: at least one window but fewer than
  `baseline_windows`), windows are judged too, against the stricter `WARMUP_THRESHOLD`: a log that starts a few
  minutes before its fault still gets its incident, without the false alarms a thin profile would raise.
- `ranking`: events by root-cause probability (softmax over the graph's events); an event's `score` is
  P(incident) × P(root cause | incident), so an alert on "root-cause score ≥ 0.9" means what it says.
- `chain`: the root cause, then the events the model assigns to the fault (membership ≥ 0.5) that occur after
  it, best-connected first: each gets the strongest influence path from the root cause (the product of forward
  attention along the way, a max-product path through events in time order); the `MAX_CHAIN - 1` with the
  highest path × membership are kept, in order of first occurrence.
- Root causes found in the context part (the previous window) are ranked like any other event: the incident then
  starts at that event's first line (`first_line`), and its `lines` include the lines it had there. Records of the
  previous window were already written, so only the current window's records get the incident id.

Model files are looked up in `llmid/models/` (`reasoner.onnx` + its card `reasoner.json`); the card says whether
the model uses template embeddings (the "without language model" ablation does not, and then no embedding is
computed).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmid.config import Settings
from llmid.documents import Incident, RankedEvent, stable_id
from llmid.engine.embeddings import DIM, MODELS_DIR, TemplateEmbedder, default_embedder
from llmid.engine.graph import NODE_FEATURES, GraphInputs, GraphStream, event_key
from llmid.engine.windows import Window
from llmid.errors import ConfigError

MODEL_FILE = "reasoner.onnx"


@dataclass(slots=True)
class ReasonerOutput:
    anomaly: float
    root_prob: np.ndarray
    """(n,) softmax over the graph's events."""
    member: np.ndarray
    influence: np.ndarray
    """(n, n): influence[j, i] = forward attention of effect j on cause i, averaged over rounds and heads."""


class ReasonerModel:
    """The ONNX event-graph reasoner plus the template embedder it needs; one `run` per graph."""

    def __init__(self, path: str | Path | None = None, embedder: TemplateEmbedder | None = None,
                 device: str | None = None) -> None:
        self.path = Path(path) if path else MODELS_DIR / MODEL_FILE
        if not self.path.is_file():
            raise ConfigError(f"No learned reasoner model at {self.path}; train one with `llmid train reasoner` "
                              "or use --reasoner baseline.")
        card_path = self.path.with_suffix(".json")
        self.card: dict[str, Any] = json.loads(card_path.read_text(encoding="utf-8")) if card_path.is_file() else {}
        features = self.card.get("node_features")
        if features is not None and list(features) != list(NODE_FEATURES):
            raise ConfigError(f"{self.path.name} was trained on other node features than this version computes; "
                              "retrain it with `llmid train reasoner`.")
        self.uses_embeddings = bool(self.card.get("config", {}).get("use_embeddings", True))
        self.embedder = embedder if embedder is not None else (default_embedder() if self.uses_embeddings else None)
        from llmid.engine.runtime import get_session

        self.session = get_session(self.path, device)

    @property
    def name(self) -> str:
        return str(self.card.get("name", self.path.stem))

    def embed(self, g: GraphInputs) -> np.ndarray:
        if self.embedder is None or not len(g):
            return np.zeros((len(g), DIM), dtype=np.float32)
        return self.embedder.embed(g.templates)

    def run(self, g: GraphInputs, emb: np.ndarray | None = None) -> ReasonerOutput:
        n = len(g)
        if n == 0:
            return ReasonerOutput(0.0, np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros((0, 0), np.float32))
        emb = self.embed(g) if emb is None else emb
        feeds = {"emb": emb[None].astype(np.float32), "x": g.x[None], "t": g.t[None], "svc": g.svc[None],
                 "host": g.host[None], "cooc": g.cooc[None], "mask": np.ones((1, n), dtype=np.float32)}
        anomaly, logits, member, influence = self.session.run(None, feeds)
        z = logits[0].astype(np.float64)
        p = np.exp(z - z.max())
        p /= p.sum()
        return ReasonerOutput(float(anomaly[0]), p.astype(np.float32), member[0], influence[0])


def influence_paths(out: ReasonerOutput, g: GraphInputs, root: int, members: np.ndarray) -> np.ndarray:
    """Max-product influence path score from `root` to every node after it (through member nodes)."""
    n = len(g)
    best = np.zeros(n, dtype=np.float64)
    best[root] = 1.0
    order = np.argsort(g.t, kind="stable")
    reached = [root]
    for j in order:
        if j == root or g.t[j] < g.t[root]:
            continue
        src = np.array(reached)
        best[j] = float(np.max(best[src] * out.influence[j, src]))
        if members[j]:
            reached.append(int(j))
    return best


class LearnedReasoner:
    """Anomaly, root cause and chain from the ONNX event-graph model. method="learned"."""

    METHOD = "learned"
    STATE_VERSION = 1
    MAX_RANKED = 25
    MAX_CHAIN = 10
    MEMBER_THRESHOLD = 0.5
    WARMUP_THRESHOLD = 0.999
    """Chosen per shipped model on validation seeds (500,000+) and selection seeds 1,000,500+ that no reported
    figure uses (benchmarks/RESULTS.md, "Short logs")."""

    def __init__(self, settings: Settings, model: ReasonerModel | None = None, *,
                 model_path: str | Path | None = None) -> None:
        self.settings = settings
        self.model = model or ReasonerModel(model_path)
        self.stream = GraphStream(settings.baseline_windows, settings.baseline_records,
                                  context_gap=settings.window_seconds)

    # -- the Reasoner interface ------------------------------------------------------------------------------
    def reason(self, window: Window) -> Incident | None:
        if not window.records:
            return None
        warming = self.stream.warming(window.source)
        g = self.stream.inputs(window, warm=True)
        if g is None or not len(g):
            for rec in window.records:
                rec.anomaly_score = 0.0
                rec.root_cause_score = 0.0
            self.stream.commit(window, False)
            return None
        out = self.model.run(g)
        flagged = out.anomaly >= (max(self.WARMUP_THRESHOLD, self.settings.anomaly_threshold) if warming
                                  else self.settings.anomaly_threshold)
        self.stream.commit(window, flagged)
        incident = self._incident(window, g, out) if flagged else None
        scores: dict[tuple[str, str | None], float] = {}
        if incident is not None:
            scores = {(e.template_id, e.service): e.score for e in incident.ranking}
        for rec in window.records:
            rec.anomaly_score = out.anomaly
            rec.root_cause_score = scores.get(event_key(rec), 0.0)
            if incident is not None:
                rec.incident_id = incident.incident_id
        return incident

    def _incident(self, window: Window, g: GraphInputs, out: ReasonerOutput) -> Incident:
        order = np.argsort(-out.root_prob, kind="stable")[: self.MAX_RANKED]
        ranked = {int(i): self._ranked(g, int(i), out.anomaly * float(out.root_prob[i])) for i in order}
        root = int(order[0])
        members = out.member >= self.MEMBER_THRESHOLD
        members[root] = True
        paths = influence_paths(out, g, root, members)
        after = [j for j in range(len(g)) if j != root and members[j] and g.t[j] >= g.t[root]]
        after.sort(key=lambda j: -paths[j] * float(out.member[j]))
        chain_idx = sorted(after[: self.MAX_CHAIN - 1], key=lambda j: (g.t[j], g.events[j].first_index))
        chain = [ranked[root]] + [ranked.get(j) or self._ranked(g, j, out.anomaly * float(out.root_prob[j]))
                                  for j in chain_idx]
        first_line = min([window.first_line] + [min(ev.lines) for ev in (g.events[i] for i in ranked)])
        ctx_start = [g.events[i].first_ts for i in ranked if g.context[i] and g.events[i].first_ts is not None]
        start = min([window.start] + ctx_start) if window.start is not None and ctx_start else window.start
        return Incident(
            incident_id=stable_id("incident", window.source, window.index, window.first_line),
            source=window.source,
            window_start=start,
            window_end=window.end,
            first_line=first_line,
            last_line=window.last_line,
            anomaly_score=out.anomaly,
            ranking=[ranked[int(i)] for i in order],
            chain=chain,
            method=self.METHOD,
        )

    @staticmethod
    def _ranked(g: GraphInputs, i: int, score: float) -> RankedEvent:
        e = g.events[i]
        return RankedEvent(template_id=e.template_id, template=e.template, score=float(score) if math.isfinite(score)
                           else 0.0, lines=list(e.lines), service=e.service, host=e.host, level=e.level,
                           first_seen=e.first_ts)

    # -- persistence -----------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"method": self.METHOD, "version": self.STATE_VERSION, "sources": self.stream.state()}

    def exact_state(self) -> dict[str, Any]:
        """For hand-over between workers after every window (see `GraphStream.exact_state`)."""
        return self.stream.exact_state()

    def load_exact_state(self, state: dict[str, Any]) -> None:
        self.stream.load_exact_state(state)

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("method") != self.METHOD or int(state.get("version", 0)) != self.STATE_VERSION:
            raise ValueError("Reasoner state was written by a different reasoner or version.")
        self.stream.load_state(dict(state.get("sources", {})))
