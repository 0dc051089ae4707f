"""Train the event-graph reasoner and export it to ONNX: `llmid train reasoner`.

Data (`reasoner_data`): simulator scenarios with seeds 0..N-1 and the *training* phrasings (the held-out
phrasings and seeds are only used by `llmid eval rca`), the earlier HDFS sessions and the earlier BGL windows
(chronological splits), all featurised by the engine's own code. Validation: `val_scenarios` further simulator
seeds (train phrasings, seeds from VAL_SEED_BASE); the epoch with the best validation score is exported.

Loss per graph (weights in TrainConfig): cross-entropy of the root-cause node over the graph's nodes (softmax;
graphs that hold the root cause), binary cross-entropy of the anomaly head (every graph), binary cross-entropy of
the fault-membership head (nodes with a label). Adam, fixed seeds, `torch.set_num_threads(threads)`; the same
command on the same machine gives the same model.

The default configuration (600 scenarios, 10 epochs) trains in well under 30 minutes on 2 CPU cores (the
card records the wall and CPU time of the run that made it); `--tiny` trains in seconds (tests).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from llmid.config import Settings
from llmid.engine.embeddings import MODELS_DIR
from llmid.engine.graph import EDGE_FEATURES, NODE_FEATURES
from llmid.engine.reasoner_learned import MODEL_FILE
from llmid.model_export.reasoner_data import EmbeddingTable, Sample, bgl_samples, hdfs_samples, sim_samples
from llmid.model_export.reasoner_model import EventGraphReasoner, ReasonerConfig, export_onnx

VAL_SEED_BASE = 500_000


@dataclass(slots=True)
class TrainConfig:
    scenarios: int = 600
    val_scenarios: int = 60
    epochs: int = 10
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_nodes: int = 1200
    """Graphs are packed into batches of about this many (padded) nodes."""
    seed: int = 0
    threads: int = 2
    synthetic: bool = True
    """Half of the training faults and some benign events procedurally worded (see llmid/sim/synthetic.py)."""
    hdfs: bool = True
    bgl: bool = True
    w_root: float = 1.0
    w_anomaly: float = 1.0
    w_member: float = 0.5
    kind_weight: dict[str, float] = field(default_factory=lambda: {"sim": 1.0, "hdfs": 0.5, "bgl": 1.0})
    model: ReasonerConfig = field(default_factory=ReasonerConfig)

    @classmethod
    def tiny(cls) -> TrainConfig:
        return cls(scenarios=8, val_scenarios=3, epochs=3, hdfs=False, bgl=True,
                   model=ReasonerConfig(d=16, heads=2, rounds=2, proj=8))

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_json()
        return d


@dataclass(slots=True)
class Dataset:
    train: list[Sample]
    val: list[Sample]
    emb: np.ndarray
    counts: dict[str, Any]


def build_dataset(cfg: TrainConfig, settings: Settings | None = None,
                  log: Callable[[str], None] = print) -> Dataset:
    settings = settings or Settings()
    table = EmbeddingTable()
    t0 = time.time()
    train = sim_samples(range(cfg.scenarios), "train", settings, table, cfg.synthetic)
    log(f"simulator: {cfg.scenarios} scenarios -> {len(train)} graphs ({time.time() - t0:.0f}s)")
    if cfg.hdfs:
        h = hdfs_samples(table)
        train += h
        log(f"HDFS: {len(h)} training sessions ({sum(s.y for s in h):.0f} anomalous)")
    if cfg.bgl:
        b = bgl_samples(table)
        train += b
        log(f"BGL: {len(b)} training windows ({sum(s.y for s in b):.0f} with alerts)")
    val = sim_samples(range(VAL_SEED_BASE, VAL_SEED_BASE + cfg.val_scenarios), "train", settings, table,
                      cfg.synthetic)
    t1 = time.time()
    emb = table.matrix()
    log(f"{len(table.rows)} distinct templates embedded ({time.time() - t1:.0f}s)")
    kinds: dict[str, int] = {}
    for s in train:
        kinds[s.kind] = kinds.get(s.kind, 0) + 1
    counts = {"graphs": kinds, "val_graphs": len(val), "templates": len(table.rows),
              "sim_scenarios": cfg.scenarios, "val_scenarios": cfg.val_scenarios,
              "root_cause_graphs": sum(1 for s in train if s.rc >= 0)}
    return Dataset(train, val, emb, counts)


def _batches(samples: list[Sample], budget: int, rng: random.Random, shuffle: bool) -> list[list[Sample]]:
    order = sorted(samples, key=lambda s: s.n)
    out: list[list[Sample]] = []
    cur: list[Sample] = []
    for s in order:
        if cur and (len(cur) + 1) * max(s.n, cur[-1].n) > budget:
            out.append(cur)
            cur = []
        cur.append(s)
    if cur:
        out.append(cur)
    if shuffle:
        rng.shuffle(out)
    return out


def _collate(batch: list[Sample], emb: torch.Tensor) -> dict[str, torch.Tensor]:
    b, n, f = len(batch), max(s.n for s in batch), batch[0].x.shape[1]
    x = np.zeros((b, n, f), np.float32)
    t = np.zeros((b, n), np.float32)
    svc = np.full((b, n), -1, np.int64)
    host = np.full((b, n), -1, np.int64)
    cooc = np.zeros((b, n, n), np.float32)
    idx = np.zeros((b, n), np.int64)
    mask = np.zeros((b, n), np.float32)
    member = np.full((b, n), -1.0, np.float32)
    for k, s in enumerate(batch):
        m = s.n
        x[k, :m], t[k, :m], svc[k, :m], host[k, :m] = s.x, s.t, s.svc, s.host
        svc[k, m:] = np.arange(m, n) + 10_000  # padding never "same service" as anything
        host[k, m:] = np.arange(m, n) + 10_000
        cooc[k, :m, :m] = s.cooc
        idx[k, :m] = s.emb_idx
        mask[k, :m] = 1.0
        member[k, :m] = s.member
    return {"emb": emb[torch.from_numpy(idx)], "x": torch.from_numpy(x), "t": torch.from_numpy(t),
            "svc": torch.from_numpy(svc), "host": torch.from_numpy(host), "cooc": torch.from_numpy(cooc),
            "mask": torch.from_numpy(mask), "member": torch.from_numpy(member),
            "y": torch.tensor([s.y for s in batch]), "rc": torch.tensor([s.rc for s in batch]),
            "w": torch.tensor([0.0]), "kinds": [s.kind for s in batch]}  # type: ignore[dict-item]


def _loss(model: EventGraphReasoner, bt: dict[str, Any], cfg: TrainConfig) -> torch.Tensor:
    anomaly, rc, member, _ = model(bt["emb"], bt["x"], bt["t"], bt["svc"], bt["host"], bt["cooc"], bt["mask"])
    kw = torch.tensor([cfg.kind_weight.get(k, 1.0) for k in bt["kinds"]])
    eps = 1e-6
    y = bt["y"]
    bce = -(y * torch.log(anomaly + eps) + (1 - y) * torch.log(1 - anomaly + eps))
    loss = cfg.w_anomaly * (kw * bce).sum() / kw.sum()
    has = bt["rc"] >= 0
    if bool(has.any()):
        logp = torch.log_softmax(rc[has], dim=-1)
        loss = loss + cfg.w_root * -(logp.gather(1, bt["rc"][has][:, None]).squeeze(1)).mean()
    lab = bt["member"]
    known = lab >= 0
    if bool(known.any()):
        mb = -(lab * torch.log(member + eps) + (1 - lab) * torch.log(1 - member + eps))
        loss = loss + cfg.w_member * mb[known].mean()
    return loss


@torch.no_grad()
def evaluate(model: EventGraphReasoner, samples: list[Sample], emb: torch.Tensor, cfg: TrainConfig | None = None,
             budget: int = 4000) -> dict[str, float]:
    """Graph-level metrics: root-cause top-1/top-3 over graphs holding it, anomaly F1 at 0.5, mean loss."""
    model.eval()
    cfg = cfg or TrainConfig()
    top1 = top3 = n_rc = tp = fp = fn = 0
    loss_sum = 0.0
    for batch in _batches(samples, budget, random.Random(0), False):
        bt = _collate(batch, emb)
        loss_sum += _loss(model, bt, cfg).item() * len(batch)
        anomaly, rc, _, _ = model(bt["emb"], bt["x"], bt["t"], bt["svc"], bt["host"], bt["cooc"], bt["mask"])
        for k, s in enumerate(batch):
            pred = bool(anomaly[k] >= 0.5)
            tp += pred and s.y > 0.5
            fp += pred and s.y <= 0.5
            fn += (not pred) and s.y > 0.5
            if s.rc >= 0:
                n_rc += 1
                order = torch.argsort(rc[k, : s.n], descending=True).tolist()
                top1 += order[0] == s.rc
                top3 += s.rc in order[:3]
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return {"root_top1": top1 / max(n_rc, 1), "root_top3": top3 / max(n_rc, 1), "anomaly_f1": f1,
            "loss": loss_sum / max(len(samples), 1), "graphs": len(samples), "root_graphs": n_rc}


def train(cfg: TrainConfig, data: Dataset, log: Callable[[str], None] = print,
          ) -> tuple[EventGraphReasoner, dict[str, Any]]:
    torch.set_num_threads(max(1, cfg.threads))
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    np.random.seed(cfg.seed)
    model = EventGraphReasoner(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batches_per_epoch = len(_batches(data.train, cfg.batch_nodes, random.Random(0), False))
    total = max(1, cfg.epochs * batches_per_epoch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.1)
    emb = torch.from_numpy(data.emb)
    best: tuple[float, dict[str, Any], dict[str, torch.Tensor]] | None = None
    history = []
    t0 = time.time()
    for epoch in range(cfg.epochs):
        model.train()
        tot = 0.0
        for batch in _batches(data.train, cfg.batch_nodes, rng, True):
            bt = _collate(batch, emb)
            loss = _loss(model, bt, cfg)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            tot += loss.item() * len(batch)
        val = evaluate(model, data.val, emb, cfg)
        score = -val["loss"]  # the validation accuracies saturate; the loss keeps telling epochs apart
        history.append({"epoch": epoch + 1, "loss": round(tot / max(len(data.train), 1), 5),
                        **{k: round(v, 4) for k, v in val.items()}})
        log(f"epoch {epoch + 1}/{cfg.epochs} loss {tot / max(len(data.train), 1):.4f} val loss {val['loss']:.4f} "
            f"top1 {val['root_top1']:.3f} top3 {val['root_top3']:.3f} anomaly F1 {val['anomaly_f1']:.3f} "
            f"({time.time() - t0:.0f}s)")
        if best is None or score > best[0] + 1e-9:
            best = (score, {"epoch": epoch + 1, **val}, {k: v.clone() for k, v in model.state_dict().items()})
    assert best is not None
    model.load_state_dict(best[2])
    model.eval()
    return model, {"best": best[1], "history": history, "train_seconds": round(time.time() - t0, 1)}


def write_model(model: EventGraphReasoner, cfg: TrainConfig, data: Dataset, metrics: dict[str, Any],
                out: Path, command: str, build_seconds: float) -> dict[str, Any]:
    out.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(model, str(out))
    card = {
        "name": out.stem,
        "file": out.name,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "bytes": out.stat().st_size,
        "task": "root-cause ranking, fault membership and window anomaly over event graphs (LLM-ID Eq. 5-8)",
        "architecture": "bidirectional event-graph attention, R rounds of message passing with shared weights",
        "config": cfg.model.to_json(),
        "node_features": list(NODE_FEATURES),
        "edge_features": list(EDGE_FEATURES),
        "template_encoder": "minilm-l6-int8.onnx" if cfg.model.use_embeddings else None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "training_data": {
            "simulator": f"seeds 0..{cfg.scenarios - 1}, phrasings 'train' (held out: phrasings 'test', seeds "
                         f">= 1,000,000, used only by llmid eval rca)",
            "hdfs": "hdfs_v1_sample: sessions of the blocks first seen in the first 20k lines (chronological); "
                    "plus generated anomalies: normal sessions with foreign templates inserted, and normal "
                    "sessions cut short (reasoner_data.hdfs_samples)"
                    if cfg.hdfs else None,
            "bgl": "bgl_2k: first 80% of 20-line windows (chronological)" if cfg.bgl else None,
            "validation": f"simulator seeds {VAL_SEED_BASE}..{VAL_SEED_BASE + cfg.val_scenarios - 1}, "
                          "phrasings 'train'",
            **data.counts,
        },
        "train_config": cfg.to_json(),
        "metrics": {"validation_best": metrics["best"], "train_seconds": metrics["train_seconds"],
                    "dataset_seconds": round(build_seconds, 1), "history": metrics["history"]},
        "command": command,
        "date": _dt.date.today().isoformat(),
        "torch": torch.__version__,
    }
    out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card


def run(cfg: TrainConfig, out: Path | None = None, command: str = "llmid train reasoner",
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the data, train, export `out` (default llmid/models/reasoner.onnx) with its card; returns the card."""
    out = out or MODELS_DIR / MODEL_FILE
    torch.set_num_threads(max(1, cfg.threads))
    t0 = time.time()
    c0 = time.process_time()
    data = build_dataset(cfg, log=log)
    build = time.time() - t0
    model, metrics = train(cfg, data, log=log)
    card = write_model(model, cfg, data, metrics, out, command, build)
    parity = check_parity(model, out, data)
    card["parity_vs_torch"] = parity
    card["metrics"]["wall_seconds"] = round(time.time() - t0, 1)
    card["metrics"]["cpu_seconds"] = round(time.process_time() - c0, 1)
    card["metrics"]["threads"] = cfg.threads
    out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {out} ({card['bytes']} bytes; best epoch {metrics['best']['epoch']}: root top1 "
        f"{metrics['best']['root_top1']:.3f}, anomaly F1 {metrics['best']['anomaly_f1']:.3f}; "
        f"ONNX parity max |diff| {parity['max_abs_diff']:.2e}; {time.time() - t0:.0f}s in all)")
    return card


@torch.no_grad()
def check_parity(model: EventGraphReasoner, path: Path, data: Dataset, graphs: int = 8) -> dict[str, float]:
    """Largest absolute difference between torch and ONNX Runtime outputs on a few validation graphs."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    emb = torch.from_numpy(data.emb)
    worst = 0.0
    for s in (data.val or data.train)[:graphs]:
        bt = _collate([s], emb)
        ref = model(bt["emb"], bt["x"], bt["t"], bt["svc"], bt["host"], bt["cooc"], bt["mask"])
        feeds = {k: bt[k].numpy() for k in ("emb", "x", "t", "svc", "host", "cooc", "mask")}
        got = sess.run(None, feeds)
        for a, b in zip(ref, got, strict=True):
            worst = max(worst, float(np.max(np.abs(a.numpy() - b))) if b.size else 0.0)
    return {"max_abs_diff": worst, "graphs": min(graphs, len(data.val or data.train))}


__all__ = ["TrainConfig", "build_dataset", "check_parity", "run", "train", "write_model"]
