"""Log-parsing accuracy metrics (GA, FGA, PA, PTA/RTA/FTA) in the Loghub-2.0 convention.

Why a re-implementation: the published numbers (Loghub-2.0, LILAC, LogBatcher, ...) all come from one
pandas-based evaluator. Comparing our parser with them is only meaningful if we compute exactly the same
quantities, so this module follows that evaluator's definitions to the letter (see the data folder's
METRICS.md), with plain Python so it has no pandas dependency:

* inputs are row-aligned lists of ground-truth (GT) and predicted template strings;
* rows whose GT template is empty (or ``None``) are dropped from every metric; a ``None`` prediction
  counts as the empty string;
* the group label of a line is its template STRING, for GT and prediction alike (two predicted clusters
  whose final templates are equal count as one group);
* PA compares strings exactly, without normalisation (normalise beforehand, e.g. with
  :func:`correct_template`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from llmid.engine.tokens import normalize_template

__all__ = [
    "correct_template",
    "evaluate",
    "f1_grouping_accuracy",
    "grouping_accuracy",
    "pairwise_f1",
    "parsing_accuracy",
    "template_accuracy",
]

_WILDCARD = "<*>"


def _aligned(gt: Sequence[str | None], pred: Sequence[str | None]) -> tuple[list[str], list[str]]:
    """Return (gt, pred) restricted to rows with a non-empty GT template; ``None`` predictions become ""."""
    if len(gt) != len(pred):
        raise ValueError(f"gt and pred must be row-aligned: {len(gt)} vs {len(pred)} rows")
    g_out: list[str] = []
    p_out: list[str] = []
    for g, p in zip(gt, pred, strict=True):
        if g is None or g == "":
            continue
        g_out.append(g)
        p_out.append("" if p is None else p)
    return g_out, p_out


def _grouping_counts(gt: list[str], pred: list[str]) -> tuple[int, int, int, int]:
    """(lines in correct GT groups, #correct GT groups, #distinct predicted labels, #distinct GT labels).

    A GT group G is correct iff all its lines carry one predicted label p and p labels exactly |G| lines
    overall, i.e. the predicted group equals G as a set of lines.
    """
    pred_sizes = Counter(pred)
    labels_per_gt: dict[str, set[str]] = defaultdict(set)
    gt_sizes: Counter[str] = Counter()
    for g, p in zip(gt, pred, strict=True):
        labels_per_gt[g].add(p)
        gt_sizes[g] += 1
    correct_lines = 0
    correct_groups = 0
    for g, labels in labels_per_gt.items():
        if len(labels) == 1 and pred_sizes[next(iter(labels))] == gt_sizes[g]:
            correct_lines += gt_sizes[g]
            correct_groups += 1
    return correct_lines, correct_groups, len(pred_sizes), len(gt_sizes)


def _harmonic(a: float, b: float) -> float:
    """F1-style harmonic mean, 0 when both are 0 (the evaluator's convention)."""
    return 0.0 if a == 0 and b == 0 else 2 * a * b / (a + b)


def grouping_accuracy(gt: Sequence[str | None], pred: Sequence[str | None]) -> float:
    """GA: fraction of lines whose GT group is reproduced exactly by the predicted grouping."""
    g, p = _aligned(gt, pred)
    if not g:
        return 0.0
    return _grouping_counts(g, p)[0] / len(g)


def f1_grouping_accuracy(gt: Sequence[str | None], pred: Sequence[str | None]) -> float:
    """FGA: harmonic mean of PGA = correct/#predicted groups and RGA = correct/#GT groups."""
    g, p = _aligned(gt, pred)
    if not g:
        return 0.0
    _, correct, n_pred, n_gt = _grouping_counts(g, p)
    return _harmonic(correct / n_pred, correct / n_gt)


def parsing_accuracy(gt: Sequence[str | None], pred: Sequence[str | None]) -> float:
    """PA (a.k.a. MLA): fraction of lines whose predicted template string equals the GT string exactly."""
    g, p = _aligned(gt, pred)
    if not g:
        return 0.0
    return sum(1 for a, b in zip(g, p, strict=True) if a == b) / len(g)


def template_accuracy(gt: Sequence[str | None], pred: Sequence[str | None]) -> dict[str, float]:
    """PTA / RTA / FTA: template-level accuracy, as coded in Loghub-2.0.

    A predicted template t is correct iff the set of GT templates on its lines is exactly {t}. PTA divides
    the number of correct predicted templates by the number of predicted templates, RTA by the number of
    distinct GT templates. As coded upstream, a GT template split over several predicted templates can
    still yield one correct predicted template (the one whose string equals it).
    """
    g, p = _aligned(gt, pred)
    if not g:
        return {"PTA": 0.0, "RTA": 0.0, "FTA": 0.0}
    gt_per_pred: dict[str, set[str]] = defaultdict(set)
    for a, b in zip(g, p, strict=True):
        gt_per_pred[b].add(a)
    correct = sum(1 for t, gts in gt_per_pred.items() if gts == {t})
    pta = correct / len(gt_per_pred)
    rta = correct / len(set(g))
    return {"PTA": pta, "RTA": rta, "FTA": _harmonic(pta, rta)}


def pairwise_f1(gt: Sequence[str | None], pred: Sequence[str | None]) -> dict[str, float]:
    """Old logparser (ICSE'19) "F1_measure": precision/recall over pairs of lines grouped together.

    Kept for comparison with pre-Loghub-2.0 papers only; labels are template strings here too.
    """
    g, p = _aligned(gt, pred)

    def pairs(counts: Counter[str] | Counter[tuple[str, str]]) -> int:
        return sum(n * (n - 1) // 2 for n in counts.values())

    real = pairs(Counter(g))
    parsed = pairs(Counter(p))
    accurate = pairs(Counter(zip(g, p, strict=True)))
    precision = accurate / parsed if parsed else 0.0
    recall = accurate / real if real else 0.0
    return {"precision": precision, "recall": recall, "F1": _harmonic(precision, recall)}


def evaluate(gt: Sequence[str | None], pred: Sequence[str | None]) -> dict[str, float | int]:
    """All Loghub-2.0 metrics at once: GA, FGA, PA, PTA, RTA, FTA plus row/template counts.

    Values are unrounded; the benchmarks report them rounded to 3 decimals.
    """
    g, p = _aligned(gt, pred)
    n = len(g)
    if n == 0:
        return {"GA": 0.0, "FGA": 0.0, "PA": 0.0, "PTA": 0.0, "RTA": 0.0, "FTA": 0.0,
                "lines": 0, "templates_gt": 0, "templates_pred": 0}
    correct_lines, correct_groups, n_pred, n_gt = _grouping_counts(g, p)
    ta = template_accuracy(g, p)
    return {
        "GA": correct_lines / n,
        "FGA": _harmonic(correct_groups / n_pred, correct_groups / n_gt),
        "PA": sum(1 for a, b in zip(g, p, strict=True) if a == b) / n,
        "PTA": ta["PTA"],
        "RTA": ta["RTA"],
        "FTA": ta["FTA"],
        "lines": n,
        "templates_gt": n_gt,
        "templates_pred": n_pred,
    }


def correct_template(t: str) -> str:
    """The Khan et al. (ICSE'22) correction rules; one implementation, shared with the engine that emits templates."""
    return normalize_template(t)
