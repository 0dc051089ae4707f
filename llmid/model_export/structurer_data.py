"""Training data of the learned structurer: Loghub-2k lines with per-character variable labels.

A line's labels come from its ground-truth template: the template becomes a regular expression (constants
literal, each `<*>` a lazy group, whitespace flexible) matched against the line's Content; every character
inside a `<*>` group is variable. The labels are per character, not per token, because the ground truth masks
inside tokens (`blk_<*>`, `<*>:<*>` for an address and port, `uid=<*>`): the model learns where a variable
starts and ends, and templates are rebuilt from its flags with the same Khan et al. normaliser the evaluator
uses. A second label per token says whether the whitespace before it lies inside a variable (a value with spaces
inside, e.g. a date written out).

No torch here: the throughput benchmark reuses `fresh_values` to build its stream.
"""

from __future__ import annotations

import os
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from llmid.engine.structurer import char_index, span_token, token_spans
from llmid.engine.tokens import mask_tokens, tokenize

__all__ = [
    "Example",
    "align_labels",
    "fresh_values",
    "line_targets",
    "load_examples",
    "sample_examples",
    "swap_words",
    "word_pool",
]


@dataclass(slots=True)
class Example:
    system: str
    template: str
    """Ground-truth template (Khan-corrected)."""
    group: int
    """Index of (system, template): lines with the same group belong to the same event."""
    content: str
    labels: bytes
    """One byte per character of `content`: 1 inside a variable."""


@lru_cache(maxsize=8192)
def _template_regex(template: str) -> re.Pattern[str]:
    out = []
    for piece in re.split(r"(<\*>|\s+)", template.strip()):
        if piece == "<*>":
            out.append("(.*?)")
        elif piece and piece.isspace():
            out.append(r"\s+")
        elif piece:
            out.append(re.escape(piece))
    return re.compile(r"\s*" + "".join(out) + r"\s*\Z", re.S)


def align_labels(content: str, template: str) -> bytes | None:
    """Per-character variable labels of `content` under `template`, or None when the template does not match
    the line (a handful of ground-truth rows whose template was normalised beyond the line's text)."""
    try:
        m = _template_regex(template).match(content)
    except RecursionError:  # pragma: no cover - pathological templates
        return None
    if m is None:
        return None
    lab = bytearray(len(content))
    for g in range(1, (m.lastindex or 0) + 1):
        s, e = m.span(g)
        lab[s:e] = b"\x01" * (e - s)
    return bytes(lab)


def line_targets(content: str, labels: bytes) -> tuple[list[str], list[list[int]], list[int]]:
    """(tokens as `tokenize` gives them, per-token character labels, per-token join labels).

    Character labels are per character of the token text (a whitespace run inside a glued date-time is one
    glue character, labelled like its first whitespace character). Join label of token j > 0: the whitespace
    before it is inside a variable that the previous token's last character and this token's first one share.
    """
    tokens: list[str] = []
    chars: list[list[int]] = []
    joins: list[int] = []
    for s, e in token_spans(content):
        tok = span_token(content, s, e)
        lab: list[int] = []
        i = s
        while i < e:
            if content[i].isspace():
                lab.append(labels[i])
                while i < e and content[i].isspace():
                    i += 1
            else:
                lab.append(labels[i])
                i += 1
        assert len(lab) == len(tok), (tok, lab)
        join = 0
        if tokens and s > 0 and labels[s - 1] and content[s - 1].isspace() and chars[-1][-1] and lab[0]:
            join = 1
        tokens.append(tok)
        chars.append(lab)
        joins.append(join)
    return tokens, chars, joins


def seen_labels(char_labels: list[int]) -> list[int]:
    """The labels of the characters the model sees of a token (see `char_index`)."""
    return [char_labels[k] for k in char_index(len(char_labels))]


