"""Structuring: log content → event template + parameters.

`TemplateMiner` is the deterministic online baseline (a Drain-style prefix tree over generically masked tokens).
It is also the fast path of the learned structurer: an exact hash of the masked token sequence answers known
lines without touching the tree, and `Structurer` keeps one interface whether or not a learned model sits
behind it. Template ids are fixed when a template is created; a refinement keeps the id and records the old
string (Drain3 issue #32), so ids stay stable as the stream goes on and across runs (the state is persisted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from llmid.documents import LogRecord, Template, stable_id
from llmid.engine.tokens import WILDCARD, mask_tokens, merge_tokens, normalize_template, tokenize, unglue

STATE_KEY = "structurer.miner"
STATE_VERSION = 1


@dataclass(slots=True)
class Cluster:
    template_id: str
    tokens: list[str]
    route: tuple[Any, ...]
    size: int = 0
    previous: list[str] = field(default_factory=list)
    _string: str | None = None
    _constants: int = -1

    @property
    def template(self) -> str:
        if self._string is None:
            self._string = normalize_template(" ".join(self.tokens))
        return self._string

    @property
    def constants(self) -> int:
        if self._constants < 0:
            self._constants = sum(t != WILDCARD for t in self.tokens)
        return self._constants

    def generalize(self, masked: list[str]) -> bool:
        """Turn positions where the line differs into wildcards; True if the template changed."""
        changed = False
        for i, (a, b) in enumerate(zip(self.tokens, masked, strict=True)):
            if a != b and a != WILDCARD:
                self.tokens[i] = merge_tokens(a, b)
                changed = True
        if changed:
            old = self._string or normalize_template(" ".join(self.tokens))
            self._string = None
            self._constants = -1
            if old != self.template:
                self.previous.append(old)
            else:
                changed = False
        return changed


@dataclass(slots=True)
class Match:
    template_id: str
    template: str
    params: list[str]
    created: bool
    """The line founded a new template."""
    changed: bool
    """The line refined an existing template (its string changed, its id did not)."""


_SEGMENT = re.compile(r"(<\*>)")


class TemplateMiner:
    """Online template miner: route by (length, first tokens), join the most similar cluster or found one."""

    def __init__(self, similarity: float = 0.7, depth: int = 2, max_children: int = 100,
                 cache_size: int = 200_000) -> None:
        self.similarity = similarity
        self.depth = depth
        self.max_children = max_children
        self.cache_size = cache_size
        self._clusters: dict[str, Cluster] = {}
        self._leaves: dict[tuple[Any, ...], list[Cluster]] = {}
        self._children: dict[tuple[Any, ...], set[str]] = {}
        self._exact: dict[tuple[str, ...], Cluster] = {}
        self._param_re: dict[str, re.Pattern[str]] = {}

    # -- public API -------------------------------------------------------------------------------------
    def add(self, content: str) -> Match:
        """Assign one line to a template, creating or refining one when needed."""
        tokens = tokenize(content)
        masked = mask_tokens(tokens)
        key = tuple(masked)
        cluster = self._exact.get(key)
        created = changed = False
        if cluster is None:
            route = self._route(masked)
            leaf = self._leaves.setdefault(route, [])
            cluster = self._best(leaf, masked)
            if cluster is None:
                cluster = self._found(masked, route)
                leaf.append(cluster)
                created = True
            else:
                changed = cluster.generalize(masked)
            if len(self._exact) >= self.cache_size:
                self._exact.clear()
            self._exact[key] = cluster
        cluster.size += 1
        return Match(cluster.template_id, cluster.template, self._params(cluster, tokens), created, changed)

    def params_for(self, content: str, template_id: str) -> list[str]:
        """Parameters of a line against a template's final form (after later refinements)."""
        return self._params(self._clusters[template_id], tokenize(content))

    def template(self, template_id: str) -> str:
        return self._clusters[template_id].template

    def clusters(self) -> list[Cluster]:
        return list(self._clusters.values())

    def __len__(self) -> int:
        return len(self._clusters)

    # -- persistence ------------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "similarity": self.similarity,
            "clusters": [
                {"id": c.template_id, "tokens": c.tokens, "route": list(c.route), "size": c.size,
                 "previous": c.previous}
                for c in self._clusters.values()
            ],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any] | None, similarity: float = 0.7) -> TemplateMiner:
        miner = cls(similarity=similarity)
        if not state or state.get("version") != STATE_VERSION:
            return miner
        for c in state["clusters"]:
            route = tuple(c["route"])
            cl = Cluster(c["id"], list(c["tokens"]), route, int(c.get("size", 0)), list(c.get("previous", [])))
            miner._clusters[cl.template_id] = cl
            miner._leaves.setdefault(route, []).append(cl)
            if len(route) > 1:
                miner._children.setdefault(route[:1], set()).add(route[1])
            if len(route) > 2:
                miner._children.setdefault(route[:2], set()).add(route[2])
        return miner

    # -- internals --------------------------------------------------------------------------------------
    def _route(self, masked: list[str]) -> tuple[Any, ...]:
        """Length first, then up to `depth` leading tokens; values and crowded branches route to `<*>`."""
        route: tuple[Any, ...] = (len(masked),)
        for tok in masked[: self.depth]:
            step = tok if WILDCARD not in tok else WILDCARD
            kids = self._children.setdefault(route, set())
            if step not in kids:
                if len(kids) >= self.max_children:
                    step = WILDCARD
                kids.add(step)
            route = (*route, step)
        return route

    def _best(self, leaf: list[Cluster], masked: list[str]) -> Cluster | None:
        best: Cluster | None = None
        best_key: tuple[float, int] = (-1.0, -1)
        n = len(masked) or 1
        for c in leaf:
            same = sum(a == b for a, b in zip(c.tokens, masked, strict=True))
            sim = same / n
            key = (sim, c.constants)
            if key > best_key:
                best, best_key = c, key
        if best is None or (masked and best_key[0] < self.similarity):
            return None
        return best

    def _found(self, masked: list[str], route: tuple[Any, ...]) -> Cluster:
        base = stable_id("tpl", " ".join(masked), length=16)
        tid, k = base, 1
        while tid in self._clusters:
            k += 1
            tid = stable_id("tpl", " ".join(masked), k, length=16)
        cl = Cluster(tid, list(masked), route)
        self._clusters[tid] = cl
        return cl

    def _params(self, cluster: Cluster, tokens: list[str]) -> list[str]:
        """The raw text behind each `<*>` of the token-level template."""
        params: list[str] = []
        for t, raw in zip(cluster.tokens, tokens, strict=True):
            if t == raw:
                continue
            if t == WILDCARD:
                params.append(unglue(raw))
            elif WILDCARD in t:
                rx = self._param_re.get(t)
                if rx is None:
                    parts = _SEGMENT.split(t)
                    rx = re.compile("".join("(.*?)" if p == WILDCARD else re.escape(p) for p in parts) + "$")
                    self._param_re[t] = rx
                m = rx.match(raw)
                params.extend(unglue(g) for g in (m.groups() if m else [raw]))
        return params


