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


# Khan et al. ICSE'22 template-correction rules (METRICS.md), as the upstream evaluator codes them; applied to
# every template we emit so that templates compare exactly with the corrected ground truth.
_PATH_SPLIT = re.compile(r"""([\s,!;:=|"'\[\](){}])""")
_TOKEN_SPLIT = re.compile(r"""([\s,!;:=|"'\[\](){}.\-+@#$%&])""")
_PATH_LIKE = re.compile(r"(?:/[^/]+)+")
_DIGITS = re.compile(r"\d+")
_GLUED_VAR = re.compile(r"[^\s/]*<\*>[^\s/]*")
_WS_RUN = re.compile(r"\s+")
_FIXED_WORDS = frozenset({"true", "false", "null", "root", "admin"})


@lru_cache(maxsize=65536)
def normalize_template(t: str) -> str:
    """Rules in order: DS (trim, collapse whitespace), PS (path-like pieces), BL/US (true/false/null/root/admin),
    DG (all-digit pieces), WV (pieces with `<*>` glued to other text), DV (`<*>.<*>`), CV (`<*><*>`)."""
    t = _WS_RUN.sub(" ", t.strip())
    t = "".join(WILDCARD if _PATH_LIKE.fullmatch(piece) else piece for piece in _PATH_SPLIT.split(t))
    out: list[str] = []
    for tok in _TOKEN_SPLIT.split(t):
        if tok.lower() in _FIXED_WORDS or _DIGITS.fullmatch(tok):
            tok = WILDCARD
        elif _GLUED_VAR.fullmatch(tok) and tok != "<*>/<*>":
            tok = WILDCARD
        out.append(tok)
    t = "".join(out)
    for pattern in ("<*>.<*>", "<*><*>"):
        while pattern in t:
            t = t.replace(pattern, WILDCARD)
    return t
