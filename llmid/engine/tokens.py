"""Log tokenisation, generic variable masking and template normalisation, shared by runtime and training.

Masking is generic on purpose (numbers, hex, IPs, paths, UUIDs, key=value values): no per-system regexes, so
a system nobody tuned for is parsed the same way. Template strings follow the Loghub ground-truth conventions
(variables as `<*>`, Khan et al. ICSE'22 correction rules) so they compare exactly with benchmark templates.
"""

from __future__ import annotations

import re
from functools import lru_cache

WILDCARD = "<*>"

_HAS_DIGIT = re.compile(r"\d").search
_LEAD = "([{\"'#<"
_TRAIL = ")]}\"',.;:>!?"
_NUMBERISH = re.compile(
    r"[-+~]?(?:0x[0-9a-fA-F]+|\d[\d.,:_/\-]*)(?:[a-zA-Z%µ]{0,4})?"
)
_HEX = re.compile(r"(?:0x)?[0-9a-fA-F]{6,}")
_IP = re.compile(r"(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?|[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_KEYVAL = re.compile(r"([A-Za-z_][\w.\-]*?[=:])(.+)")
_PATH = re.compile(r"(?:[a-zA-Z][a-zA-Z0-9+.\-]*:)?/{1,2}[^/\s]+(?:/[^/\s]*)*")


def tokenize(content: str) -> list[str]:
    """Whitespace tokens: the unit templates are aligned on (Loghub templates join tokens by one space)."""
    return content.split()


def _is_variable_core(core: str) -> bool:
    """A token core (brackets and trailing punctuation stripped) that is a value, not a word."""
    if not core:
        return False
    if _HAS_DIGIT(core) is None:
        return len(core) > 1 and core[0] == "/" and core.count("/") >= 2
    if _NUMBERISH.fullmatch(core) or _IP.fullmatch(core) or _UUID.fullmatch(core):
        return True
    if _HEX.fullmatch(core) and len(core) >= 8:
        return True
    if "/" in core and _PATH.fullmatch(core):
        return True
    digits = sum(c.isdigit() for c in core)
    return digits >= 2 or (digits == 1 and len(core) <= 3)


@lru_cache(maxsize=65536)
def _mask_cached(tok: str) -> str:
    i, j = 0, len(tok)
    while i < j and tok[i] in _LEAD:
        i += 1
    while j > i and tok[j - 1] in _TRAIL:
        j -= 1
    core = tok[i:j]
    if _is_variable_core(core):
        kv = _KEYVAL.fullmatch(core)
        if kv and _HAS_DIGIT(kv.group(1)) is None and not kv.group(2).startswith("/"):
            return tok[:i] + kv.group(1) + _mask_cached(kv.group(2)) + tok[j:]
        return tok[:i] + WILDCARD + tok[j:]
    kv = _KEYVAL.fullmatch(core)
    if kv and _is_variable_core(kv.group(2)):
        return tok[:i] + kv.group(1) + WILDCARD + tok[j:]
    return tok


def mask_token(tok: str) -> str:
    """The token with its variable part replaced by `<*>` (the whole token, or the value of key=value)."""
    if _HAS_DIGIT(tok) is None and "/" not in tok:
        return tok
    return _mask_cached(tok)


def merge_tokens(a: str, b: str) -> str:
    """Generalise two differing tokens to a wildcard, keeping the brackets/punctuation they share."""
    i = 0
    n = min(len(a), len(b))
    while i < n and a[i] == b[i] and a[i] in _LEAD:
        i += 1
    j = 0
    while j < n - i and a[-1 - j] == b[-1 - j] and a[-1 - j] in _TRAIL:
        j += 1
    return a[:i] + WILDCARD + (a[len(a) - j:] if j else "")


def mask_tokens(tokens: list[str]) -> list[str]:
    return [mask_token(t) for t in tokens]


# Khan et al. ICSE'22 template-correction rules (METRICS.md), applied to every template we emit.
_DELIMS = r"\s,!;:=|\"'()\[\]{}"
_PS_SPLIT = re.compile(rf"([{_DELIMS}])")
_FULL_SPLIT = re.compile(rf"([{_DELIMS}.\-+@#$%&])")
_ABS_PATH = re.compile(r"/[^/\s]+(?:/[^/\s]*)*")
_SPECIAL = {"true", "false", "null", "root", "admin"}
_GLUED = re.compile(r"\S*<\*>\S*")


def _glued_to_wildcard(piece: str) -> str:
    if WILDCARD not in piece or piece == WILDCARD or "/" in piece:
        return piece
    return WILDCARD


@lru_cache(maxsize=65536)
def normalize_template(template: str) -> str:
    """Apply the Khan et al. correction rules so templates compare exactly with the corrected ground truth."""
    t = " ".join(template.split())  # DS
    t = "".join(WILDCARD if _ABS_PATH.fullmatch(p) else p for p in _PS_SPLIT.split(t))  # PS
    out = []
    for p in _FULL_SPLIT.split(t):  # BL, US, DG, WV
        if p.lower() in _SPECIAL or (p.isdigit() and p.isascii()):
            out.append(WILDCARD)
        else:
            out.append(_glued_to_wildcard(p))
    t = "".join(out)
    while "<*>.<*>" in t:  # DV
        t = t.replace("<*>.<*>", WILDCARD)
    while "<*><*>" in t:  # CV
        t = t.replace("<*><*>", WILDCARD)
    return t
