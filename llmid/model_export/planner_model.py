"""The recovery planner's torch module (paper Section III.B, Eq. 9-12): actor-critic with Beta confidence.

One shared encoder over [incident features, available-action mask] (the mask carries which candidates were
already tried, so a second step is a different state) feeds five heads:

- actor: logits of π_θ(a|s) over the joint (action, target kind) space (Eq. 9);
- critic: V_ω(s);
- prior: per-action Beta(α(s), β(α)) — the state-conditioned confidence that the action fixes the fault (Eq. 10);
- fault classifier and a contrast projection (auxiliary losses of the joint objective, Eq. 12).

The final policy is the actor modulated by the expected confidence (Eq. 11):
π(a|s) ∝ π_θ(a|s) · E[Beta(α_a, β_a)]^κ over the available actions; κ = 0 is the unshaped ablation.
The exported ONNX graph computes exactly this (inputs `x`, `avail`; outputs `policy`, `alpha`, `beta`, `value`,
`fault`), so the runtime needs only ONNX Runtime and numpy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from llmid.engine.planner_features import EMB_DIM, EVENTS, FEATURE_DIM, N_EVENT, N_JOINT

NEG = -1e4


@dataclass(slots=True)
class ModelConfig:
    hidden: int = 128
    proj: int = 32
    dropout: float = 0.2
    kappa: float = 1.0
    """Exponent of the Beta-mean shaping; 0 = unshaped policy."""
    block_dropout: float = 0.5
    """Training only: drop each template embedding block (per event, and the chain's) whole with this
    probability, so no decision hangs on one wording."""
    evidence: bool = False
    """Add the actor's probability as pseudo-counts to each action's Beta (α += c·π, β += c·(1 − π))."""
    n_faults: int = 12
    """Fault classes of the auxiliary head (set from the training data)."""

    def to_json(self) -> dict[str, object]:
        return asdict(self)


class PlannerNet(nn.Module):
    """Actor-critic with a Beta confidence prior; `forward` returns everything the losses and ONNX need."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        h = cfg.hidden
        self.encoder = nn.Sequential(
            nn.Dropout(cfg.dropout), nn.Linear(FEATURE_DIM + N_JOINT, h), nn.ReLU(),
            nn.Dropout(cfg.dropout), nn.Linear(h, h), nn.ReLU(),
        )
        self.actor = nn.Linear(h, N_JOINT)
        self.critic = nn.Linear(h, 1)
        self.prior = nn.Linear(h, 2 * N_JOINT)
        self.fault = nn.Linear(h, cfg.n_faults)
        self.proj = nn.Linear(h, cfg.proj)
        self.evidence_weight = nn.Parameter(torch.tensor(1.0))

    def _drop_blocks(self, x: torch.Tensor) -> torch.Tensor:
        starts = [k * N_EVENT for k in range(EVENTS)] + [EVENTS * N_EVENT]  # templates; not the roles
        keep = (torch.rand(x.shape[0], len(starts)) >= self.cfg.block_dropout).float()
        scale = torch.ones_like(x)
        for b, s0 in enumerate(starts):
            scale[:, s0:s0 + EMB_DIM] = keep[:, b:b + 1]
        return x * scale

    def forward(self, x: torch.Tensor, avail: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.training and self.cfg.block_dropout > 0:
            x = self._drop_blocks(x)
        h = self.encoder(torch.cat([x, avail], dim=-1))
        logits = self.actor(h)
        ab = F.softplus(self.prior(h)) + 0.05
        alpha, beta = ab[..., :N_JOINT], ab[..., N_JOINT:]
        if self.cfg.evidence:
            # The actor's own preference as pseudo-counts on top of the state-conditioned prior (detached: the
            # confidence loss never trains the actor).
            pi = torch.softmax(torch.where(avail > 0.5, logits, torch.full_like(logits, NEG)), dim=-1).detach()
            c = F.softplus(self.evidence_weight)
            alpha, beta = alpha + c * pi, beta + c * (1.0 - pi)
        mean = alpha / (alpha + beta)
        # Eq. 11: shaping by the expected confidence (detached: the prior learns only from outcomes).
        shaped = logits + self.cfg.kappa * torch.log(mean.detach().clamp_min(1e-6))
        masked = torch.where(avail > 0.5, shaped, torch.full_like(shaped, NEG))
        return {"logits": masked, "alpha": alpha, "beta": beta, "mean": mean,
                "value": self.critic(h).squeeze(-1), "fault": self.fault(h), "z": F.normalize(self.proj(h), dim=-1)}


class ExportWrapper(nn.Module):
    """The runtime graph: probabilities of the final policy, the Beta parameters, the value and fault classes."""

    def __init__(self, net: PlannerNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, avail: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(x, avail)
        return (torch.softmax(out["logits"], dim=-1), out["alpha"], out["beta"], out["value"],
                torch.softmax(out["fault"], dim=-1))


class EnsembleWrapper(nn.Module):
    """The runtime graph of several independently seeded nets: the mean of their final policies, and per action
    the Beta whose mean is the members' mean confidence and whose concentration α + β is their mean
    concentration (moment-matched on the mean), with the mean value and fault probabilities. One member is
    exactly `ExportWrapper`."""

    def __init__(self, nets: list[PlannerNet]) -> None:
        super().__init__()
        self.members = nn.ModuleList([ExportWrapper(n) for n in nets])

    def forward(self, x: torch.Tensor, avail: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outs = [m(x, avail) for m in self.members]
        if len(outs) == 1:
            return outs[0]
        k = float(len(outs))
        policy = sum(o[0] for o in outs) / k
        mean = sum(o[1] / (o[1] + o[2]) for o in outs) / k
        conc = sum(o[1] + o[2] for o in outs) / k
        value = sum(o[3] for o in outs) / k
        fault = sum(o[4] for o in outs) / k
        return policy, mean * conc, (1.0 - mean) * conc, value, fault


def beta_kl(a: torch.Tensor, b: torch.Tensor, a0: float = 1.0, b0: float = 1.0) -> torch.Tensor:
    """KL(Beta(a, b) || Beta(a0, b0)), elementwise (the regulariser of Eq. 12)."""
    a0t, b0t = torch.full_like(a, a0), torch.full_like(b, b0)
    lbeta = torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)
    lbeta0 = torch.lgamma(a0t) + torch.lgamma(b0t) - torch.lgamma(a0t + b0t)
    return (lbeta0 - lbeta + (a - a0t) * torch.digamma(a) + (b - b0t) * torch.digamma(b)
            + (a0t - a + b0t - b) * torch.digamma(a + b))


def expected_loglik(a: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """E_{θ~Beta(a,b)}[log Bernoulli(y | θ)]: with the KL term, the variational bound on each action's outcome."""
    dab = torch.digamma(a + b)
    return y * (torch.digamma(a) - dab) + (1.0 - y) * (torch.digamma(b) - dab)


def supcon(z: torch.Tensor, labels: torch.Tensor, tau: float = 0.2) -> torch.Tensor:
    """Causal contrast: incidents with the same underlying fault are pulled together, others pushed apart."""
    n = z.shape[0]
    sim = z @ z.T / tau
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, NEG)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    logp = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    cnt = pos.sum(1)
    keep = cnt > 0
    if not bool(keep.any()):
        return z.sum() * 0.0
    return -((logp * pos).sum(1)[keep] / cnt[keep]).mean()


__all__ = ["EnsembleWrapper", "ExportWrapper", "ModelConfig", "PlannerNet", "beta_kl", "expected_loglik", "supcon"]
