"""Structuring: log content → event template + parameters.

`TemplateMiner` is the deterministic online baseline (a Drain-style prefix tree over generically masked tokens).
It is also the fast path of the learned structurer: an exact hash of the masked token sequence answers known
lines without touching the tree, and `Structurer` keeps one interface whether or not a learned model sits
behind it. Template ids are fixed when a template is created; a refinement keeps the id and records the old
string (Drain3 issue #32), so ids stay stable as the stream goes on and across runs (the state is persisted).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from llmid.documents import LogRecord, Template, stable_id
from llmid.engine.tokens import (
    _CLOCK,
    _DATETIME,
    GLUE,
    WILDCARD,
    mask_token,
    mask_tokens,
    merge_tokens,
    normalize_template,
    tokenize,
    unglue,
)

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

    def add_batch(self, contents: list[str]) -> list[Match]:
        """`add` for each line, in order (the learned miner batches its model calls here)."""
        return [self.add(c) for c in contents]

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


# ======================================================================================================
# Learned structurer: featurisation (shared with training in llmid.model_export), the ONNX tagger, and the
# miner that puts the tagger behind the fast paths.
# ======================================================================================================

MAX_CHARS = 32
"""Characters of one token the model sees: all of a short token; head and tail of a long one."""
HEAD_CHARS = 20
"""Of a long token, the model sees the first HEAD_CHARS and the last MAX_CHARS - HEAD_CHARS characters."""
MAX_TOKENS = 64
"""Tokens of one line the model sees; later tokens keep the generic mask."""

PAD, UNK, DIGIT, GLUE_ID = 0, 1, 2, 3
_NONSPACE = re.compile(r"\S+")
_PRINTABLE = "".join(chr(c) for c in range(32, 127) if not chr(c).isdigit())
N_CHARS = 4 + len(_PRINTABLE)
"""Character vocabulary: pad, unknown, any digit (digits are values, their identity says nothing), the
date-time glue, and every other printable ASCII character."""


def _char_table() -> Any:
    import numpy as np

    lut = np.full(256, UNK, dtype=np.int64)
    for i, ch in enumerate(_PRINTABLE):
        lut[ord(ch)] = 4 + i
    for d in "0123456789":
        lut[ord(d)] = DIGIT
    lut[ord(GLUE)] = GLUE_ID
    return lut


def token_spans(content: str) -> list[tuple[int, int]]:
    """(start, end) in `content` of each token of `tokenize(content)` (a glued date-time spans its spaces)."""
    spans = [(m.start(), m.end()) for m in _NONSPACE.finditer(content)]
    if ":" not in content or _CLOCK(content) is None:
        return spans
    dts = [(m.start(), m.end()) for m in _DATETIME.finditer(content)]
    if not dts:
        return spans
    out: list[tuple[int, int]] = []
    k = 0
    for s, e in spans:
        while k < len(dts) and dts[k][1] <= s:
            k += 1
        if out and k < len(dts) and dts[k][0] < e and out[-1][1] > dts[k][0] and s < dts[k][1]:
            out[-1] = (out[-1][0], e)  # this token overlaps the same date-time as the previous one: glue
        else:
            out.append((s, e))
    return out


def span_token(content: str, s: int, e: int) -> str:
    """The token text of a span, as `tokenize` writes it (whitespace runs inside become one glue char)."""
    piece = content[s:e]
    parts = piece.split()
    return GLUE.join(parts) if len(parts) > 1 else piece


def char_index(n: int) -> list[int]:
    """Which characters of a token of length n the model sees (all, or head + tail)."""
    if n <= MAX_CHARS:
        return list(range(n))
    tail = MAX_CHARS - HEAD_CHARS
    return list(range(HEAD_CHARS)) + list(range(n - tail, n))


def expand_probs(n: int, seen: list[float]) -> list[float]:
    """`expand_char_flags` for probabilities."""
    if n <= MAX_CHARS:
        return list(seen[:n])
    tail = list(seen[HEAD_CHARS:MAX_CHARS])
    return list(seen[:HEAD_CHARS]) + [seen[HEAD_CHARS - 1]] * (n - HEAD_CHARS - len(tail)) + tail


def expand_char_flags(n: int, seen: list[bool] | Any) -> list[bool]:
    """Per-character flags of a token of length n from the flags of the characters the model saw: an unseen
    middle character takes the flag of the last head character."""
    if n <= MAX_CHARS:
        return [bool(x) for x in seen[:n]]
    head = [bool(x) for x in seen[:HEAD_CHARS]]
    tail = [bool(x) for x in seen[HEAD_CHARS:MAX_CHARS]]
    mid = [head[-1]] * (n - HEAD_CHARS - len(tail))
    return head + mid + tail


@lru_cache(maxsize=4096)
def _masked_regex(masked: str) -> re.Pattern[str]:
    parts = _SEGMENT.split(masked)
    return re.compile("".join("(.+?)" if p == WILDCARD else re.escape(p) for p in parts) + r"\Z", re.S)


def generic_char_flags(tok: str) -> list[bool]:
    """Which characters of a token the generic mask (`mask_token`) turns into a variable."""
    m = mask_token(tok)
    if m == tok:
        return [False] * len(tok)
    if m == WILDCARD:
        return [True] * len(tok)
    hit = _masked_regex(m).match(tok)
    if hit is None:
        return [True] * len(tok)
    flags = [False] * len(tok)
    for g in range(1, (hit.lastindex or 0) + 1):
        for i in range(*hit.span(g)):
            flags[i] = True
    return flags


class Features:
    """Model inputs of a batch of tokenised lines (numpy arrays; names match the ONNX graph's inputs).

    chars [B, T, C] int64 character ids (0 = padding); gen [B, T, C] float32 1 where the generic mask calls a
    character variable; rev_c [B, T, C] int64 the index that reverses each token's characters (padding stays
    in place), rev_t [B, T] int64 the index that reverses each line's tokens: the backward LSTMs read reversed
    sequences whose padding is at the end, so a padded batch gives exactly what each line alone gives."""

    __slots__ = ("chars", "gen", "rev_c", "rev_t", "lengths")

    def __init__(self, chars: Any, gen: Any, rev_c: Any, rev_t: Any, lengths: list[int]) -> None:
        self.chars, self.gen, self.rev_c, self.rev_t, self.lengths = chars, gen, rev_c, rev_t, lengths

    def inputs(self) -> dict[str, Any]:
        return {"chars": self.chars, "gen": self.gen, "rev_c": self.rev_c, "rev_t": self.rev_t}


_LUT: Any = None


def encode_lines(lines: list[list[str]]) -> Features:
    """Featurise tokenised lines (padded to the longest line and token of the batch)."""
    import numpy as np

    global _LUT
    if _LUT is None:
        _LUT = _char_table()
    lut = _LUT
    b = len(lines)
    t_max = max(1, min(MAX_TOKENS, max((len(x) for x in lines), default=1)))
    c_max = max(1, min(MAX_CHARS, max((len(tok) for x in lines for tok in x[:MAX_TOKENS]), default=1)))
    chars = np.zeros((b, t_max, c_max), dtype=np.int64)
    gen = np.zeros((b, t_max, c_max), dtype=np.float32)
    rev_c = np.broadcast_to(np.arange(c_max, dtype=np.int64), (b, t_max, c_max)).copy()
    rev_t = np.broadcast_to(np.arange(t_max, dtype=np.int64), (b, t_max)).copy()
    lengths = []
    for i, toks in enumerate(lines):
        toks = toks[:MAX_TOKENS]
        n = len(toks)
        lengths.append(n)
        rev_t[i, :n] = np.arange(n - 1, -1, -1)
        for j, tok in enumerate(toks):
            codes = np.frombuffer(tok.encode("utf-32-le"), dtype=np.uint32)
            if len(codes) > MAX_CHARS:
                idx = char_index(len(codes))
                codes = codes[idx]
                flags = generic_char_flags(tok)
                g = [flags[k] for k in idx]
            else:
                g = generic_char_flags(tok)
            k = len(codes)
            chars[i, j, :k] = lut[np.minimum(codes, 255)]
            if any(g):
                gen[i, j, :k] = g
            rev_c[i, j, :k] = np.arange(k - 1, -1, -1)
    return Features(chars, gen, rev_c, rev_t, lengths)


def decode_line(tokens: list[str], char_var: list[list[bool]], joins: list[bool]) -> list[str]:
    """Masked tokens (one per token) from per-character variable flags: each run of variable characters
    becomes `<*>`; a token that is all variable and continues the previous token's variable (a value with
    spaces inside) becomes "" so the template has one `<*>` for the whole value."""
    out: list[str] = []
    prev_var_end = False
    for j, tok in enumerate(tokens):
        flags = char_var[j]
        if not any(flags):
            piece = tok.replace(GLUE, " ") if GLUE in tok else tok
            out.append(piece)
            prev_var_end = False
            continue
        if all(flags):
            if j > 0 and joins[j] and prev_var_end:
                out.append("")
            else:
                out.append(WILDCARD)
            prev_var_end = True
            continue
        buf: list[str] = []
        i, n = 0, len(tok)
        while i < n:
            if flags[i]:
                while i < n and flags[i]:
                    i += 1
                buf.append(WILDCARD)
            else:
                ch = tok[i]
                buf.append(" " if ch == GLUE else ch)
                i += 1
        out.append("".join(buf))
        prev_var_end = flags[-1]
    return out


_PIECE = re.compile(r"[A-Za-z0-9_]+|[^A-Za-z0-9_]")


def piece_flags(tok: str, probs: list[float], threshold: float, generic: list[bool] | None = None,
                keep: float = 0.0) -> list[bool]:
    """Per-character variable flags decided per piece (a run of letters, digits and `_`, or one other
    character), so a word stays whole (no `Re<*>` out of `Rect`). A piece the generic mask calls variable stays
    variable unless the mean probability of its characters is below `keep`; any other piece becomes variable
    when that mean exceeds `threshold`."""
    flags = [False] * len(tok)
    for m in _PIECE.finditer(tok):
        s, e = m.span()
        mean = sum(probs[s:e]) / (e - s)
        if generic is not None and any(generic[s:e]):
            var = mean >= keep
        else:
            var = mean > threshold
        if var:
            flags[s:e] = [True] * (e - s)
    return flags


def masked_from_outputs(lines: list[list[str]], char_logits: Any, join_logits: Any, *,
                        threshold: float = 0.5, keep: float = 0.0, union_generic: bool = True,
                        join: float = 0.5) -> list[list[str]]:
    """Masked tokens of each line from the model's logits, decided per piece (`piece_flags`).

    With `union_generic` the generic mask is the default the model corrects: a value it finds (numbers,
    addresses, paths, ids) stays a variable unless the model is sure it is not (probability < `keep`), and the
    model adds variables where it is sure (probability > `threshold`). Without it, the model alone decides
    (threshold on every piece)."""
    import math

    import numpy as np

    join_logit = math.log(join / (1.0 - join)) if 0.0 < join < 1.0 else (math.inf if join >= 1.0 else -math.inf)
    out: list[list[str]] = []
    for i, toks in enumerate(lines):
        flags: list[list[bool]] = []
        joins: list[bool] = []
        n = min(len(toks), MAX_TOKENS)
        probs_line = (1.0 / (1.0 + np.exp(-char_logits[i, :n]))).tolist() if n else []
        for j, tok in enumerate(toks):
            g = generic_char_flags(tok) if union_generic else None
            if j < MAX_TOKENS:
                p = expand_probs(len(tok), probs_line[j][:min(len(tok), MAX_CHARS)])
                f = piece_flags(tok, p, threshold, g, keep)
                joins.append(bool(join_logits[i, j] > join_logit))
            else:
                f = list(g) if g is not None else [False] * len(tok)
                joins.append(False)
            flags.append(f)
        out.append(decode_line(toks, flags, joins))
    return out


# -- the tagger ---------------------------------------------------------------------------------------------
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "structurer.onnx"
MODEL_ENV = "LLMID_STRUCTURER_MODEL"
"""Environment variable naming another structurer model file (default: the shipped one)."""


def structurer_model_path() -> Path:
    return Path(os.environ.get(MODEL_ENV) or DEFAULT_MODEL)


@dataclass(slots=True)
class Tagged:
    """The model's reading of one line."""

    masked: list[str]
    """One masked token per token (`<*>` where variable, "" for the continuation of a spaced value)."""
    var_prob: list[float]
    """Per token: probability that it holds a variable."""
    embedding: Any = None
    """The line's event embedding (unit vector), or None."""


