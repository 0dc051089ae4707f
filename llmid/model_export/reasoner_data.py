"""Training samples of the event-graph reasoner: graphs with their labels, from the simulator, HDFS and BGL.

Every graph is built by the engine's own `GraphStream` / `graph_inputs` (the code inference runs), and every
template is embedded by the engine's int8 ONNX encoder, so training sees exactly what the runtime computes.

Labels per graph:
- `y`: the window/session is anomalous (simulator: holds a root-cause or symptom record; HDFS: the block is
  labelled Anomaly; BGL: the window holds an alert line);
- `rc`: index of the root-cause node (simulator only: the event holding the root-cause record or one of its
  repetitions), -1 when the graph has none;
- `member`: per node, 1 if it holds fault records (simulator: root or symptom; BGL: alert lines), 0 if not,
  -1 unknown (HDFS).

While a simulator stream is processed, a window enters the normal profile when its *label* says it is normal
(at inference the model's own verdict decides).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from random import Random

import numpy as np

from llmid.config import Settings
from llmid.engine.embeddings import TemplateEmbedder, template_text
from llmid.engine.graph import GraphInputs, GraphStream
from llmid.evaluation.rca_data import (
    FAULT_ROLES,
    Session,
    bgl_line_alert,
    bgl_stream,
    bgl_windows,
    hdfs_graph,
    hdfs_reference,
    hdfs_sessions,
    sim_case,
    structured_windows,
    window_label,
)


@dataclass(slots=True)
class Sample:
    x: np.ndarray
    t: np.ndarray
    svc: np.ndarray
    host: np.ndarray
    cooc: np.ndarray
    """float16 to keep thousands of graphs in memory."""
    emb_idx: np.ndarray
    """Row of each node's template in the shared embedding table."""
    y: float
    rc: int
    member: np.ndarray
    kind: str

    @property
    def n(self) -> int:
        return int(self.x.shape[0])


