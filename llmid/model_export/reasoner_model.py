"""The event-graph reasoner in torch: bidirectional attention over a window's events, R rounds of message passing.

Paper (LLM-ID, Section III.A, Eq. 5-8) → here:

- nodes are the events of a window (template × service); a node starts as
  `h0 = MLP([LayerNorm(W_e · e_template), x])`: the language-model embedding of its template projected to
  `proj` dimensions, and the numeric features of `engine.graph.NODE_FEATURES` (level, novelty, frequency change
  against the normal period, first-occurrence offset, ...);
- edges carry `engine.graph.EDGE_FEATURES`, computed here from the inputs: does i precede j, the signed log time
  lag, closeness, same service, same host, co-occurrence, and the cosine of the two template embeddings;
- the *bidirectional attention matrix*: in every round each node attends, with `heads` heads, (a) forward to the
  events before it (its candidate causes) and (b) backward to the events after it (its candidate effects); the
  attention logits are `q_j · k_i / sqrt(d)` plus a learned bias from the edge features of that direction;
- *R rounds of message passing* with shared weights: `h ← LN(h + W_o [m_fwd; m_bwd])`, `h ← LN(h + FFN(h))`;
- heads: the *root-cause score* of every node (a logit; softmax over the window's nodes), whether the node is
  part of the fault (the chain), and the window's *anomaly score* (attention + max pooling);
- the *influence* matrix is the forward attention averaged over rounds and heads (`influence[j, i]`: how much
  effect j drew from cause i); the runtime follows it from the root cause to reconstruct the chain.

Inputs (batch b, nodes n): `emb` (b, n, 384) unit template embeddings, `x` (b, n, F), `t` (b, n) seconds to
first occurrence, `svc`/`host` (b, n) int64 ids, `cooc` (b, n, n), `mask` (b, n) 1 for real nodes. Outputs:
`anomaly` (b,) probability, `root_logits` (b, n) (-1e9 on padding), `member` (b, n) probability,
`influence` (b, n, n).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from llmid.engine.graph import CLOSE_SECONDS, EDGE_FEATURES, NODE_FEATURES

NEG = -1e9

SIM_FEATURES = ("max_cos_to_later_candidate", "mean_cos_to_later_candidates", "max_cos_to_earlier_candidate")
"""Node inputs computed in the model from the embeddings: how much an event's template resembles the
anomalous-looking events after it (its candidate effects) and before it (its candidate causes)."""
CANDIDATE = NODE_FEATURES.index("candidate")


@dataclass(slots=True)
class ReasonerConfig:
    d: int = 64
    heads: int = 4
    rounds: int = 3
    proj: int = 32
    use_embeddings: bool = True
    dropout: float = 0.1
    emb_dropout: float = 0.5
    """Training only: a node's template embedding is zeroed with this probability, so the model cannot lean on
    recognising wordings and must also read the structure (what follows an event, how closely, where)."""
    emb_dim: int = 384

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _mlp(i: int, h: int, o: int, dropout: float = 0.0) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.GELU(), nn.Dropout(dropout), nn.Linear(h, o))


class EventGraphReasoner(nn.Module):
    def __init__(self, cfg: ReasonerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, h = cfg.d, cfg.heads
        f = len(NODE_FEATURES)
        e = len(EDGE_FEATURES)
        self.emb_proj = nn.Sequential(nn.Linear(cfg.emb_dim, cfg.proj), nn.LayerNorm(cfg.proj))
        self.inp = _mlp(cfg.proj + f + len(SIM_FEATURES), d, d, cfg.dropout)
        self.in_norm = nn.LayerNorm(d)
        self.edge_fwd = nn.Linear(e, h)  # linear in the edge features: n² pairs make a hidden layer costly
        self.edge_bwd = nn.Linear(e, h)
        self.qkv_fwd = nn.Linear(d, 3 * d)
        self.qkv_bwd = nn.Linear(d, 3 * d)
        self.out = nn.Linear(2 * d, d)
        self.ln1 = nn.LayerNorm(d)
        self.ffn = _mlp(d, 2 * d, d, cfg.dropout)
        self.ln2 = nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)
        self.rc_head = _mlp(2 * d + f, d, 1)
        self.member_head = _mlp(d + f, d, 1)
        self.pool_score = nn.Linear(d, 1)
        self.anom_head = _mlp(2 * d, d, 1)

    def edges(self, emb: torch.Tensor, t: torch.Tensor, svc: torch.Tensor, host: torch.Tensor,
              cooc: torch.Tensor) -> torch.Tensor:
        """(b, n, n, E) features of the ordered pair (i, j), in EDGE_FEATURES order."""
        dt = t[:, None, :] - t[:, :, None]  # t_j - t_i
        precedes = (dt > 0).to(t.dtype)
        lag = torch.sign(dt) * torch.log1p(dt.abs()) / math.log1p(600.0)
        lag = lag.clamp(-1.5, 1.5)
        close = (dt.abs() <= CLOSE_SECONDS).to(t.dtype)
        same_svc = (svc[:, :, None] == svc[:, None, :]).to(t.dtype)
        same_host = (host[:, :, None] == host[:, None, :]).to(t.dtype)
        cos = torch.matmul(emb, emb.transpose(1, 2)) if self.cfg.use_embeddings else torch.zeros_like(cooc)
        return torch.stack([precedes, lag, close, same_svc, same_host, cooc, cos], dim=-1)

    def _attend(self, h: torch.Tensor, qkv: nn.Linear, bias: torch.Tensor, allowed: torch.Tensor,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, d = h.shape
        heads = self.cfg.heads
        q, k, v = qkv(h).view(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)  # each (b, H, n, dh)
        logits = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d // heads)  # (b, H, j, i)
        logits = logits + bias.permute(0, 3, 1, 2)
        logits = logits.masked_fill(~allowed[:, None], NEG)
        att = torch.softmax(logits, dim=-1)
        msg = torch.matmul(att, v).permute(0, 2, 1, 3).reshape(b, n, d)
        return msg, att

    def forward(self, emb: torch.Tensor, x: torch.Tensor, t: torch.Tensor, svc: torch.Tensor, host: torch.Tensor,
                cooc: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not self.cfg.use_embeddings:
            emb = torch.zeros_like(emb)
        elif self.training and self.cfg.emb_dropout > 0:
            keep = (torch.rand(emb.shape[0], emb.shape[1], 1) >= self.cfg.emb_dropout).to(emb.dtype)
            emb = emb * keep
        m = mask > 0.5
        ef = self.edges(emb, t, svc, host, cooc)  # [i, j]
        cand = x[..., CANDIDATE] * mask  # (b, n)
        later = ef[..., 0] * cand[:, None, :]  # [i, j]: j is a candidate after i
        earlier = ef[..., 0].transpose(1, 2) * cand[:, None, :]  # [i, j]: j is a candidate before i
        cos = ef[..., 6]
        sims = torch.stack([(cos * later - (1 - later) * 2).max(dim=-1).values.clamp(min=-1.0),
                            (cos * later).sum(-1) / later.sum(-1).clamp(min=1.0),
                            (cos * earlier - (1 - earlier) * 2).max(dim=-1).values.clamp(min=-1.0)], dim=-1)
        pos = torch.cumsum(torch.ones_like(t), dim=1)  # shape-generic identity (exports with a dynamic n)
        eye = pos[:, :, None] == pos[:, None, :]
        pair = m[:, :, None] & m[:, None, :]
        before = ef[..., 0] > 0.5  # [i, j]: i precedes j
        allowed_fwd = (before.transpose(1, 2) | eye) & pair  # [j, i]: j attends to earlier i
        allowed_bwd = (before | eye) & pair  # [j, i]: j attends to later i (j precedes i)
        bias_fwd = self.edge_fwd(ef).transpose(1, 2)  # features of i→j, indexed [j, i]
        bias_bwd = self.edge_bwd(ef)  # features of j→i, indexed [j, i]
        h0 = self.in_norm(self.inp(torch.cat([self.emb_proj(emb), x, sims], dim=-1)))
        h = h0
        influence = torch.zeros_like(cooc)
        for _ in range(self.cfg.rounds):
            mf, af = self._attend(h, self.qkv_fwd, bias_fwd, allowed_fwd)
            mb, _ = self._attend(h, self.qkv_bwd, bias_bwd, allowed_bwd)
            h = self.ln1(h + self.drop(self.out(torch.cat([mf, mb], dim=-1))))
            h = self.ln2(h + self.drop(self.ffn(h)))
            influence = influence + af.mean(1)
        influence = influence / max(self.cfg.rounds, 1)
        rc = self.rc_head(torch.cat([h, h0, x], dim=-1)).squeeze(-1).masked_fill(~m, NEG)
        member = torch.sigmoid(self.member_head(torch.cat([h, x], dim=-1)).squeeze(-1))
        w = torch.softmax(self.pool_score(h).squeeze(-1).masked_fill(~m, NEG), dim=-1)
        attn_pool = torch.einsum("bn,bnd->bd", w, h)
        max_pool = h.masked_fill(~m[..., None], NEG).max(dim=1).values
        anomaly = torch.sigmoid(self.anom_head(torch.cat([attn_pool, max_pool], dim=-1)).squeeze(-1))
        return anomaly, rc, member, influence


INPUT_NAMES = ("emb", "x", "t", "svc", "host", "cooc", "mask")
OUTPUT_NAMES = ("anomaly", "root_logits", "member", "influence")


def export_onnx(model: EventGraphReasoner, path: str) -> None:
    """Export with dynamic batch and node axes (the runtime feeds one window: batch 1)."""
    model.eval()
    n = 5
    f = len(NODE_FEATURES)
    args = (torch.randn(1, n, model.cfg.emb_dim), torch.rand(1, n, f), torch.arange(n, dtype=torch.float32)[None],
            torch.zeros(1, n, dtype=torch.long), torch.zeros(1, n, dtype=torch.long), torch.zeros(1, n, n),
            torch.ones(1, n))
    axes: dict[str, dict[int, str]] = {"emb": {0: "b", 1: "n"}, "x": {0: "b", 1: "n"}, "t": {0: "b", 1: "n"},
                                       "svc": {0: "b", 1: "n"}, "host": {0: "b", 1: "n"},
                                       "cooc": {0: "b", 1: "n", 2: "n"}, "mask": {0: "b", 1: "n"},
                                       "anomaly": {0: "b"}, "root_logits": {0: "b", 1: "n"},
                                       "member": {0: "b", 1: "n"}, "influence": {0: "b", 1: "n", 2: "n"}}
    with torch.no_grad():
        torch.onnx.export(model, args, path, input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                          dynamic_axes=axes, opset_version=17, do_constant_folding=True, dynamo=False)