ADD_THRESHOLD = 0.995
"""Per-piece probability above which the model adds a variable the generic mask did not find. Leave-one-out,
the model's own variables helped less than they hurt below ~0.99 (benchmarks/RESULTS.md), so it adds only
those it is near-certain of; its token probabilities do their work in the miner's gate."""


class Tagger:
    """Runs the structuring model (ONNX Runtime) over tokenised lines, in batches of similar length."""

    def __init__(self, model_path: str | Path | None = None, *, device: str | None = None,
                 threads: int | None = None, batch_size: int = 128, session: Any = None,
                 threshold: float = ADD_THRESHOLD, keep: float = 0.0, union_generic: bool = True,
                 join: float = 0.5, max_cells: int = 131072) -> None:
        self.model_path = Path(model_path) if model_path is not None else structurer_model_path()
        if session is None:
            from llmid.engine.runtime import get_session, make_session

            # one session per model and device in a process (workers build a structurer per chunk); a private
            # one when a thread count is asked for
            session = (get_session(self.model_path, device) if threads is None
                       else make_session(self.model_path, device, threads=threads))
        self.session = session
        self.batch_size = batch_size
        self.max_cells = max_cells
        self.threshold = threshold
        self.keep = keep
        self.join = join
        self.union_generic = union_generic
        self.lines_tagged = 0
        self.batches_run = 0

    def _chunks(self, lines: list[list[str]], order: list[int]) -> list[list[int]]:
        """Batches of at most `batch_size` lines whose padded size (lines x tokens x characters) stays under
        `max_cells`, so one long line does not inflate a whole batch's memory."""
        out: list[list[int]] = []
        cur: list[int] = []
        t_max = c_max = 0
        for i in order:
            toks = lines[i][:MAX_TOKENS]
            t = max(1, len(toks))
            c = max(1, min(MAX_CHARS, max((len(x) for x in toks), default=1)))
            nt, nc = max(t_max, t), max(c_max, c)
            if cur and (len(cur) >= self.batch_size or (len(cur) + 1) * nt * nc > self.max_cells):
                out.append(cur)
                cur, nt, nc = [], t, c
            cur.append(i)
            t_max, c_max = nt, nc
        if cur:
            out.append(cur)
        return out

    def run(self, feats: Features) -> tuple[Any, Any, Any, Any]:
        """Raw outputs (char logits, token-variable logits, join logits, event embeddings) of one batch."""
        out = self.session.run(None, feats.inputs())
        return out[0], out[1], out[2], out[3]

    def __call__(self, lines: list[list[str]]) -> list[Tagged]:
        import numpy as np

        order = sorted(range(len(lines)), key=lambda i: (min(len(lines[i]), MAX_TOKENS), i))
        result: list[Tagged | None] = [None] * len(lines)
        for idx in self._chunks(lines, order):
            chunk = [lines[i] for i in idx]
            char_l, tok_l, join_l, emb = self.run(encode_lines(chunk))
            masked = masked_from_outputs(chunk, char_l, join_l, threshold=self.threshold, keep=self.keep,
                                         union_generic=self.union_generic, join=self.join)
            probs = 1.0 / (1.0 + np.exp(-tok_l))
            for r, i in enumerate(idx):
                n = len(lines[i])
                p = probs[r, :min(n, MAX_TOKENS)].tolist()
                if n > MAX_TOKENS:
                    p += [1.0 if WILDCARD in t else 0.0 for t in masked[r][MAX_TOKENS:]]
                result[i] = Tagged(masked[r], p, emb[r])
            self.batches_run += 1
        self.lines_tagged += len(lines)
        return [t for t in result if t is not None]