class Structurer:
    """The structuring stage over record batches: fills template fields and keeps template documents current."""

    def __init__(self, miner: TemplateMiner | None = None) -> None:
        self.miner = miner or TemplateMiner()
        self._docs: dict[str, Template] = {}
        self._dirty: set[str] = set()

    @classmethod
    def from_state(cls, state: dict[str, Any] | None, similarity: float = 0.7) -> Structurer:
        return cls(TemplateMiner.from_state(state, similarity))

    def structure(self, records: list[LogRecord]) -> None:
        for rec in records:
            m = self.miner.add(rec.head)
            rec.template_id, rec.template, rec.params = m.template_id, m.template, m.params
            doc = self._docs.get(m.template_id)
            if doc is None:
                doc = Template(m.template_id, m.template, example=rec.head[:2000], service=rec.service)
                self._docs[m.template_id] = doc
            doc.template = m.template
            doc.count += 1
            ts = rec.timestamp
            if ts is not None:
                doc.first_seen = ts if doc.first_seen is None else min(doc.first_seen, ts)
                doc.last_seen = ts if doc.last_seen is None else max(doc.last_seen, ts)
            self._dirty.add(m.template_id)

    def take_changed_templates(self) -> list[Template]:
        """Template documents touched since the last call (their `previous` lists refinements)."""
        out = []
        for tid in sorted(self._dirty):
            doc = self._docs[tid]
            cl = self.miner._clusters[tid]
            doc.template = cl.template
            doc.previous = list(cl.previous)
            out.append(doc)
        self._dirty.clear()
        return out

    def state(self) -> dict[str, Any]:
        return self.miner.to_state()
