"""The recovery planner's view of an incident: one feature vector + the candidate (action, target) pairs.

Shared by the runtime planner (`planner_learned.py`, numpy + ONNX Runtime) and its training
(`model_export/planner_train.py`), so both see exactly the same state. Everything comes from the incident as the
engine reports it, never from simulator ground truth or wording rules:

- for each of the reasoner's top `EVENTS` ranked events (the candidate causes: the reasoner's top event is
  sometimes a benign one-off and the cause ranks second or third): its template embedding (MiniLM,
  `embeddings.TemplateEmbedder`), the embedding of its service/program name (its role), its log level, score,
  line count, whether it is on the fault chain and where;
- the mean embedding of the chain events after the root cause and of the services they come from (the fault
  signature: what the fault did downstream, and where), the chain's shape (length, distinct services/hosts,
  levels) and the anomaly score.

Targets are not free text: each action applies to one candidate event and one of three *target kinds* read from
it — its `service`, its `host`, or the `entity` (the identifier among its lines' parameters that the rest of the
chain mentions most, e.g. the job a trainer fault is about). The joint action space is therefore
`ACTIONS[:-1] × EVENTS × TARGET_KINDS` plus `escalate_to_human` (no target).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llmid.documents import ACTIONS, Incident, LogRecord, RankedEvent

TARGET_KINDS: tuple[str, ...] = ("service", "host", "entity")
EVENTS = 3
"""Candidate cause events: the reasoner's top `EVENTS` of the ranking (the top one is not always the cause)."""
JOINT: tuple[tuple[str, int | None, str | None], ...] = tuple(
    (a, e, k) for a in ACTIONS if a != "escalate_to_human" for e in range(EVENTS) for k in TARGET_KINDS
) + (("escalate_to_human", None, None),)
"""Every (action, cause event rank, target kind) the policy chooses from; the last is escalation."""
N_JOINT = len(JOINT)
LEVELS: tuple[str, ...] = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
EMB_DIM = 384
N_EVENT = 2 * EMB_DIM + len(LEVELS) + 1 + 7
N_GLOBAL = 2 * EMB_DIM + 5 + len(LEVELS)
FEATURE_DIM = EVENTS * N_EVENT + N_GLOBAL

_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_.:/-]*[0-9][A-Za-z0-9_.:/-]*$|^[A-Za-z]+[-_][A-Za-z0-9_-]+$")
_HEXISH = re.compile(r"^[0-9a-fA-F]{6,}$")


def _level_onehot(level: str | None) -> list[float]:
    lv = (level or "").upper()
    lv = {"WARNING": "WARN", "ERR": "ERROR", "CRITICAL": "FATAL", "CRIT": "FATAL"}.get(lv, lv)
    return [1.0 if lv == x else 0.0 for x in LEVELS] + [0.0 if lv in LEVELS else 1.0]


def _is_identifier(tok: str) -> bool:
    """Names of things (job-1234, worker_7, pod-a1): letters with digits or separators, not numbers or hashes."""
    tok = tok.strip("'\"()[],;")
    return 3 <= len(tok) <= 64 and bool(_IDENT.match(tok)) and not _HEXISH.match(tok)


def event_swap_columns(k: int) -> np.ndarray:
    """Joint-action index map for trading candidate events 0 and `k`: column j of the swapped view is column
    map[j] of the original (same action and target kind, the other event); the identity for k = 0."""
    index = {a: j for j, a in enumerate(JOINT)}
    swap = {0: k, k: 0}
    return np.array([index[(a, swap.get(e, e), t)] if e is not None else j for j, (a, e, t) in enumerate(JOINT)])


SCORE_COL = 2 * EMB_DIM + len(LEVELS) + 1
"""Offset of the reasoner's score inside an event block (`planner_state`)."""


def swap_events(x: np.ndarray, k: int, keep_scores: bool = False) -> np.ndarray:
    """The states (n, FEATURE_DIM) with candidate events 0 and `k` trading places: as if the reasoner had
    ranked event k first. `keep_scores`: the scores stay in rank order (a misrank, as training simulates it)."""
    x = np.array(x, np.float32, copy=True)
    a, b = x[:, :N_EVENT].copy(), x[:, k * N_EVENT:(k + 1) * N_EVENT].copy()
    if keep_scores:
        a[:, SCORE_COL], b[:, SCORE_COL] = b[:, SCORE_COL].copy(), a[:, SCORE_COL].copy()
    x[:, :N_EVENT], x[:, k * N_EVENT:(k + 1) * N_EVENT] = b, a
    return x


def identifiers(rec: LogRecord) -> set[str]:
    """The identifier-like tokens (`_is_identifier`) among a record's parameters."""
    out = set()
    for p in rec.params:
        for tok in str(p).split():
            tok = tok.strip("'\"()[],;")
            if _is_identifier(tok):
                out.add(tok)
    return out