# -- the learned miner --------------------------------------------------------------------------------------
LEARNED_STATE_VERSION = 1
LEARNED_SIMILARITY = 0.8
"""Share of equal tokens for a model-path line to join a template (the baseline miner's is Settings.similarity)."""
GATE = 0.5
"""A token where a line and a template differ may become `<*>` only if the model gives it (or the template's
lines gave it) at least this variable probability, or the template string already writes it as a variable
(`user=root` → `user=<*>`, `_published_var`)..."""
VARY = 4
"""...or if its slot has shown this many different words among otherwise identical lines (variation evidence:
`Begin` / `End` stay two events, user names become a variable)."""


SETTLE = VARY
"""...and the template's own reading of a constant word counts only while fewer than this many lines showed that
word there: as VARY different words prove a variable, VARY lines agreeing on one word outweigh the model's reading
of the template's first line (an established template does not absorb a line the model reads as a different
constant; leave-one-out the result is the same for any value from 2 to 200, benchmarks/RESULTS.md)."""


@dataclass(slots=True)
class LearnedCluster(Cluster):
    probs: list[float] = field(default_factory=list)
    """Per position, the highest variable probability the model gave a line of this template."""
    seq: int = 0
    """Creation order (ties between equally specific matching templates go to the older one)."""
    embedding: Any = None
    """Event embedding of the line that founded the template (not persisted)."""
    checks: tuple[Any, ...] = ()
    """Compiled match plan: ((position, constant), ...), ((position, masked, pattern), ...) and the positions
    that hold parameters."""
    collapse: bool = False
    """Write each run of adjacent variable tokens as one `<*>`: the same event was seen with a different number of
    values there (a list: `delete <*> <*> <*>`), and the ground-truth convention is one `<*>` for the list."""
    run_key: tuple[str, ...] | None = None

    @property
    def template(self) -> str:
        if self._string is None:
            toks = _collapse_runs(self.tokens, WILDCARD) if self.collapse else self.tokens
            self._string = normalize_template(" ".join(toks))
        return self._string


