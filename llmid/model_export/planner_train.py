"""Training of the recovery planner: A2C over recovery episodes with the paper's joint loss, ONNX export, card.

Episodes: each training incident (`evaluation.planner_data`, "train" phrasings, low seeds) starts with every
candidate that has a target available; the policy samples an action, the env's outcome for it gives the reward
(time lost, side effects, +1 when fixed); a fixed fault or an escalation ends the episode, otherwise the tried
action is masked out and the policy acts again (up to `steps`). Loss per batch (Eq. 12):

    L = λ1 CE(fault) + λ2 contrast + [actor + ½ critic (G − V)² − η entropy]
        + NLL(outcome | E[Beta]) − E_Beta[log p(outcome)] + λ3 KL(Beta || Beta(1, 1))

The actor term is A2C's advantage-weighted −log π of the sampled action plus a policy-improvement cross-entropy
towards softmax(Q(s, ·) / τ): the env tried every candidate, so each one's reward is known, which keeps the policy
from collapsing onto escalation before it has found the fix. The Beta terms see the outcome of every
available candidate in every visited state (the env tried each once from the same point), so the confidence is
calibrated on all actions, not only the sampled ones. Deterministic for a seed (torch seeded, one thread by
default).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from llmid.engine.planner_features import (
    FEATURE_DIM,
    JOINT,
    N_EVENT,
    N_JOINT,
    TARGET_KINDS,
    event_swap_columns,
    swap_events,
)
from llmid.evaluation.planner_data import FAULT_NAMES, TRAIN_SCENARIOS, load_or_build
from llmid.model_export.planner_model import (
    EnsembleWrapper,
    ExportWrapper,
    ModelConfig,
    PlannerNet,
    beta_kl,
    expected_loglik,
    supcon,
)

ESCALATE = N_JOINT - 1
NEG_Q = -1e4
MODELS = Path(__file__).resolve().parents[1] / "models"


@dataclass(slots=True)
class TrainConfig:
    scenarios: int = TRAIN_SCENARIOS
    epochs: int = 150
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    steps: int = 3
    gamma: float = 0.9
    entropy: float = 0.01
    mac: float = 1.0
    """Weight of the policy-improvement term (cross-entropy to softmax(Q / tau))."""
    tau: float = 0.1
    lambda_fault: float = 0.5
    lambda_contrast: float = 0.2
    lambda_kl: float = 0.02
    seed: int = 0
    threads: int = 1
    cache: str | None = None
    ensemble: int = 1
    """Members trained with seeds seed, seed + 1, ...; the exported policy and confidence are their average."""
    misrank: float = 0.25
    """Share of training episodes shown with the reasoner's top two events swapped (`_misranked`), scores kept
    in rank order: the planner must not trust that the top-ranked event is the cause."""
    calibration: int = 300
    """Validation scenarios ("dev" wording, seeds 500,000+) the exported confidence is Platt-calibrated on
    (`calibrate`); 0 = none. Not with phrasings "fit", whose validation is that split."""
    phrasings: str = "train"
    """Wording split of the training scenarios: "train", or "fit" (its share without the "dev" wording, for a
    model whose settings are then chosen on `llmid eval planner --validation`)."""
    model: ModelConfig = field(default_factory=ModelConfig)

    @classmethod
    def tiny(cls) -> TrainConfig:
        return cls(scenarios=12, epochs=3, batch=8, calibration=2,
                   model=ModelConfig(hidden=16, proj=8, block_dropout=0.0))


def _groups(targets: np.ndarray) -> np.ndarray:
    """Per case and joint action: an id shared by every joint action naming the same (action, target)."""
    out = np.zeros((len(targets), N_JOINT), np.int64)
    for i, t in enumerate(targets):
        names = json.loads(str(t)) or [None] * N_JOINT
        ids: dict[tuple[str, str | None], int] = {}
        for j in range(N_JOINT):
            out[i, j] = ids.setdefault((JOINT[j][0], names[j]), len(ids))
    return out


def _misranked(rows: torch.Tensor, tensors: list[torch.Tensor], cols: torch.Tensor) -> list[torch.Tensor]:
    """The same incidents as if the reasoner had ranked its second event first (`rows`: which ones): the two
    event blocks trade places, the scores stay in rank order, and every per-action tensor follows its event
    (`cols`: `event_swap_columns(1)`). Reasoner misranks are where held-out incidents fail; in-sample ones are
    rare, so they are simulated."""
    x, *per_action = tensors
    if not bool(rows.any()):
        return tensors
    x = x.clone()
    x[rows] = torch.from_numpy(swap_events(x[rows].numpy(), 1, keep_scores=True))
    out = [x]
    for t in per_action:
        t = t.clone()
        t[rows] = t[rows][:, cols]
        out.append(t)
    return out


def _rollout_loss(net: PlannerNet, x: torch.Tensor, avail0: torch.Tensor, fixed: torch.Tensor,
                  reward: torch.Tensor, fault: torch.Tensor, groups: torch.Tensor, cfg: TrainConfig,
                  gen: torch.Generator) -> dict[str, torch.Tensor]:
    """One batch of episodes under the current policy, and the joint loss over the visited states."""
    b = x.shape[0]
    avail = avail0.clone()
    alive = torch.ones(b, dtype=torch.bool)
    logps, values, rewards, alives, ents, macs = [], [], [], [], [], []
    conf_nll = torch.zeros(())
    elbo = torch.zeros(())
    first: dict[str, torch.Tensor] | None = None
    for _ in range(cfg.steps):
        out = net(x, avail)
        if first is None:
            first = out
        logp_all = torch.log_softmax(out["logits"], dim=-1)
        probs = logp_all.exp()
        a = torch.multinomial(probs.detach(), 1, generator=gen).squeeze(1)
        logps.append(logp_all.gather(1, a[:, None]).squeeze(1))
        ents.append(-(probs * logp_all).sum(-1))
        values.append(out["value"])
        # Policy-improvement term (MPO/AWR style): the env's outcome of every candidate is known, so the actor is
        # also pulled towards the Boltzmann policy of Q(s, a) = r(a) + γ V(s) (γ V only when a does not end the
        # episode). Unlike the sampled policy gradient, this does not vanish for actions the policy has stopped
        # trying, so it cannot collapse onto escalation before it has found the fix.
        ends = fixed.clone()
        ends[:, ESCALATE] = True
        q = reward + cfg.gamma * (~ends).float() * out["value"].detach()[:, None]
        q = torch.where(avail > 0.5, q, torch.full_like(q, NEG_Q))
        target = torch.softmax(q / cfg.tau, dim=-1).detach()
        macs.append(-(target * logp_all).sum(-1))
        r = reward.gather(1, a[:, None]).squeeze(1)
        rewards.append(torch.where(alive, r, torch.zeros_like(r)))
        alives.append(alive.clone())
        # Confidence of every available candidate in this state: outcome known from the env.
        m = (avail > 0.5) & alive[:, None]
        y = fixed.float()
        mean = out["mean"].clamp(1e-5, 1 - 1e-5)
        nll = F.binary_cross_entropy(mean, y, reduction="none")
        conf_nll = conf_nll + (nll * m).sum() / m.sum().clamp_min(1)
        el = -expected_loglik(out["alpha"], out["beta"], y) + cfg.lambda_kl * beta_kl(out["alpha"], out["beta"])
        elbo = elbo + (el * m).sum() / m.sum().clamp_min(1)
        done = fixed.gather(1, a[:, None]).squeeze(1) | (a == ESCALATE)
        alive = alive & ~done
        same = groups == groups.gather(1, a[:, None])  # the same action on the same target, however named
        avail = avail * (~same).float()
        if not bool(alive.any()):
            break
    # Returns and advantages (A2C, Monte-Carlo returns over the short episode).
    g = torch.zeros(b)
    returns = []
    for r in reversed(rewards):
        g = r + cfg.gamma * g
        returns.append(g)
    returns.reverse()
    actor = critic = ent = torch.zeros(())
    for lp, v, ret, al, e, mac in zip(logps, values, returns, alives, ents, macs, strict=True):
        w = al.float()
        adv = (ret - v).detach()
        actor = actor + -(lp * adv * w).sum() / b + cfg.mac * (mac * w).sum() / b
        critic = critic + ((ret - v) ** 2 * w).sum() / b
        ent = ent + (e * w).sum() / b
    assert first is not None
    ce = F.cross_entropy(first["fault"], fault)
    con = supcon(first["z"], fault)
    rl = actor + 0.5 * critic - cfg.entropy * ent
    total = cfg.lambda_fault * ce + cfg.lambda_contrast * con + rl + conf_nll + elbo
    return {"total": total, "rl": rl.detach(), "fault": ce.detach(), "contrast": con.detach(),
            "conf": conf_nll.detach(), "elbo": elbo.detach()}


def train(cfg: TrainConfig, data: dict[str, np.ndarray], log: Callable[[str], None] | None = None) -> PlannerNet:
    """Train on the detected cases of `data` (the arrays of `planner_data.build_arrays`)."""
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    keep = data["detected"]
    x = torch.from_numpy(data["x"][keep])
    avail = torch.from_numpy(data["mask"][keep].astype(np.float32))
    fixed = torch.from_numpy(data["fixed"][keep])
    reward = torch.from_numpy(data["reward"][keep].astype(np.float32))
    fault = torch.from_numpy(data["fault"][keep])
    groups = torch.from_numpy(_groups(data["targets"][keep]))
    cfg.model.n_faults = len(FAULT_NAMES)
    cols = torch.from_numpy(event_swap_columns(1))
    two = x[:, N_EVENT:2 * N_EVENT].abs().sum(1) > 0  # has a second event
    net = PlannerNet(cfg.model)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = x.shape[0]
    for ep in range(cfg.epochs):
        net.train()
        perm = torch.randperm(n, generator=gen)
        agg: dict[str, float] = {}
        for s in range(0, n, cfg.batch):
            idx = perm[s: s + cfg.batch]
            rows = (torch.rand(len(idx), generator=gen) < cfg.misrank) & two[idx]
            bx, bavail, bfixed, breward, bgroups = _misranked(
                rows, [x[idx], avail[idx], fixed[idx], reward[idx], groups[idx]], cols)
            losses = _rollout_loss(net, bx, bavail, bfixed, breward, fault[idx], bgroups, cfg, gen)
            opt.zero_grad()
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            for k, v in losses.items():
                agg[k] = agg.get(k, 0.0) + float(v.detach()) * len(idx) / n
        if log and (ep + 1) % max(1, cfg.epochs // 10) == 0:
            log(f"  epoch {ep + 1}/{cfg.epochs}: " + ", ".join(f"{k} {v:.3f}" for k, v in agg.items()))
    net.eval()
    return net


def export_onnx(net: PlannerNet | list[PlannerNet], path: str | Path) -> None:
    """Write the runtime graph (final policy, Beta parameters, value, fault classes) with a dynamic batch; a list
    of nets is exported as their ensemble (`EnsembleWrapper`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nets = net if isinstance(net, list) else [net]
    wrapper = (EnsembleWrapper(nets) if len(nets) > 1 else ExportWrapper(nets[0])).eval()
    x = torch.zeros(2, FEATURE_DIM)
    avail = torch.ones(2, N_JOINT)
    torch.onnx.export(wrapper, (x, avail), str(path), input_names=["x", "avail"],
                      output_names=["policy", "alpha", "beta", "value", "fault"],
                      dynamic_axes={n: {0: "batch"} for n in ("x", "avail", "policy", "alpha", "beta", "value",
                                                              "fault")},
                      opset_version=17, dynamo=False)


def parity(net: PlannerNet | list[PlannerNet], path: str | Path, data: dict[str, np.ndarray]) -> float:
    """Largest |torch − ONNX Runtime| difference of the policy and Beta outputs on training states."""
    from llmid.engine.runtime import make_session

    sess = make_session(path, "cpu")
    x = data["x"][:32]
    avail = data["mask"][:32].astype(np.float32)
    if len(x) == 0:
        return 0.0
    got = sess.run(None, {"x": x, "avail": avail})
    nets = net if isinstance(net, list) else [net]
    with torch.no_grad():
        ref = (EnsembleWrapper(nets) if len(nets) > 1 else ExportWrapper(nets[0]))(torch.from_numpy(x),
                                                                                   torch.from_numpy(avail))
    return float(max(np.abs(g - r.numpy()).max() for g, r in zip(got[:3], ref[:3], strict=True)))


def write_card(path: str | Path, cfg: TrainConfig, data: dict[str, np.ndarray], metrics: dict[str, Any],
               seconds: float, command: str) -> Path:
    """The model card beside the ONNX file (`planner.onnx` → `planner.json`)."""
    path = Path(path)
    blob = path.read_bytes()
    card = {
        "name": path.stem,
        "file": path.name,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
        "task": "recovery action + target kind with Beta(α, β) confidence (LLM-ID Section III.B, Eq. 9-12)",
        "architecture": "actor-critic (A2C) MLP over incident features; per-action Beta prior head; final policy "
                        "∝ π_θ · E[Beta]^κ" + (f"; ensemble of {cfg.ensemble} seeds (mean policy, Beta moment-matched "
                                               "on the mean confidence)" if cfg.ensemble > 1 else ""),
        "config": cfg.model.to_json(),
        "train": {k: v for k, v in asdict(cfg).items() if k not in ("model", "cache")},
        "joint_actions": [list(x) for x in JOINT],
        "target_kinds": list(TARGET_KINDS),
        "fault_classes": list(FAULT_NAMES),
        "feature_dim": FEATURE_DIM,
        "training_data": {
            "source": f"llmid.sim scenarios, phrasings '{cfg.phrasings}', seeds 0..N-1, through the real pipeline",
            "scenarios": int(len(data["seed"])),
            "incidents": int(data["detected"].sum()),
        },
        "metrics": {k: v for k, v in metrics.items() if k != "calibration"},
        "calibration": metrics.get("calibration"),
        "command": command,
        "train_seconds": round(seconds, 1),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }
    out = path.with_suffix(".json")
    out.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return out


def calibrate(path: Path, cfg: TrainConfig, log: Callable[[str], None] | None = None) -> dict[str, float]:
    """Platt scaling of the exported model's confidence on the validation split, through the real pipeline
    like the evaluation: the network learns on simulated misranks too, so its raw Beta means are conservative
    on incidents the reasoner ranked right. The card carries (a, b); `PlannerModel` applies them to every
    Beta it returns, keeping its concentration. Fitted on the top recommendation's outcome."""
    from llmid.engine.beta import platt_apply, platt_fit
    from llmid.evaluation.planner_eval import calibration, model_steps

    cache = Path(cfg.cache).parent / f"dev-{cfg.calibration}.npz" if cfg.cache else None
    if log:
        log(f"calibrating the confidence on {cfg.calibration} validation scenarios (dev wording)")
    dev = load_or_build("dev", cfg.calibration, cache, log=log)
    tops = [s[0] for s in model_steps(path, dev) if s]
    alpha = np.array([t.confidence.alpha for t in tops])
    beta = np.array([t.confidence.beta for t in tops])
    hit = np.array([t.fixed for t in tops], bool)
    mean = alpha / (alpha + beta)
    a, b = platt_fit(mean.tolist(), hit.tolist())
    alpha2, beta2 = platt_apply(alpha, beta, a, b)  # as PlannerModel will: same concentration and floor
    after = alpha2 / (alpha2 + beta2)
    return {"a": a, "b": b, "split": "dev", "scenarios": cfg.calibration,
            "ece_before": round(calibration(mean, hit)[0], 4), "ece_after": round(calibration(after, hit)[0], 4)}


def run(cfg: TrainConfig, out: str | Path | None = None, *, command: str = "llmid train planner",
        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Data → train → export → parity → card. Returns the card's essentials."""
    t0 = time.time()
    out = Path(out) if out else MODELS / "planner.onnx"
    if log:
        log(f"building {cfg.scenarios} training scenarios (phrasings '{cfg.phrasings}')")
    data = load_or_build(cfg.phrasings, cfg.scenarios, cfg.cache, log=log)
    if log:
        log(f"{int(data['detected'].sum())} incidents; training {cfg.epochs} epochs")
    nets = []
    for k in range(max(1, cfg.ensemble)):
        member = replace(cfg, seed=cfg.seed + k)
        if log and cfg.ensemble > 1:
            log(f"ensemble member {k + 1}/{cfg.ensemble} (seed {member.seed})")
        nets.append(train(member, data, log))
    export_onnx(nets, out)
    diff = parity(nets, out, data)
    metrics = {"onnx_parity_max_abs": diff}
    # the card is written first without a calibration, so that `calibrate` reads the raw confidence and never
    # a stale calibration left by an earlier model at this path
    card = write_card(out, cfg, data, metrics, time.time() - t0, command)
    if cfg.calibration and cfg.phrasings == "train":
        metrics["calibration"] = calibrate(out, cfg, log)
        card = write_card(out, cfg, data, metrics, time.time() - t0, command)
    return {"model": str(out), "card": str(card), "parity": diff, "seconds": round(time.time() - t0, 1)}


__all__ = ["TrainConfig", "export_onnx", "parity", "run", "train", "write_card"]