class EmbeddingTable:
    """Template text → row; `matrix()` embeds every row once with the runtime encoder."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}

    def index(self, templates: Iterable[str]) -> np.ndarray:
        out = []
        for t in templates:
            key = template_text(t)
            out.append(self.rows.setdefault(key, len(self.rows)))
        return np.array(out, dtype=np.int32)

    def matrix(self, embedder: TemplateEmbedder | None = None) -> np.ndarray:
        emb = embedder or TemplateEmbedder(cache_size=0)
        texts = sorted(self.rows, key=self.rows.__getitem__)
        return emb.embed(texts) if texts else np.zeros((0, 384), dtype=np.float32)


def _sample(g: GraphInputs, table: EmbeddingTable, y: bool, rc: int, member: np.ndarray, kind: str) -> Sample:
    return Sample(g.x, g.t, g.svc, g.host, g.cooc.astype(np.float16), table.index(g.templates), float(y), rc,
                  member.astype(np.float32), kind)


def sim_samples(seeds: Iterable[int], split: str, settings: Settings, table: EmbeddingTable,
                synthetic: bool = True) -> list[Sample]:
    """Graphs of every non-baseline window of each scenario, labels from the truth. With `synthetic`, half of
    the faults and some benign events are procedurally worded (`llmid.sim.synthetic`)."""
    out: list[Sample] = []
    for seed in seeds:
        case = sim_case(seed, split, synthetic=synthetic)
        windows = structured_windows(case.records, settings)
        stream = GraphStream(settings.baseline_windows, settings.baseline_records,
                             context_gap=settings.window_seconds)
        roots = {line for line, role in case.roles.items() if role in ("root", "root-repeat")}
        for w in windows:
            label = window_label(w, case.roles)
            g = stream.inputs(w)
            stream.commit(w, label)
            if g is None or not len(g):
                continue
            member = np.array([any(case.roles.get(x) in FAULT_ROLES for x in ev.lines) for ev in g.events])
            rc = -1
            if label:
                hits = [i for i, ev in enumerate(g.events) if roots.intersection(ev.lines)]
                rc = hits[0] if hits else -1
            out.append(_sample(g, table, label, rc, member, "sim"))
    return out


def foreign_templates() -> list[str]:
    """Templates from outside HDFS (the simulator's training wordings), `{name}` placeholders as `<*>`."""
    from llmid.sim.background import BACKGROUND
    from llmid.sim.faults import FAULTS, split_phrasings

    texts = [line.text for lines in BACKGROUND.values() for line in lines]
    for f in FAULTS.values():
        for sym in f.symptoms:
            texts += split_phrasings(sym.phrasings, "train")
    return sorted({re.sub(r"\{[^{}]*\}", "<*>", t) for t in texts})


def _multiset(events: list[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(Counter(events).items()))


def hdfs_samples(table: EmbeddingTable, augment: float = 0.15, truncate: float = 0.3,
                 seed: int = 0) -> list[Sample]:
    """Training sessions of the chronological split (the earlier blocks), cleaned and augmented.

    - A training anomaly whose logged events are exactly those of some normal training session is dropped: its
      evidence lies after the sample's end (HDFS labels the whole block life), so for a model of the logged
      events it is label noise (38 of the 43 training anomalies).
    - Anomaly injection (self-supervised, a common trick for scarce anomaly labels): a share `augment` of the
      normal sessions is copied with one or two records of a template from outside HDFS (`foreign_templates`)
      inserted, and labelled anomalous. It teaches the head that, in a session, an event the normal sessions
      never have is a sign of trouble, whatever its wording.
    - Truncation (the converse): a share `truncate` of the normal sessions is cut after a random prefix that
      lacks at least one event nearly every normal session holds, and labelled anomalous: what is *missing* is
      evidence too (the graph's `missing_expected` inputs)."""
    train, _, templates = hdfs_sessions()
    ref = hdfs_reference(train, templates)
    normal_keys = {_multiset(s.events) for s in train if not s.label}
    expected = {k.split("|", 1)[0] for k in ref.expected_keys()}
    rng = Random(f"llmid-hdfs-augment:{seed}")
    pool = foreign_templates()
    all_templates = dict(templates)
    for k, text in enumerate(pool):
        all_templates[f"X{k}"] = text
    out = []
    for s in train:
        if s.label and _multiset(s.events) in normal_keys:
            continue
        g = hdfs_graph(s, templates, ref)
        out.append(_sample(g, table, bool(s.label), -1, np.full(len(g), -1.0), "hdfs"))
        if not s.label and rng.random() < truncate:
            cut = Session(s.block_id + "#cut", 1, s.events[: rng.randint(1, len(s.events) - 1)])
            if expected - set(cut.events):
                g = hdfs_graph(cut, templates, ref)
                out.append(_sample(g, table, True, -1, np.full(len(g), -1.0), "hdfs"))
        if not s.label and rng.random() < augment:
            events = list(s.events)
            for _ in range(rng.randint(1, 2)):
                events.insert(rng.randint(1, len(events)), f"X{rng.randrange(len(pool))}")
            g = hdfs_graph(Session(s.block_id + "#inj", 1, events), all_templates, ref)
            out.append(_sample(g, table, True, -1, np.full(len(g), -1.0), "hdfs"))
    return out


def bgl_samples(table: EmbeddingTable) -> list[Sample]:
    """Training windows of the chronological split (the first 80%)."""
    windows, labels = bgl_windows()
    n_train = int(len(windows) * 0.8)
    alert_lines = {r.line_id for w in windows for r in w.records if bgl_line_alert(r)}
    stream = bgl_stream()
    out = []
    for w, y in zip(windows[:n_train], labels[:n_train], strict=True):
        g = stream.inputs(w)
        stream.commit(w, y)
        if g is None or not len(g):
            continue
        member = np.array([bool(alert_lines.intersection(ev.lines)) for ev in g.events])
        out.append(_sample(g, table, y, -1, member, "bgl"))
    return out