def _slot_key(n: int, p: int, masked: list[str]) -> int:
    """A stable 64-bit key of (line length, slot, the other tokens): the same in every process (Python's
    `hash` of strings is not), so the evidence survives being saved and restored."""
    h = hashlib.blake2b(digest_size=8)
    h.update(f"{n}\x1e{p}\x1e".encode())
    h.update("\x1f".join(masked[:p]).encode("utf-8", "surrogatepass"))
    h.update(b"\x1e")
    h.update("\x1f".join(masked[p + 1:]).encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest(), "little")


@lru_cache(maxsize=16384)
def _published_var(tok: str) -> bool:
    """A constant token that the template string writes as a variable (`user=root` → `user=<*>`: the fixed
    words, digit and path pieces of `normalize_template`): a line differing only there fits the published
    template, so it may join it whatever the model reads."""
    return WILDCARD not in tok and tok != "" and WILDCARD in normalize_template(tok)


def _is_free(tok: str) -> bool:
    return tok == WILDCARD or tok == ""


_RUN = "\x00run"


def _collapse_runs(tokens: list[str], mark: str = _RUN) -> list[str]:
    """The tokens with each run of adjacent variable tokens replaced by one `mark`."""
    out: list[str] = []
    for t in tokens:
        if _is_free(t):
            if not out or out[-1] != mark:
                out.append(mark)
        else:
            out.append(t)
    return out


@lru_cache(maxsize=16384)
def _token_pattern(masked: str) -> re.Pattern[str]:
    parts = _SEGMENT.split(masked)
    return re.compile("".join("(.*?)" if p == WILDCARD else re.escape(p) for p in parts) + r"\Z", re.S)