def load_examples(data_dir: str, systems: list[str], gt: str = "corrected") -> list[Example]:
    """Every line of the given systems with its labels (lines whose template does not align are skipped)."""
    from llmid.evaluation.parsing_eval import gt_paths, load_gt

    out: list[Example] = []
    groups: dict[tuple[str, str], int] = {}
    for system in systems:
        _, path = gt_paths(data_dir, system, gt)
        if not os.path.isfile(path):
            continue
        contents, templates = load_gt(path)
        for content, template in zip(contents, templates, strict=True):
            if not template:
                continue
            lab = align_labels(content, template)
            if lab is None:
                continue
            g = groups.setdefault((system, template), len(groups))
            out.append(Example(system, template, g, content, lab))
    return out


def sample_examples(examples: list[Example], per_template: int, seed: int) -> list[Example]:
    """Up to `per_template` lines of each ground-truth template, preferring lines that differ after generic
    masking (distinct shapes teach more than repeats), so large templates do not drown the rare ones."""
    rng = random.Random(seed)
    by_group: dict[int, list[Example]] = defaultdict(list)
    for ex in examples:
        by_group[ex.group].append(ex)
    out: list[Example] = []
    for g in sorted(by_group):
        items = by_group[g]
        seen: dict[tuple[str, ...], list[Example]] = {}
        for ex in items:
            seen.setdefault(tuple(mask_tokens(tokenize(ex.content))), []).append(ex)
        shapes = list(seen.values())
        rng.shuffle(shapes)
        picked: list[Example] = []
        distinct_contents: set[str] = set()
        rnd = 0
        while len(picked) < per_template:
            progressed = False
            for bucket in shapes:
                if rnd < len(bucket) and len(picked) < per_template:
                    ex = bucket[rnd]
                    if ex.content not in distinct_contents:
                        distinct_contents.add(ex.content)
                        picked.append(ex)
                    progressed = True
            if not progressed:
                break
            rnd += 1
        out.extend(picked)
    return out


_ALPHA_RUN = re.compile(r"[A-Za-z]+")


def word_pool(examples: list[Example], limit: int = 5000) -> list[str]:
    """Constant words (letters only, 2-20 long) of the training lines, the replacements of `swap_words`."""
    seen: dict[str, None] = {}
    for ex in examples:
        for m in _ALPHA_RUN.finditer(ex.content):
            s, e = m.span()
            if 2 <= e - s <= 20 and not any(ex.labels[s:e]):
                seen.setdefault(m.group(0), None)
                if len(seen) >= limit:
                    return list(seen)
    return list(seen)


def swap_words(content: str, labels: bytes, rng: random.Random, pool: list[str]) -> tuple[str, bytes]:
    """The line with each all-letter variable value replaced by a real constant word of another line, so a
    variable cannot be told by looking random: the model has to read its context (`user <*>`, `key=<*>`)."""
    out: list[str] = []
    lab = bytearray()
    i, n = 0, len(content)
    while i < n:
        if labels[i]:
            j = i
            while j < n and labels[j]:
                j += 1
            span = content[i:j]
            if span.isalpha() and pool:
                word = rng.choice(pool)
                out.append(word)
                lab.extend(b"\x01" * len(word))
            else:
                out.append(span)
                lab.extend(labels[i:j])
            i = j
        else:
            out.append(content[i])
            lab.append(0)
            i += 1
    return "".join(out), bytes(lab)


_LOWER_HEX, _UPPER_HEX = "abcdef", "ABCDEF"
_LOWER_REST = "ghijklmnopqrstuvwxyz"
_UPPER_REST = "GHIJKLMNOPQRSTUVWXYZ"


def fresh_values(content: str, labels: bytes, rng: random.Random) -> str:
    """The line with every variable character replaced by a random one of the same kind (digit, hex letter,
    other letter, same case); punctuation and whitespace stay, so a value keeps its shape but not its text."""
    out = list(content)
    for i, flag in enumerate(labels):
        if not flag:
            continue
        ch = out[i]
        if ch.isdigit():
            out[i] = rng.choice("0123456789")
        elif ch in _LOWER_HEX:
            out[i] = rng.choice(_LOWER_HEX)
        elif ch in _UPPER_HEX:
            out[i] = rng.choice(_UPPER_HEX)
        elif "a" <= ch <= "z":
            out[i] = rng.choice(_LOWER_REST)
        elif "A" <= ch <= "Z":
            out[i] = rng.choice(_UPPER_REST)
    return "".join(out)
