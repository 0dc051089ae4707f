"""Root-cause and anomaly-detection benchmarks: `llmid eval rca`.

**Simulator, held out** (`scenarios` seeds from `rca_data.HELDOUT_SEED_BASE`, phrasings "test": wordings of
root causes, symptoms, decoys and benign one-offs never used in training). Two views:

- *end to end* (what `llmid analyze` reports): the whole pipeline runs over the scenario log; the scored
  incident is the first one whose window reaches the root-cause line (`last_line >= root_cause_line`; earlier
  incidents are false alarms, counted). AC@k = the root-cause line is among the `lines` of the top-k ranked events
  of that incident (0 when no incident is raised).
- *given the fault window*: every ranker ranks the events of the same window (the one holding the root-cause
  line; normal profile built from the windows before it, absorbed according to the truth), so ranking is compared
  without detection.

Rankers: `baseline` = BaselineReasoner ("earliest anomalous event"), `frequent-error` = its detection with the
most frequent ERROR/FATAL (or failure-worded) template of the window first, `pagerank` = its detection with a
personalised PageRank over the event graph (edges from later to earlier co-occurring events, teleport
proportional to anomaly strength), and each learned model given.

**HDFS** sessions (chronological split, `rca_data.hdfs_sessions`): anomaly F1 of the anomaly head at 0.5, the
"novel template" rule, and the ceiling of *any* detector that sees the logged events (the best F1 of labelling
each distinct event multiset of the test set by its majority label: labels whose evidence lies outside the
sample cannot be detected). **BGL** 20-line windows (chronological 80/20): F1 on the test windows.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmid.config import Settings
from llmid.documents import Incident
from llmid.engine.graph import EventGraph, GraphStream, errorish, level_rank
from llmid.engine.pipeline import Pipeline, batched
from llmid.engine.reasoner import BaselineReasoner, EventScore, Reasoner, SourceHistory, WindowScore
from llmid.engine.reasoner_learned import LearnedReasoner, ReasonerModel
from llmid.engine.windows import Window
from llmid.evaluation.rca_data import (
    FAULT_ROLES,
    HELDOUT_SEED_BASE,
    SimCase,
    bgl_stream,
    bgl_windows,
    hdfs_graph,
    hdfs_reference,
    hdfs_sessions,
    sim_case,
    structured_windows,
    window_label,
)

KS = (1, 3, 5)


# -- baseline rankers ------------------------------------------------------------------------------------------
class FrequentErrorReasoner(BaselineReasoner):
    """Baseline detection; ranking: the most frequent ERROR/FATAL (or failure-worded) event of the window."""

    METHOD = "frequent-error"

    def _rank(self, scored: list[EventScore]) -> None:
        errs = [s for s in scored if level_rank(s.event.level) >= 4 or errorish(s.event.template)]
        if not errs:
            errs = [s for s in scored if s.contribution > 0] or scored
        top = max((s.event.count for s in errs), default=1)
        for s in errs:
            s.root_cause_score = s.event.count / top * (1.0 - 1e-6 * s.event.first_index / max(len(scored), 1))


class PageRankReasoner(BaselineReasoner):
    """Baseline detection; ranking: personalised PageRank on the event graph (effects → causes)."""

    METHOD = "pagerank"
    DAMPING = 0.85

    def score_window(self, window: Window, events: list[Any] | None = None) -> WindowScore:
        ws = super().score_window(window, events)
        if not ws.events:
            return ws
        g = EventGraph.from_events([s.event for s in ws.events], window.records)
        pr = pagerank(g.precedence * (g.cooccurrence + 0.1), np.array([s.contribution for s in ws.events]),
                      self.DAMPING)
        cands = [i for i, s in enumerate(ws.events) if s.contribution >= self.MIN_CONTRIBUTION]
        if not cands and max(s.contribution for s in ws.events) > 0:
            cands = [int(np.argmax([s.contribution for s in ws.events]))]
        for s in ws.events:
            s.root_cause_score = 0.0
        top = max((pr[i] for i in cands), default=1.0) or 1.0
        for i in cands:
            ws.events[i].root_cause_score = max(float(pr[i] / top), 1e-6)
        return ws


def pagerank(a: np.ndarray, personal: np.ndarray, damping: float = 0.85, iters: int = 100) -> np.ndarray:
    """PageRank where a walker at j moves to i with weight a[i, j] (i → j: i before j); teleport ∝ `personal`."""
    n = a.shape[0]
    v = np.maximum(personal.astype(np.float64), 0.0)
    v = v / v.sum() if v.sum() > 0 else np.full(n, 1.0 / n)
    w = a.T.astype(np.float64)  # w[j, i]: from j to i
    out = w.sum(axis=1, keepdims=True)
    p = np.divide(w, out, out=np.zeros_like(w), where=out > 0)
    r = v.copy()
    for _ in range(iters):
        dangling = r[out[:, 0] == 0].sum()
        nxt = damping * (r @ p) + damping * dangling * v + (1 - damping) * v
        if np.abs(nxt - r).sum() < 1e-10:
            return nxt
        r = nxt
    return r


# -- helpers ---------------------------------------------------------------------------------------------------
def run_pipeline(records: list[Any], settings: Settings, reasoner: Reasoner) -> list[Incident]:
    pipe = Pipeline(settings, reasoner=reasoner)
    incidents: list[Incident] = []
    for chunk in batched(records, settings.batch_size):
        incidents += pipe.feed(chunk).incidents
    incidents += pipe.finish().incidents
    return incidents


def ac_at(ranking_lines: list[list[int]], line: int) -> dict[int, bool]:
    return {k: any(line in lines for lines in ranking_lines[:k]) for k in KS}


@dataclass(slots=True)
class Tally:
    n: int = 0
    hits: Counter[int] | None = None
    detected: int = 0
    false_alarms: int = 0
    chain_recall: float = 0.0
    chain_precision: float = 0.0
    chain_n: int = 0

    def __post_init__(self) -> None:
        self.hits = Counter()

    def add(self, ac: dict[int, bool]) -> None:
        self.n += 1
        assert self.hits is not None
        for k, v in ac.items():
            self.hits[k] += int(v)

    def to_json(self) -> dict[str, Any]:
        assert self.hits is not None
        d: dict[str, Any] = {f"AC@{k}": round(self.hits[k] / max(self.n, 1), 4) for k in KS}
        d["n"] = self.n
        if self.detected or self.false_alarms:
            d["detected"] = round(self.detected / max(self.n, 1), 4)
            d["false_alarms_per_scenario"] = round(self.false_alarms / max(self.n, 1), 3)
        if self.chain_n:
            d["chain_recall"] = round(self.chain_recall / self.chain_n, 4)
            d["chain_precision"] = round(self.chain_precision / self.chain_n, 4)
        return d


def _baseline_rankers() -> dict[str, type[BaselineReasoner]]:
    return {"baseline (earliest anomalous)": BaselineReasoner, "frequent-error": FrequentErrorReasoner,
            "pagerank": PageRankReasoner}


def _chain_scores(inc: Incident, case: SimCase) -> tuple[float, float]:
    truth_chain = case.truth["chain_lines"]
    lines = [set(e.lines) for e in inc.chain[1:]]
    covered = sum(1 for ln in truth_chain if any(ln in s for s in lines))
    recall = covered / max(len(truth_chain), 1)
    good = sum(1 for s in lines if any(case.roles.get(x) in FAULT_ROLES for x in s))
    precision = good / len(lines) if lines else 0.0
    return recall, precision


def eval_case_end_to_end(case: SimCase, settings: Settings, name: str, make: Callable[[], Reasoner],
                         tally: Tally) -> None:
    incidents = run_pipeline(case.fresh_records(), settings, make())
    root = case.truth["root_cause_line"]
    before = [i for i in incidents if i.last_line < root]
    after = [i for i in incidents if i.last_line >= root]
    tally.false_alarms += len(before)
    if not after:
        tally.add({k: False for k in KS})
        return
    inc = after[0]
    tally.detected += 1
    tally.add(ac_at([e.lines for e in inc.ranking], root))
    if name not in _baseline_rankers():
        r, p = _chain_scores(inc, case)
        tally.chain_recall += r
        tally.chain_precision += p
        tally.chain_n += 1


def eval_case_given_window(case: SimCase, settings: Settings, models: dict[str, ReasonerModel],
                           tallies: dict[str, Tally], baselines: bool = True) -> None:
    """Every ranker ranks the window holding the root-cause line (normal profile from the truth)."""
    root = case.truth["root_cause_line"]
    windows = structured_windows(case.fresh_records(), settings)
    target = next(i for i, w in enumerate(windows) if w.first_line <= root <= w.last_line)
    for name, cls in (_baseline_rankers() if baselines else {}).items():
        r = cls(settings)
        hist = SourceHistory()
        for w in windows[:target]:
            if not window_label(w, case.roles):
                hist.absorb(_events(w), len(w.records), r.DECAY)
        r.histories[windows[target].source] = hist
        ws = r.score_window(windows[target])
        ranked = sorted(ws.anomalous, key=lambda s: (-s.root_cause_score, s.event.first_index))
        tallies[name].add(ac_at([s.event.lines for s in ranked], root))
    for name, model in models.items():
        stream = GraphStream(settings.baseline_windows, settings.baseline_records,
                             context_gap=settings.window_seconds)
        g = None
        for w in windows[: target + 1]:
            g = stream.inputs(w)
            stream.commit(w, window_label(w, case.roles))
        if g is None or not len(g):
            tallies[name].add({k: False for k in KS})
            continue
        out = model.run(g)
        order = np.argsort(-out.root_prob, kind="stable")
        tallies[name].add(ac_at([g.events[int(i)].lines for i in order], root))


def _events(w: Window) -> list[Any]:
    from llmid.engine.graph import build_events

    return build_events(w)


def eval_sim(models: dict[str, str | Path | None], scenarios: int, settings: Settings | None = None,
             baselines: bool = True, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    settings = settings or Settings()
    loaded = {name: ReasonerModel(path) for name, path in models.items()}
    e2e: dict[str, Tally] = {}
    given: dict[str, Tally] = {}
    per_fault: dict[str, Counter[str]] = {}
    makers: dict[str, Callable[[], Reasoner]] = {}
    if baselines:
        for name, cls in _baseline_rankers().items():
            makers[name] = (lambda c=cls: c(settings))  # type: ignore[misc]
    for name, m in loaded.items():
        makers[name] = (lambda mm=m: LearnedReasoner(settings, mm))  # type: ignore[misc]
    for name in makers:
        e2e[name] = Tally()
    for name in list(_baseline_rankers()) * baselines + list(loaded):
        given[name] = Tally()
    t0 = time.time()
    for i in range(scenarios):
        case = sim_case(HELDOUT_SEED_BASE + i, "test")
        ft = case.truth["fault_type"]
        for name, make in makers.items():
            before = e2e[name].hits[1] if e2e[name].hits else 0
            eval_case_end_to_end(case, settings, name, make, e2e[name])
            assert e2e[name].hits is not None
            per_fault.setdefault(name, Counter())[ft + ":n"] += 1
            per_fault[name][ft + ":hit"] += e2e[name].hits[1] - before
        eval_case_given_window(case, settings, loaded, given, baselines)
        if log and (i + 1) % 25 == 0:
            log(f"{i + 1}/{scenarios} held-out scenarios ({time.time() - t0:.0f}s)")
    faults = sorted({k.split(":")[0] for c in per_fault.values() for k in c})
    return {
        "scenarios": scenarios,
        "seeds": f"{HELDOUT_SEED_BASE}..{HELDOUT_SEED_BASE + scenarios - 1}",
        "phrasings": "test (held out)",
        "end_to_end": {k: v.to_json() for k, v in e2e.items()},
        "given_fault_window": {k: v.to_json() for k, v in given.items()},
        "ac1_by_fault": {name: {f: round(c[f + ":hit"] / max(c[f + ":n"], 1), 3) for f in faults}
                         for name, c in per_fault.items()},
        "seconds": round(time.time() - t0, 1),
    }


# -- HDFS / BGL ------------------------------------------------------------------------------------------------
def f1_counts(pred: list[bool], gold: list[bool]) -> dict[str, float]:
    tp = sum(p and g for p, g in zip(pred, gold, strict=True))
    fp = sum(p and not g for p, g in zip(pred, gold, strict=True))
    fn = sum(g and not p for p, g in zip(pred, gold, strict=True))
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"precision": round(prec, 4), "recall": round(rec, 4), "F1": round(f1, 4), "tp": tp, "fp": fp, "fn": fn}


def eval_hdfs(models: dict[str, ReasonerModel]) -> dict[str, Any]:
    train, test, templates = hdfs_sessions()
    ref = hdfs_reference(train, templates)
    gold = [bool(s.label) for s in test]
    out: dict[str, Any] = {"train_sessions": len(train), "train_anomalies": sum(s.label for s in train),
                           "test_sessions": len(test), "test_anomalies": sum(gold)}
    graphs = [hdfs_graph(s, templates, ref) for s in test]
    novel_idx = 4  # NODE_FEATURES "novel"
    out["novel-template rule"] = f1_counts([bool((g.x[:, novel_idx] > 0).any()) for g in graphs], gold)
    for name, m in models.items():
        out[name] = f1_counts([m.run(g).anomaly >= 0.5 for g in graphs], gold)
    # ceiling: majority label per distinct event multiset of the test set (in-sample oracle)
    groups: dict[tuple[Any, ...], Counter[bool]] = {}
    for s in test:
        groups.setdefault(tuple(sorted(Counter(s.events).items())), Counter())[bool(s.label)] += 1
    pred_key = {k: c[True] >= c[False] and c[True] > 0 for k, c in groups.items()}
    oracle = [pred_key[tuple(sorted(Counter(s.events).items()))] for s in test]
    out["ceiling (any detector on the logged events)"] = f1_counts(oracle, gold)
    normal_keys = {tuple(sorted(Counter(s.events).items())) for s in train + test if not s.label}
    observable = [not (s.label and tuple(sorted(Counter(s.events).items())) in normal_keys) for s in test]
    out["observable_test_anomalies"] = sum(1 for s, o in zip(test, observable, strict=True) if s.label and o)
    for name, m in models.items():
        keep = [i for i, o in enumerate(observable) if o]
        preds = [m.run(graphs[i]).anomaly >= 0.5 for i in keep]
        out[f"{name} (observable anomalies only)"] = f1_counts(preds, [gold[i] for i in keep])
    return out


def eval_bgl(models: dict[str, ReasonerModel], settings: Settings | None = None) -> dict[str, Any]:
    windows, labels = bgl_windows()
    n_train = int(len(windows) * 0.8)
    out: dict[str, Any] = {"windows": len(windows), "test_windows": len(windows) - n_train,
                           "test_anomalous": sum(labels[n_train:])}
    base = BaselineReasoner(Settings(baseline_windows=3, baseline_records=0))
    pred = []
    for i, w in enumerate(windows):
        ws = base.score_window(w)
        flagged = not ws.in_baseline and ws.score >= 0.5
        if (labels[i] if i < n_train else flagged) is False:
            base.histories.setdefault(w.source, SourceHistory()).absorb(_events(w), len(w.records), base.DECAY)
        pred.append(flagged)
    out["baseline (novelty + surprise)"] = f1_counts(pred[n_train:], labels[n_train:])
    for name, m in models.items():
        stream: GraphStream = bgl_stream()
        pred = []
        for i, w in enumerate(windows):
            g = stream.inputs(w)
            p = m.run(g).anomaly >= 0.5 if g is not None and len(g) else False
            stream.commit(w, labels[i] if i < n_train else p)
            pred.append(p)
        out[name] = f1_counts(pred[n_train:], labels[n_train:])
    return out


def run_rca_eval(models: dict[str, str | Path | None], scenarios: int = 300, *, sim: bool = True,
                 real: bool = True, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"models": {k: str(v or "llmid/models/reasoner.onnx") for k, v in models.items()}}
    if sim:
        result["simulator"] = eval_sim(models, scenarios, log=log)
        best = max((v["AC@1"] for k, v in result["simulator"]["end_to_end"].items()
                    if k in _baseline_rankers()), default=0.0)
        for k, v in result["simulator"]["end_to_end"].items():
            if k not in _baseline_rankers() and best > 0:
                v["relative_gain_AC@1_vs_best_baseline"] = round(v["AC@1"] / best - 1.0, 4)
    if real:
        loaded = {name: ReasonerModel(path) for name, path in models.items()}
        result["hdfs"] = eval_hdfs(loaded)
        result["bgl"] = eval_bgl(loaded)
    return result


def format_markdown(result: dict[str, Any]) -> str:
    lines: list[str] = []
    sim = result.get("simulator")
    if sim:
        lines.append(f"Simulator, {sim['scenarios']} held-out scenarios (seeds {sim['seeds']}, phrasings "
                     f"{sim['phrasings']}):\n")
        lines.append("| ranker | end-to-end AC@1 | AC@3 | AC@5 | detected | false alarms / scenario | "
                     "given window AC@1 | AC@3 | chain recall | chain precision |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for name, v in sim["end_to_end"].items():
            gw = sim["given_fault_window"].get(name, {})
            lines.append(f"| {name} | {v['AC@1']:.3f} | {v['AC@3']:.3f} | {v['AC@5']:.3f} | "
                         f"{v.get('detected', 0):.3f} | {v.get('false_alarms_per_scenario', 0):.2f} | "
                         f"{gw.get('AC@1', math.nan):.3f} | {gw.get('AC@3', math.nan):.3f} | "
                         f"{_fmt(v.get('chain_recall'))} | {_fmt(v.get('chain_precision'))} |")
        lines.append("")
    for key, title in (("hdfs", "HDFS sessions (chronological split)"), ("bgl", "BGL 20-line windows "
                                                                              "(chronological 80/20)")):
        d = result.get(key)
        if not d:
            continue
        lines.append(f"{title}: " + ", ".join(f"{k} {v}" for k, v in d.items() if not isinstance(v, dict)) + "\n")
        lines.append("| detector | precision | recall | F1 |")
        lines.append("|---|---|---|---|")
        for k, v in d.items():
            if isinstance(v, dict):
                lines.append(f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['F1']:.3f} |")
        lines.append("")
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}"