class LearnedMiner(TemplateMiner):
    """Template miner with the learned tagger behind two fast paths.

    1. exact: a hash of the generically masked token sequence (lines that differ only in numbers, addresses,
       ids...) answers a known line in one dictionary lookup;
    2. template match: a line whose tokens fit a known template (its constants equal, its variables anything,
       `<*>` inside a token as a pattern) joins it; an index on each template's first constant keeps this to a
       few candidates;
    3. model: lines that match nothing are tagged by the model, in batches; the model's mask replaces the
       generic one and the line joins the most similar template of its tree leaf when at least `similarity` of
       its tokens agree and every token where they differ is one the model thinks variable (`gate`), refining
       that template (same id, old string recorded); otherwise it founds a template.

    `add_batch` gives exactly what `add` line by line gives (the model's reading of a line does not depend on
    the state, and every line is re-checked against templates made earlier in its batch)."""

    def __init__(self, tagger: Any = None, similarity: float = LEARNED_SIMILARITY, gate: float = GATE,
                 vary: int = VARY, depth: int = 2, max_children: int = 100, cache_size: int = 200_000,
                 embed_merge: float | None = None, settle: int = SETTLE) -> None:
        super().__init__(similarity=similarity, depth=depth, max_children=max_children, cache_size=cache_size)
        self.tagger = tagger
        self.gate = gate
        self.settle = settle
        self.vary = vary
        self.embed_merge = embed_merge
        """If set, a line may also join a template the gate refuses when the cosine of their event embeddings
        is at least this (the embedding head as a grouping signal; off by default, see RESULTS.md)."""
        self._slots: dict[int, tuple[set[str], list[LearnedCluster]]] = {}
        self._runs: dict[tuple[str, ...], list[LearnedCluster]] = {}
        """Templates by their tokens with variable runs collapsed: members of different lengths are one event
        with a variable-length list of values."""
        self._refined: set[str] = set()
        self._index: dict[int, tuple[dict[tuple[int, str], list[LearnedCluster]], list[LearnedCluster], list[int]]] = {}
        self._seq = 0
        self._version = 0
        self._touched: list[LearnedCluster] = []
        """Templates created or refined during the current batch (what later lines of it must be re-checked
        against)."""
        self.stats = {"exact": 0, "match": 0, "model": 0}

    # -- public API ---------------------------------------------------------------------------------------
    def add(self, content: str) -> Match:
        return self.add_batch([content])[0]

    def add_batch(self, contents: list[str]) -> list[Match]:
        if len(self._exact) >= self.cache_size:
            self._exact.clear()
        if len(self._slots) >= self.cache_size:  # bounded memory on endless streams; evidence restarts
            self._slots.clear()
        n = len(contents)
        tokens = [tokenize(c) for c in contents]
        keys = [tuple(mask_tokens(t)) for t in tokens]
        first: list[LearnedCluster | None] = [None] * n
        need: dict[tuple[str, ...], int] = {}
        exact = self._exact
        for i in range(n):
            if keys[i] in exact:
                continue
            cl = self._match(tokens[i], keys[i])
            if cl is None:
                # one line per masked shape: the next line of that shape finds it in `exact` by then
                need.setdefault(keys[i], i)
            else:
                first[i] = cl
        tagged: dict[int, Tagged] = {}
        if need:
            idx = list(need.values())
            tagged = dict(zip(idx, self._tag([tokens[i] for i in idx]), strict=True))
        v0 = self._version
        touched = self._touched = []
        out: list[Match] = []
        for i in range(n):
            key, toks = keys[i], tokens[i]
            created = changed = False
            cl = exact.get(key)
            if cl is not None:
                self.stats["exact"] += 1
            else:
                cl = first[i]
                if cl is not None and self._version != v0:
                    cl = self._recheck(cl, toks, key, touched)
                elif cl is None and self._version != v0:
                    cl = self._match(toks, key)
                if cl is not None:
                    self.stats["match"] += 1
                else:
                    tg = tagged.get(i)
                    if tg is None:  # a line whose template a refinement earlier in this batch made unfit
                        tg = self._tag([toks])[0]
                    cl, created, changed = self._place(toks, tg)  # adds what it creates or refines to touched
                    exact[key] = cl
                    self._version += 1
                    self.stats["model"] += 1
            cl.size += 1
            out.append(Match(cl.template_id, cl.template, self._params(cl, toks), created, changed))
        return out

    # -- persistence ----------------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        state = super().to_state()
        state["kind"] = "learned"
        state["learned_version"] = LEARNED_STATE_VERSION
        for d, c in zip(state["clusters"], self._clusters.values(), strict=True):
            d["probs"] = list(getattr(c, "probs", []))
            if getattr(c, "collapse", False):
                d["collapse"] = True
        # variation evidence: slot key, the words seen there, the templates of those lines
        state["slots"] = [[str(k), sorted(words), [c.template_id for c in cls]]
                          for k, (words, cls) in self._slots.items()]
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any] | None, similarity: float = LEARNED_SIMILARITY,  # type: ignore[override]
                   tagger: Any = None, gate: float = GATE, vary: int = VARY) -> LearnedMiner:
        miner = cls(tagger=tagger, similarity=similarity, gate=gate, vary=vary)
        if not state or state.get("version") != STATE_VERSION or state.get("kind") != "learned":
            return miner
        for c in state["clusters"]:
            route = tuple(c["route"])
            toks = list(c["tokens"])
            probs = list(c.get("probs") or [1.0 if WILDCARD in t or t == "" else 0.0 for t in toks])
            cl = LearnedCluster(c["id"], toks, route, int(c.get("size", 0)), list(c.get("previous", [])),
                                probs=probs, seq=miner._seq, collapse=bool(c.get("collapse", False)))
            miner._seq += 1
            miner._clusters[cl.template_id] = cl
            miner._leaves.setdefault(route, []).append(cl)
            for depth in range(1, len(route)):
                miner._children.setdefault(route[:depth], set()).add(route[depth])
            miner._add_index(cl)
            miner._note_runs(cl, record=False)
        for key, words, ids in state.get("slots", []):
            cls = [miner._clusters[t] for t in ids if t in miner._clusters]
            miner._slots[int(key)] = (set(words), cls)  # type: ignore[arg-type]
        return miner

    # -- internals ------------------------------------------------------------------------------------------
    def _tag(self, lines: list[list[str]]) -> list[Tagged]:
        if self.tagger is None:
            return [Tagged(mask_tokens(t), [1.0 if WILDCARD in m else 0.0 for m in mask_tokens(t)]) for t in lines]
        return self.tagger(lines)

    @staticmethod
    def _plan(cl: LearnedCluster) -> tuple[Any, ...]:
        consts = tuple((p, t) for p, t in enumerate(cl.tokens) if not _is_free(t) and WILDCARD not in t)
        pats = tuple((p, t, _token_pattern(t)) for p, t in enumerate(cl.tokens)
                     if not _is_free(t) and WILDCARD in t)
        params = tuple(p for p, t in enumerate(cl.tokens) if _is_free(t) or WILDCARD in t)
        return consts, pats, params

    def _add_index(self, cl: LearnedCluster) -> None:
        cl.checks = self._plan(cl)
        by_key, free, positions = self._index.setdefault(len(cl.tokens), ({}, [], []))
        consts = cl.checks[0]
        if consts:
            p, t = consts[0]
            by_key.setdefault((p, t), []).append(cl)
            if p not in positions:
                positions.append(p)
                positions.sort()
        else:
            free.append(cl)

    def _drop_index(self, cl: LearnedCluster) -> None:
        by_key, free, _ = self._index[len(cl.tokens)]
        consts = cl.checks[0] if cl.checks else ()
        if consts:
            lst = by_key.get(consts[0])
            if lst is not None and cl in lst:
                lst.remove(cl)
        elif cl in free:
            free.remove(cl)

    @staticmethod
    def _fits(cl: LearnedCluster, toks: list[str], key: tuple[str, ...]) -> bool:
        consts, pats = cl.checks[0], cl.checks[1]
        for p, t in consts:
            tok = toks[p]
            if tok != t and (GLUE not in tok or tok.replace(GLUE, " ") != t):
                return False
        for p, t, rx in pats:
            if key[p] != t and rx.match(toks[p].replace(GLUE, " ") if GLUE in toks[p] else toks[p]) is None:
                return False
        return True

    @staticmethod
    def _rank(cl: LearnedCluster) -> tuple[int, int]:
        return (len(cl.checks[0]) + len(cl.checks[1]), -cl.seq)

    def _match(self, toks: list[str], key: tuple[str, ...]) -> LearnedCluster | None:
        entry = self._index.get(len(toks))
        if entry is None:
            return None
        by_key, free, positions = entry
        best: LearnedCluster | None = None
        best_rank: tuple[int, int] = (-1, 0)
        for p in positions:
            tok = toks[p]
            cands = by_key.get((p, tok if GLUE not in tok else tok.replace(GLUE, " ")))
            if not cands:
                continue
            for cl in cands:
                r = self._rank(cl)
                if r > best_rank and self._fits(cl, toks, key):
                    best, best_rank = cl, r
        for cl in free:
            r = self._rank(cl)
            if r > best_rank and self._fits(cl, toks, key):
                best, best_rank = cl, r
        return best

    def _recheck(self, cl: LearnedCluster, toks: list[str], key: tuple[str, ...],
                 touched: list[LearnedCluster]) -> LearnedCluster:
        """The template a line matched before this batch's model lines were placed, re-ranked against the
        templates those lines created or refined (what line-by-line processing would have seen)."""
        if cl in touched:
            return self._match(toks, key) or cl
        best, best_rank = cl, self._rank(cl)
        n = len(toks)
        for c in touched:
            if len(c.tokens) == n:
                r = self._rank(c)
                if r > best_rank and self._fits(c, toks, key):
                    best, best_rank = c, r
        return best

    def _place(self, toks: list[str], tg: Tagged) -> tuple[LearnedCluster, bool, bool]:
        masked = tg.masked
        route = self._route(masked)
        leaf = self._leaves.setdefault(route, [])
        cl = self._best_gated(leaf, masked, tg.var_prob, tg.embedding)
        if cl is not None:
            before = list(cl.tokens)
            changed = self._refine(cl, masked, tg.var_prob)
            for p, (a, b) in enumerate(zip(before, cl.tokens, strict=True)):
                if a != b and not _is_free(a) and WILDCARD not in a:  # the slot holds a variable now
                    slot = self._slots.get(_slot_key(len(masked), p, masked))
                    if slot is not None:
                        self._generalise_siblings(slot[1], p, masked, cl)
            self._note_slots(masked, cl)
            return cl, False, changed
        varied = self._note_slots(masked, None)
        if varied is not None:
            p, siblings = varied
            probs = list(tg.var_prob)
            probs[p] = max(probs[p], self.gate)
            # the candidates are the templates of the slot's earlier words (the tree routes on the first tokens,
            # so when the slot is one of them those templates sit in other leaves)
            known = {id(c) for c in siblings}
            cands = [c for c in siblings if len(c.tokens) == len(masked)] + [c for c in leaf if id(c) not in known]
            cl = self._best_gated(cands, masked, probs)
            if cl is not None:  # the slot holds a variable: generalise the templates of its earlier words too
                changed = self._refine(cl, masked, probs)
                self._generalise_siblings(siblings, p, masked, cl)
                self._note_slots(masked, cl)
                return cl, False, changed
        cl = self._found_learned(masked, tg.var_prob, route)
        cl.embedding = tg.embedding
        leaf.append(cl)
        self._add_index(cl)
        self._note_slots(masked, cl)
        return cl, True, False

    def _generalise_siblings(self, siblings: list[LearnedCluster], p: int, masked: list[str],
                             cl: LearnedCluster) -> None:
        """Slot `p` holds a variable: the templates of the lines that differed from `masked` only in that slot's
        word take the variable too (ids kept, refinement recorded)."""
        for sib in siblings:
            if sib is not cl and len(sib.tokens) == len(masked) and sib.tokens[p] != WILDCARD:
                sib.probs[p] = max(sib.probs[p], self.gate)
                gen = list(sib.tokens)
                # what the words share up to a delimiter stays (`name=<*>`), as when a line merges
                gen[p] = merge_tokens(sib.tokens[p], masked[p]) if sib.tokens[p] and masked[p] else WILDCARD
                self._refine(sib, gen, sib.probs)
        # templates now equal: the lines cached under the younger ones go where the template match sends them (the
        # oldest), so a restored miner, whose cache starts empty, gives the same ids
        same = [c for c in (cl, *siblings) if c.tokens == cl.tokens]
        if len(same) > 1:
            oldest = min(same, key=lambda c: c.seq)
            younger = {id(c) for c in same if c is not oldest}
            exact = self._exact
            for k, c in exact.items():
                if id(c) in younger:
                    exact[k] = oldest

    def _note_slots(self, masked: list[str], cl: LearnedCluster | None) -> tuple[int, list[LearnedCluster]] | None:
        """Variation evidence: for each constant word of a model-path line, the set of words seen in that slot
        among lines otherwise identical. With `cl` None, only look: the first slot whose words would reach
        `vary` distinct values with this line (it holds a variable after all), with the templates of those
        lines. With `cl`, record this line's words and template."""
        n = len(masked)
        for p, tok in enumerate(masked):
            if _is_free(tok) or WILDCARD in tok:
                continue
            key = _slot_key(n, p, masked)
            slot = self._slots.get(key)
            if cl is None:
                if slot is not None and tok not in slot[0] and len(slot[0]) + 1 >= self.vary:
                    return p, list(slot[1])
                continue
            if slot is None:
                slot = self._slots[key] = (set(), [])
            if len(slot[0]) < self.vary:
                slot[0].add(tok)
            if cl not in slot[1]:
                slot[1].append(cl)
        return None

    def _best_gated(self, leaf: list[Cluster], masked: list[str], probs: list[float],
                    embedding: Any = None) -> LearnedCluster | None:
        best: LearnedCluster | None = None
        best_key: tuple[float, int, int] = (-1.0, -1, 0)
        n = len(masked) or 1
        for c in leaf:
            assert isinstance(c, LearnedCluster)
            same = 0
            ok = True
            for p, (a, b) in enumerate(zip(c.tokens, masked, strict=True)):
                if a == b:
                    same += 1
                elif not (probs[p] >= self.gate or _published_var(a) or _published_var(b)
                          or (c.probs[p] >= self.gate and (c.size < self.settle or _is_free(a) or WILDCARD in a))):
                    ok = False
                    if self.embed_merge is None:
                        break
            if not ok and (self.embed_merge is None or embedding is None or c.embedding is None
                           or float(embedding @ c.embedding) < self.embed_merge):
                continue
            key = (same / n, c.constants, -c.seq)
            if key > best_key:
                best, best_key = c, key
        if best is None or (masked and best_key[0] < self.similarity):
            return None
        return best

    def _found_learned(self, masked: list[str], probs: list[float], route: tuple[Any, ...]) -> LearnedCluster:
        base = stable_id("tpl", " ".join(masked), length=16)
        tid, k = base, 1
        while tid in self._clusters:
            k += 1
            tid = stable_id("tpl", " ".join(masked), k, length=16)
        cl = LearnedCluster(tid, list(masked), route, probs=list(probs), seq=self._seq)
        self._seq += 1
        self._clusters[tid] = cl
        self._touched.append(cl)
        self._note_runs(cl)
        return cl

    def _note_runs(self, cl: LearnedCluster, record: bool = True) -> None:
        """File a template under its run-collapsed tokens; when that key holds templates of different lengths, they
        all write their variable runs as one `<*>` (so they end as one template string, one event). A changed
        string is recorded as a refinement of the other members (`cl` itself is new or being refined)."""
        key = tuple(_collapse_runs(cl.tokens)) if any(_is_free(t) for t in cl.tokens) else None
        if key == cl.run_key:
            return
        if cl.run_key is not None:  # refined: leave its old key (by identity; clusters compare by value)
            old = self._runs.get(cl.run_key, [])
            for k, c in enumerate(old):
                if c is cl:
                    del old[k]
                    break
        cl.run_key = key
        if key is None:
            return
        members = self._runs.setdefault(key, [])
        members.append(cl)
        if len(members) > 1 and len({len(c.tokens) for c in members}) > 1:
            for c in members:
                if not c.collapse:
                    before = c.template
                    c.collapse = True
                    c._string = None
                    if record and c is not cl and c.template != before:  # `cl`'s own change: its caller's
                        c.previous.append(before)
                        self._refined.add(c.template_id)

    def _refine(self, cl: LearnedCluster, masked: list[str], probs: list[float]) -> bool:
        new = list(cl.tokens)
        for p, (a, b) in enumerate(zip(cl.tokens, masked, strict=True)):
            if a != b and a != WILDCARD:
                new[p] = WILDCARD if (a == "" or b == "") else merge_tokens(a, b)
            cl.probs[p] = max(cl.probs[p], probs[p])
        if new == cl.tokens:
            return False
        old = cl.template
        self._touched.append(cl)
        self._drop_index(cl)
        cl.tokens = new
        cl._string = None
        cl._constants = -1
        self._add_index(cl)
        self._note_runs(cl)
        if cl.template != old:
            cl.previous.append(old)
            self._refined.add(cl.template_id)
            return True
        return False

    def take_refined(self) -> set[str]:
        """Ids of templates refined since the last call (also those refined by another line's evidence)."""
        out, self._refined = self._refined, set()
        return out

    def _params(self, cluster: Cluster, tokens: list[str]) -> list[str]:
        params: list[str] = []
        checks = getattr(cluster, "checks", None)
        if checks:
            for p in checks[2]:  # the positions that are not constants, in order
                t, raw = cluster.tokens[p], tokens[p]
                if t == WILDCARD:
                    params.append(raw if GLUE not in raw else unglue(raw))
                elif t == "":
                    if params:
                        params[-1] = f"{params[-1]} {unglue(raw)}"
                    else:
                        params.append(unglue(raw))
                elif t != raw:
                    m = _token_pattern(t).match(unglue(raw))
                    params.extend(g for g in (m.groups() if m else [unglue(raw)]))
            return params
        for t, raw in zip(cluster.tokens, tokens, strict=True):
            if t == raw:
                continue
            if t == WILDCARD:
                params.append(unglue(raw))
            elif t == "":
                if params:
                    params[-1] = f"{params[-1]} {unglue(raw)}"
                else:
                    params.append(unglue(raw))
            elif WILDCARD in t:
                m = _token_pattern(t).match(unglue(raw))
                params.extend(g for g in (m.groups() if m else [unglue(raw)]))
        return params


