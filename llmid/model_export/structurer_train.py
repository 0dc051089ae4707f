"""Training of the structuring encoder on Loghub-2k ground truth (+ fresh-value augmentation).

Deterministic for a seed (torch and Python RNGs seeded, single-process data order, CPU). Lines are sampled per
ground-truth template (`sample_examples`) so every event counts, and in every epoch each variable of a line is
replaced, with probability `augment`, by a fresh random value of the same shape (the line's labels do not
change), so the model learns what makes a value a value, not the values of these 2,000-line samples.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from llmid.engine.structurer import MAX_TOKENS, encode_lines
from llmid.model_export.structurer_data import (
    Example,
    fresh_values,
    line_targets,
    load_examples,
    sample_examples,
    seen_labels,
    swap_words,
    word_pool,
)
from llmid.model_export.structurer_model import ModelConfig, StructurerNet


@dataclass
class TrainConfig:
    epochs: int = 6
    batch_size: int = 32
    lr: float = 3e-3
    per_template: int = 16
    augment: float = 0.5
    seed: int = 13
    threads: int = 2
    contrastive: float = 0.2
    temperature: float = 0.1
    max_examples: int | None = None
    swap_words: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_json()
        return d


@dataclass
class Batch:
    inputs: dict[str, torch.Tensor]
    char_y: torch.Tensor
    char_w: torch.Tensor
    tok_y: torch.Tensor
    join_y: torch.Tensor
    join_w: torch.Tensor
    tmask: torch.Tensor
    groups: torch.Tensor


def make_batch(examples: list[Example], rng: random.Random | None, augment: float,
               pool: list[str] | None = None) -> Batch:
    lines: list[list[str]] = []
    chars: list[list[list[int]]] = []
    joins: list[list[int]] = []
    for ex in examples:
        content, labels = ex.content, ex.labels
        if rng is not None and augment > 0 and rng.random() < augment:
            content = fresh_values(content, labels, rng)
            if pool and rng.random() < 0.5:
                content, labels = swap_words(content, labels, rng, pool)
        toks, lab, jn = line_targets(content, labels)
        lines.append(toks)
        chars.append(lab)
        joins.append(jn)
    feats = encode_lines(lines)
    b, t, c = feats.chars.shape
    char_y = np.zeros((b, t, c), dtype=np.float32)
    tok_y = np.zeros((b, t), dtype=np.float32)
    join_y = np.zeros((b, t), dtype=np.float32)
    join_w = np.zeros((b, t), dtype=np.float32)
    for i, (lab, jn) in enumerate(zip(chars, joins, strict=True)):
        for j, cl in enumerate(lab[:MAX_TOKENS]):
            seen = seen_labels(cl)
            char_y[i, j, :len(seen)] = seen
            tok_y[i, j] = float(any(cl))
            if j > 0:
                join_y[i, j] = jn[j]
                join_w[i, j] = 1.0
    inputs = {k: torch.from_numpy(v) for k, v in feats.inputs().items()}
    char_w = (inputs["chars"] > 0).float()
    return Batch(inputs, torch.from_numpy(char_y), char_w, torch.from_numpy(tok_y), torch.from_numpy(join_y),
                 torch.from_numpy(join_w), char_w[:, :, 0], torch.tensor([ex.group for ex in examples]))


def _supcon(emb: torch.Tensor, groups: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss: lines of one event close, of different events apart."""
    n = emb.shape[0]
    sim = emb @ emb.t() / temperature
    eye = torch.eye(n, dtype=torch.bool)
    sim = sim.masked_fill(eye, -1e4)
    pos = (groups.unsqueeze(0) == groups.unsqueeze(1)) & ~eye
    has = pos.any(1)
    if not bool(has.any()):
        return emb.sum() * 0.0
    logp = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    per = (logp * pos).sum(1) / pos.sum(1).clamp_min(1)
    return -(per[has]).mean()


