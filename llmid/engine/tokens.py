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
_LEAD = "([{\"'#<=:"
_TRAIL = ")]}\"',.;:>!?"
_NUMBERISH = re.compile(
    r"[-+~]?(?:0x[0-9a-fA-F]+|\d[\d.,:_/\-]*)(?:[a-zA-Z%µ]{0,4})?"
)
_HEX = re.compile(r"(?:0x)?[0-9a-fA-F]{6,}")
_IP = re.compile(r"(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?|[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_KEY_END = "=:([{"
_KEYVAL = re.compile(r"([A-Za-z_][\w.\-]*?[=:.#@([{]+)(.+)")
_PATH = re.compile(r"(?:[a-zA-Z][a-zA-Z0-9+.\-]*:)?/{1,2}[^/\s]+(?:/[^/\s]*)*")


_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*"
_DATETIME = re.compile(
    rf"\b(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,? +)?{_MONTH} +\d{{1,2}},? +\d{{1,2}}:\d{{2}}:\d{{2}}(?: +\d{{4}})?\b"
    r"|\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
)
_CLOCK = re.compile(r"\d:\d\d:\d\d").search
GLUE = "\x00"
"""Joins the words of one date-time into one token; `unglue` turns it back into spaces in parameters."""


def _glue(m: re.Match[str]) -> str:
    return GLUE.join(m.group(0).split())


def tokenize(content: str) -> list[str]:
    """Whitespace tokens: the unit templates are aligned on (Loghub templates join tokens by one space).
    A date-time written with spaces (`Sat Jun 18 02:08:10 2005`) is one token, so it becomes one variable."""
    if ":" in content and _CLOCK(content) is not None:
        content = _DATETIME.sub(_glue, content)
    return content.split()


def unglue(token: str) -> str:
    return token.replace(GLUE, " ")


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
    # one digit in a short word is a name more often than a value (`L2`, `C1`, `u0`, `ee0`), after a letter
    return digits >= 2 or (digits == 1 and len(core) <= 3 and not core[0].isalpha())


_NAME_EQ = re.compile(r"[A-Za-z_]\w*=")
"""A name with digits is a key only before `=` (`dbcr0=`); elsewhere it is more often part of one value
(`R02-M1-N0-C:J12`)."""
_MAC = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){3,}")


def _is_key(key: str, value: str, core: str) -> bool:
    """Whether `key` (ending in its delimiter) names the value after it, rather than being the first part of one
    value: not the scheme or host of a URL (`akka.tcp://h:1`, `file:/x`), a drive (`C:\\x`) or the first group of
    a hardware address (`FF:F2:9F:...`)."""
    if (value[:1] in "/\\" and key[-1] == ":") or _MAC.fullmatch(core):
        return False
    return not ("//" in core and _PATH.fullmatch(core))


@lru_cache(maxsize=65536)
def _mask_cached(tok: str) -> str:
    i, j = 0, len(tok)
    while i < j and tok[i] in _LEAD:
        i += 1
    while j > i and tok[j - 1] in _TRAIL:
        j -= 1
    core = tok[i:j]
    if "," in core and len(core) > 2:
        parts = [_mask_cached(p) if p else p for p in core.split(",")]
        return tok[:i] + ",".join(parts) + tok[j:]
    if _is_variable_core(core):
        if core[:1] == "/":  # a path takes the trailing `.`, `>`, `?` along (the path rule of METRICS.md does)
            while j < len(tok) and tok[j] in ".>?":
                j += 1
        kv = _KEYVAL.fullmatch(core)
        if kv and (_HAS_DIGIT(kv.group(1)) is None or _NAME_EQ.fullmatch(kv.group(1))) \
                and _is_key(kv.group(1), kv.group(2), core):
            return tok[:i] + kv.group(1) + _mask_cached(kv.group(2)) + tok[j:]
        return tok[:i] + WILDCARD + tok[j:]
    kv = _KEYVAL.fullmatch(core)
    if kv and (_HAS_DIGIT(kv.group(2)) is not None or "/" in kv.group(2)) and _is_key(kv.group(1), kv.group(2), core):
        value = _mask_cached(kv.group(2))  # the value may itself be key=value (`f(orient=-1,`)
        if value != kv.group(2):
            return tok[:i] + kv.group(1) + value + tok[j:]
    return tok


def mask_token(tok: str) -> str:
    """The token with its variable part replaced by `<*>` (the whole token, or the value of key=value)."""
    if _HAS_DIGIT(tok) is None and "/" not in tok:
        return tok
    return _mask_cached(tok)


def merge_tokens(a: str, b: str) -> str:
    """Generalise two differing tokens to a wildcard, keeping what they share up to a delimiter: brackets,
    punctuation and a `key=` / `key:` prefix (`rhost=<*>`)."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    while i > 0 and a[i - 1] not in _KEY_END and not (a[:i].strip(_LEAD) == ""):
        i -= 1
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
