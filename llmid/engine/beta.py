"""Beta(α, β) confidence math without scipy (the runtime may not import it).

Both the baseline keyword planner and the learned actor-critic planner express "will this action fix the fault"
as a Beta belief; this module turns (α, β) into the mean and a central credible interval. The regularized
incomplete beta I_x(a, b) is evaluated with the Lentz continued fraction (Numerical Recipes `betacf`), and its
inverse by bisection, which is robust for every a, b > 0 and exact to ~1e-10.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from llmid.documents import Confidence

_EPS = 1e-15
_TINY = 1e-300


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for I_x(a, b) (modified Lentz), converges fast for x < (a+1)/(a+b+2)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def beta_cdf(x: float, a: float, b: float) -> float:
    """Regularized incomplete beta I_x(a, b) = P(X <= x) for X ~ Beta(a, b)."""
    if a <= 0 or b <= 0:
        raise ValueError(f"Beta parameters must be positive, got a={a}, b={b}.")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def beta_ppf(q: float, a: float, b: float) -> float:
    """Inverse of `beta_cdf`: the x with P(X <= x) = q (bisection; the CDF is monotone)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"Quantile must be in [0, 1], got {q}.")
    if q == 0.0:
        return 0.0
    if q == 1.0:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if beta_cdf(mid, a, b) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def beta_interval(a: float, b: float, mass: float = 0.9) -> tuple[float, float]:
    """Central credible interval holding `mass` of Beta(a, b): (q_{(1-mass)/2}, q_{(1+mass)/2})."""
    if not 0.0 < mass < 1.0:
        raise ValueError(f"Interval mass must be in (0, 1), got {mass}.")
    tail = (1.0 - mass) / 2.0
    return beta_ppf(tail, a, b), beta_ppf(1.0 - tail, a, b)


def beta_confidence(a: float, b: float, mass: float = 0.9) -> Confidence:
    """The `Confidence` document for Beta(a, b): mean a/(a+b) and the central `mass` interval."""
    low, high = beta_interval(a, b, mass)
    return Confidence(alpha=float(a), beta=float(b), mean=a / (a + b), low=low, high=high)


def platt_fit(mean: Sequence[float], hit: Sequence[bool], iters: int = 200) -> tuple[float, float]:
    """Platt scaling (a, b) of a confidence: p' = σ(a · logit(p) + b), fitted by Newton's method on the log loss
    of the outcomes `hit` (a held-out calibration split). Identity (1, 0) when there is nothing to fit."""
    p = [min(max(float(m), 1e-4), 1 - 1e-4) for m in mean]
    y = [1.0 if h else 0.0 for h in hit]
    if not p or len(set(y)) < 2:
        return 1.0, 0.0
    z = [math.log(q / (1 - q)) for q in p]
    a, b = 1.0, 0.0
    for _ in range(iters):
        g_a = g_b = h_aa = h_ab = h_bb = 0.0
        for zi, yi in zip(z, y, strict=True):
            s = 1.0 / (1.0 + math.exp(-(a * zi + b)))
            r, w = s - yi, s * (1 - s)
            g_a, g_b = g_a + r * zi, g_b + r
            h_aa, h_ab, h_bb = h_aa + w * zi * zi + 1e-9, h_ab + w * zi, h_bb + w + 1e-9
        det = h_aa * h_bb - h_ab * h_ab
        if det <= 0:
            break
        da, db = (h_bb * g_a - h_ab * g_b) / det, (h_aa * g_b - h_ab * g_a) / det
        a, b = a - da, b - db
        if abs(da) + abs(db) < 1e-9:
            break
    return a, b


PARAM_FLOOR = 0.05
"""The smallest α or β the planner network emits (softplus + 0.05); calibrated ones keep it, so an extreme mean
cannot leave a Beta too skewed for its interval to be computed."""


def platt_apply(alpha: np.ndarray, beta: np.ndarray, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """Beta(α, β) with its mean moved by Platt scaling (a, b) and its concentration α + β kept."""
    n = alpha + beta
    m = np.clip(alpha / n, 1e-6, 1 - 1e-6)
    m2 = 1.0 / (1.0 + np.exp(-(a * np.log(m / (1 - m)) + b)))
    edge = np.minimum(PARAM_FLOOR / n, 0.5)
    m2 = np.clip(m2, edge, 1.0 - edge)
    return (m2 * n).astype(alpha.dtype), ((1 - m2) * n).astype(beta.dtype)