def batch_loss(model: StructurerNet, batch: Batch, cfg: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    char_logits, tok_logits, join_logits, emb = model(**batch.inputs)
    lc = (F.binary_cross_entropy_with_logits(char_logits, batch.char_y, reduction="none") * batch.char_w).sum() \
        / batch.char_w.sum().clamp_min(1)
    lt = (F.binary_cross_entropy_with_logits(tok_logits, batch.tok_y, reduction="none") * batch.tmask).sum() \
        / batch.tmask.sum().clamp_min(1)
    lj = (F.binary_cross_entropy_with_logits(join_logits, batch.join_y, reduction="none") * batch.join_w).sum() \
        / batch.join_w.sum().clamp_min(1)
    ls = _supcon(emb, batch.groups, cfg.temperature) if cfg.contrastive > 0 else emb.sum() * 0.0
    loss = lc + 0.5 * lt + 0.5 * lj + cfg.contrastive * ls
    return loss, {"char": lc.item(), "tok": lt.item(), "join": lj.item(), "con": ls.item()}


def _batches(examples: list[Example], size: int, rng: random.Random) -> list[list[Example]]:
    """Batches of lines of similar token counts (less padding), in a seeded random order. Each batch mixes
    a few events with several lines each, so the contrastive loss has positives."""
    by_group: dict[int, list[Example]] = {}
    for ex in examples:
        by_group.setdefault(ex.group, []).append(ex)
    chunks: list[list[Example]] = []
    for g in sorted(by_group):
        items = list(by_group[g])
        rng.shuffle(items)
        for i in range(0, len(items), 4):
            chunks.append(items[i:i + 4])
    rng.shuffle(chunks)
    chunks.sort(key=lambda ch: min(len(ex.content.split()), 80) // 4)
    batches: list[list[Example]] = []
    cur: list[Example] = []
    for ch in chunks:
        cur.extend(ch)
        if len(cur) >= size:
            batches.append(cur)
            cur = []
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def train(examples: list[Example], cfg: TrainConfig,
          log: Callable[[str], None] | None = None) -> tuple[StructurerNet, dict[str, Any]]:
    """Train a model on already-loaded examples; returns the model (eval mode) and training statistics."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    rng = random.Random(cfg.seed)
    data = sample_examples(examples, cfg.per_template, cfg.seed)
    if cfg.max_examples is not None and len(data) > cfg.max_examples:
        data = random.Random(cfg.seed).sample(data, cfg.max_examples)
    pool = word_pool(examples) if cfg.swap_words else None
    model = StructurerNet(cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
    total = max(1, steps_per_epoch * cfg.epochs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.15)
    start = time.perf_counter()
    history: list[dict[str, float]] = []
    model.train()
    for epoch in range(cfg.epochs):
        sums: dict[str, float] = {}
        n = 0
        for chunk in _batches(data, cfg.batch_size, rng):
            batch = make_batch(chunk, rng, cfg.augment, pool)
            loss, parts = batch_loss(model, batch, cfg)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
        row = {k: v / max(1, n) for k, v in sums.items()}
        row["epoch"] = epoch + 1
        row["seconds"] = time.perf_counter() - start
        history.append(row)
        if log is not None:
            log(f"epoch {epoch + 1}/{cfg.epochs}: " + " ".join(f"{k}={v:.4f}" for k, v in row.items()
                                                              if k not in ("epoch",)))
    model.eval()
    stats = {"train_lines": len(data), "templates": len({ex.group for ex in data}),
             "systems": sorted({ex.system for ex in data}), "seconds": time.perf_counter() - start,
             "history": history}
    return model, stats


def train_on_systems(data_dir: str, systems: list[str], cfg: TrainConfig,
                     log: Callable[[str], None] | None = None) -> tuple[StructurerNet, dict[str, Any]]:
    examples = load_examples(data_dir, systems)
    return train(examples, cfg, log)


# -- reproducible artefacts: one trained model per (config, training systems, data), cached ----------------
CODE_VERSION = 2
"""Bump when featurisation, labels or model code change in a way that invalidates cached models."""


def default_cache_dir() -> str:
    import os

    return os.environ.get("LLMID_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "llmid",
                                                            "structurer")


def data_fingerprint(data_dir: str, systems: list[str], gt: str = "corrected") -> str:
    """Hash of the ground-truth files a model is trained on (so a changed file retrains)."""
    import hashlib

    from llmid.evaluation.parsing_eval import gt_paths

    h = hashlib.blake2b(digest_size=12)
    for s in sorted(systems):
        path = gt_paths(data_dir, s, gt)[1]
        h.update(s.encode())
        with open(path, "rb") as fh:
            h.update(hashlib.blake2b(fh.read(), digest_size=12).digest())
    return h.hexdigest()


def model_key(cfg: TrainConfig, data_dir: str, systems: list[str]) -> str:
    import hashlib
    import json

    blob = json.dumps({"cfg": cfg.to_json(), "systems": sorted(systems), "code": CODE_VERSION,
                       "data": data_fingerprint(data_dir, systems)}, sort_keys=True)
    return hashlib.blake2b(blob.encode(), digest_size=10).hexdigest()


def cached_model(data_dir: str, systems: list[str], cfg: TrainConfig, cache_dir: str | None = None,
                 log: Callable[[str], None] | None = None) -> tuple[str, dict[str, Any]]:
    """(ONNX path, training stats) of a model trained on `systems` with `cfg`: from the cache when this exact
    configuration, code version and data were trained before, else trained now and cached."""
    import json
    import os

    from llmid.model_export.structurer_export import export_onnx, save_checkpoint

    cache = cache_dir or default_cache_dir()
    key = model_key(cfg, data_dir, systems)
    base = os.path.join(cache, key)
    onnx_path, meta_path = base + ".onnx", base + ".json"
    if os.path.isfile(onnx_path) and os.path.isfile(meta_path):
        with open(meta_path, encoding="utf-8") as fh:
            return onnx_path, json.load(fh)
    os.makedirs(cache, exist_ok=True)
    model, stats = train_on_systems(data_dir, systems, cfg, log)
    save_checkpoint(model, base + ".pt", {"train": cfg.to_json()})
    export_onnx(model, onnx_path + ".tmp")
    os.replace(onnx_path + ".tmp", onnx_path)
    stats = {**stats, "key": key, "config": cfg.to_json()}
    with open(meta_path, "w", encoding="utf-8") as fh:
        json.dump(stats, fh)
    return onnx_path, stats