# -- the structuring stage ----------------------------------------------------------------------------------
STRUCTURERS = ("baseline", "learned")


def default_structurer() -> str:
    """`learned` when the shipped model is installed, else `baseline`."""
    return "learned" if structurer_model_path().is_file() else "baseline"


def make_miner(kind: str | None = None, similarity: float = 0.7, state: dict[str, Any] | None = None, *,
               model_path: str | Path | None = None, device: str | None = None) -> TemplateMiner:
    """The miner of a structurer kind (None or "auto": the kind a saved state was made with, else the default:
    learned when its model file is there), restored from `state` when it was saved by the same kind."""
    if kind in (None, "auto"):
        saved = (state or {}).get("kind")
        if saved is None and state and state.get("clusters"):
            saved = "baseline"  # a stream resumed from a baseline state keeps its template ids
        kind = saved or ("learned" if model_path is not None or structurer_model_path().is_file() else "baseline")
    if kind not in STRUCTURERS:
        from llmid.errors import ConfigError

        raise ConfigError(f"Unknown structurer {kind!r}: use one of {', '.join(STRUCTURERS)}.")
    if kind == "baseline":
        return TemplateMiner.from_state(state if (state or {}).get("kind") in (None, "baseline") else None,
                                        similarity)
    tagger = Tagger(model_path, device=device)
    return LearnedMiner.from_state(state, tagger=tagger)