def entity_of(incident: Incident, records: Sequence[LogRecord] | None, event: RankedEvent | None = None) -> str | None:
    """The identifier the fault is about: a parameter of the event's lines that the other chain events mention
    most (else its most frequent one); an event without any takes the identifier most chain events carry."""
    if not records:
        return None
    by_line = {r.line_id: r for r in records}
    ev = event or incident.root_cause
    cands: Counter[str] = Counter()
    for ln in ev.lines:
        if ln in by_line:
            cands.update(identifiers(by_line[ln]))
    others = [e for e in incident.chain if e is not ev]
    if cands:
        msgs = [by_line[ln].message for e in others for ln in e.lines if ln in by_line]
        score = {c: sum(m.count(c) for m in msgs) for c in cands}
        return max(sorted(cands), key=lambda c: (score[c], cands[c]))
    spread: Counter[str] = Counter()
    for e in incident.chain:
        ids: set[str] = set()
        for ln in e.lines:
            if ln in by_line:
                ids |= identifiers(by_line[ln])
        spread.update(ids)
    if not spread:
        return None
    return max(sorted(spread), key=lambda c: spread[c])


@dataclass(slots=True)
class PlannerState:
    """One incident as the planner sees it."""

    features: np.ndarray
    """(FEATURE_DIM,) float32."""
    mask: np.ndarray
    """(N_JOINT,) bool: which joint actions have a target in this incident."""
    targets: list[dict[str, str | None]]
    """Per candidate event (rank 0..EVENTS-1): target kind → the concrete name (None when there is none)."""
    events: list[RankedEvent]

    def target(self, j: int) -> str | None:
        """The concrete target of joint action j ("-" for escalation, None when the incident has none)."""
        _, e, k = JOINT[j]
        if e is None or k is None:
            return "-"
        return self.targets[e].get(k) if e < len(self.targets) else None


def planner_state(incident: Incident, records: Sequence[LogRecord] | None, embedder: object) -> PlannerState:
    """Featurise one incident (`embedder`: anything with `embed(list[str]) -> (n, 384)`)."""
    events = list(incident.ranking[:EVENTS])
    chain_ids = {id(e) for e in incident.chain}
    others = [e for e in incident.chain if e is not incident.root_cause]
    texts = [t for e in events for t in (e.template, f"{e.service or 'unknown'} service")]
    texts += [e.template for e in others]
    roles = sorted({f"{e.service or 'unknown'} service" for e in others})
    emb = np.asarray(embedder.embed(texts + roles), dtype=np.float32)  # type: ignore[attr-defined]
    n_ev = 2 * len(events)
    chain_mean = emb[n_ev:n_ev + len(others)].mean(axis=0) if others else np.zeros(EMB_DIM, np.float32)
    role_mean = emb[n_ev + len(others):].mean(axis=0) if roles else np.zeros(EMB_DIM, np.float32)
    parts: list[np.ndarray] = []
    targets: list[dict[str, str | None]] = []
    for k in range(EVENTS):
        if k >= len(events):
            parts.append(np.zeros(N_EVENT, np.float32))
            continue
        e = events[k]
        entity = entity_of(incident, records, e)
        targets.append({"service": e.service, "host": e.host, "entity": entity})
        pos = next((i for i, c in enumerate(incident.chain) if c is e), -1)
        sc = _level_onehot(e.level) + [
            float(e.score), float(np.log1p(len(e.lines)) / 5.0), 1.0 if e.host else 0.0, 1.0 if e.service else 0.0,
            1.0 if entity else 0.0, 1.0 if id(e) in chain_ids else 0.0, (pos + 1) / 10.0]
        parts.append(np.concatenate([emb[2 * k], emb[2 * k + 1], np.asarray(sc, np.float32)]))
    services = {e.service for e in incident.chain if e.service}
    hosts = {e.host for e in incident.chain if e.host}
    errs = [e for e in others if (e.level or "").upper() in ("ERROR", "FATAL", "CRITICAL")]
    glob = [min(len(incident.chain), 20) / 10.0, min(len(services), 10) / 5.0, min(len(hosts), 10) / 5.0,
            len(errs) / max(len(others), 1), float(incident.anomaly_score)]
    lv = np.zeros(len(LEVELS), np.float32)
    for e in others:
        lv += np.asarray(_level_onehot(e.level)[: len(LEVELS)], np.float32)
    glob += (lv / max(len(others), 1)).tolist()
    parts.append(np.concatenate([chain_mean, role_mean, np.asarray(glob, np.float32)]))
    x = np.concatenate(parts).astype(np.float32)
    state = PlannerState(x, np.zeros(N_JOINT, bool), targets, events)
    state.mask = np.array([state.target(j) is not None for j in range(N_JOINT)], dtype=bool)
    return state


__all__ = ["EMB_DIM", "EVENTS", "FEATURE_DIM", "JOINT", "N_EVENT", "N_JOINT", "SCORE_COL", "TARGET_KINDS",
           "PlannerState", "entity_of", "event_swap_columns", "identifiers", "planner_state", "swap_events"]
