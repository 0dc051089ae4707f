"""The structuring encoder of the LLM-ID paper (Section III.A, Eq. 1-4) as a small torch module.

    characters of each token ──► char Bi-LSTM ──► per-character states, token vector (max-pool)
    token vectors ──► token Bi-LSTM ──► h_t
    windows of k ∈ {3, 5, 7} tokens around t:  u_k(t) = W_k · mean(h_{t-k//2 .. t+k//2})            (Eq. 1)
    fuzzy-matching attention against M learned prototype template vectors p_m with widths σ_m:
        a_km(t) = softmax_m( -‖u_k(t) - p_km‖² / (2 σ_km²) )                                     (Eq. 2)
        e_k(t)  = Σ_m a_km(t) · p_km                                                            (Eq. 3)
    token context c_t = W_c [h_t ; e_3(t) ; e_5(t) ; e_7(t)]
    event embedding  E = normalise( W_E Σ_t softmax_t(q · c_t) c_t )                             (Eq. 4)
    heads: per character (variable or not), per token (variable or not; whitespace before it inside a
    variable), per line (E, for grouping).

Ablations (the paper's): `fam=False` replaces Eq. 2-3 by e_k = u_k (mean pooling of the window), and
`windows=(3,)` keeps one scale. Padded batches are exact: the backward LSTMs read sequences reversed by
index tensors computed in numpy (`llmid.engine.structurer.encode_lines`), so padding sits at their end.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from llmid.engine.structurer import N_CHARS


@dataclass
class ModelConfig:
    char_dim: int = 16
    char_hidden: int = 32
    token_hidden: int = 48
    window_dim: int = 48
    prototypes: int = 16
    windows: tuple[int, ...] = (3, 5, 7)
    fam: bool = True
    context_dim: int = 64
    embed_dim: int = 32
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["windows"] = list(self.windows)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModelConfig:
        d = dict(d)
        d["windows"] = tuple(d.get("windows", (3, 5, 7)))
        return cls(**d)


def _gather_seq(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x [N, L, D] reordered along L by idx [N, L]."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class FuzzyMatchingAttention(nn.Module):
    """Eq. 2-3: Gaussian-weighted distances of a window embedding to learned prototypes, softmax-normalised,
    aggregate the prototypes."""

    def __init__(self, dim: int, prototypes: int) -> None:
        super().__init__()
        self.prototypes = nn.Parameter(torch.randn(prototypes, dim) * 0.5)
        self.log_sigma = nn.Parameter(torch.zeros(prototypes))

    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.prototypes
        d2 = (u * u).sum(-1, keepdim=True) - 2 * u @ p.t() + (p * p).sum(-1)  # [B, T, M]
        inv = 0.5 * torch.exp(-2 * self.log_sigma)
        att = torch.softmax(-d2.clamp_min(0) * inv, dim=-1)
        return att @ p, att


class StructurerNet(nn.Module):
    def __init__(self, cfg: ModelConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig()
        self.embed = nn.Embedding(N_CHARS, cfg.char_dim, padding_idx=0)
        self.char_fwd = nn.LSTM(cfg.char_dim + 1, cfg.char_hidden, batch_first=True)
        self.char_bwd = nn.LSTM(cfg.char_dim + 1, cfg.char_hidden, batch_first=True)
        tok_in = 2 * cfg.char_hidden + 1
        self.tok_fwd = nn.LSTM(tok_in, cfg.token_hidden, batch_first=True)
        self.tok_bwd = nn.LSTM(tok_in, cfg.token_hidden, batch_first=True)
        h = 2 * cfg.token_hidden
        self.window_proj = nn.ModuleList(nn.Linear(h, cfg.window_dim) for _ in cfg.windows)
        self.fam = nn.ModuleList(FuzzyMatchingAttention(cfg.window_dim, cfg.prototypes) for _ in cfg.windows) \
            if cfg.fam else None
        self.context = nn.Linear(h + cfg.window_dim * len(cfg.windows), cfg.context_dim)
        # per-character head: tanh(A [char state; gen] + B c_t) -> logit; B c_t is computed once per token and
        # broadcast over its characters (the same function as a layer on the concatenation, without
        # materialising a [batch, tokens, chars, state + context] tensor)
        self.char_in = nn.Linear(2 * cfg.char_hidden + 1, 48)
        self.char_ctx = nn.Linear(cfg.context_dim, 48, bias=False)
        self.char_out = nn.Linear(48, 1)
        self.token_head = nn.Linear(cfg.context_dim, 2)  # [token has a variable, whitespace before it joins]
        self.pool_query = nn.Linear(cfg.context_dim, 1)
        self.event = nn.Linear(cfg.context_dim, cfg.embed_dim)

    def forward(self, chars: torch.Tensor, gen: torch.Tensor, rev_c: torch.Tensor,
                rev_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """chars/gen/rev_c [B, T, C], rev_t [B, T] -> char logits [B, T, C], token-variable logits [B, T],
        join logits [B, T], event embedding [B, E]."""
        b, t, c = chars.shape
        cmask = (chars > 0).to(torch.float32)  # [B, T, C]
        tmask = cmask[:, :, 0]  # [B, T]
        x = torch.cat([self.embed(chars), gen.unsqueeze(-1)], dim=-1).reshape(b * t, c, -1)
        rc = rev_c.reshape(b * t, c)
        hf, _ = self.char_fwd(x)
        hb_rev, _ = self.char_bwd(_gather_seq(x, rc))
        hb = _gather_seq(hb_rev, rc)
        hc = torch.cat([hf, hb], dim=-1).reshape(b, t, c, -1)  # per-character states
        neg = (1.0 - cmask).unsqueeze(-1) * -1e4
        tokv = (hc + neg).amax(dim=2) * tmask.unsqueeze(-1)  # [B, T, 2H]
        gen_any = (gen.amax(dim=2) * tmask).unsqueeze(-1)
        y = torch.cat([tokv, gen_any], dim=-1)
        gf, _ = self.tok_fwd(y)
        gb_rev, _ = self.tok_bwd(_gather_seq(y, rev_t))
        gb = _gather_seq(gb_rev, rev_t)
        ht = torch.cat([gf, gb], dim=-1) * tmask.unsqueeze(-1)  # [B, T, 2Ht]

        feats = [ht]
        cnt_src = tmask.unsqueeze(1)  # [B, 1, T]
        src = ht.transpose(1, 2)  # [B, 2Ht, T]
        for i, k in enumerate(self.cfg.windows):
            pad = k // 2
            s = F.avg_pool1d(src, k, stride=1, padding=pad, count_include_pad=True)
            n = F.avg_pool1d(cnt_src, k, stride=1, padding=pad, count_include_pad=True)
            mean = (s / n.clamp_min(1.0 / k)).transpose(1, 2)  # window mean over real tokens   (Eq. 1)
            u = self.window_proj[i](mean)
            if self.fam is not None:
                e, _ = self.fam[i](u)  # (Eq. 2-3)
            else:
                e = u
            feats.append(e)
        ctx = torch.tanh(self.context(torch.cat(feats, dim=-1))) * tmask.unsqueeze(-1)  # [B, T, D]

        hidden = torch.tanh(self.char_in(torch.cat([hc, gen.unsqueeze(-1)], dim=-1))
                            + self.char_ctx(ctx).unsqueeze(2))
        char_logits = self.char_out(hidden).squeeze(-1)
        tok = self.token_head(ctx)
        score = self.pool_query(ctx).squeeze(-1) + (tmask - 1.0) * 1e4
        w = torch.softmax(score, dim=-1).unsqueeze(-1)
        emb = self.event((w * ctx).sum(1))  # (Eq. 4)
        emb = emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        return char_logits, tok[..., 0], tok[..., 1], emb


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