class Structurer:
    """The structuring stage over record batches: fills template fields and keeps template documents current.
    The miner is the baseline `TemplateMiner` or the `LearnedMiner` (model behind the fast paths); both
    answer `add_batch`, so a batch of records costs at most one model call per batch of unknown lines."""

    def __init__(self, miner: TemplateMiner | None = None) -> None:
        self.miner = miner if miner is not None else TemplateMiner()
        self._docs: dict[str, Template] = {}
        self._dirty: set[str] = set()

    @classmethod
    def from_state(cls, state: dict[str, Any] | None, similarity: float = 0.7,
                   kind: str | None = None, model_path: str | Path | None = None) -> Structurer:
        return cls(make_miner(kind, similarity, state, model_path=model_path))

    @property
    def kind(self) -> str:
        return "learned" if isinstance(self.miner, LearnedMiner) else "baseline"

    def structure(self, records: list[LogRecord]) -> None:
        matches = self.miner.add_batch([rec.head for rec in records])
        for rec, m in zip(records, matches, strict=True):
            rec.template_id, rec.template, rec.params = m.template_id, m.template, m.params
            rec.template_origin = self._origin(m.template_id, m.template)
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
        take = getattr(self.miner, "take_refined", None)
        if take is not None:  # templates refined by variation evidence from another line
            self._dirty.update(tid for tid in take() if tid in self._docs)

    def _origin(self, template_id: str, current: str) -> str:
        """The template's first string (its oldest recorded one once refined; see `LogRecord.template_origin`)."""
        cl = self.miner._clusters.get(template_id)
        return cl.previous[0] if cl is not None and cl.previous else current

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
