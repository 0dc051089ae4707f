"""Helpers shared by the pages and the API: request parsing with clear 400s, and what templates draw with.

Kept free of routes so both blueprints validate input the same way (the API's OpenAPI document promises the
same limits the pages enforce).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from markupsafe import Markup, escape

from llmid.documents import iso
from llmid.store.base import SearchQuery

MAX_PAGE = 1000
"""Largest `limit` a request may ask for."""
MAX_OFFSET = 1_000_000
_REL = re.compile(r"(\d{1,6}(?:\.\d{1,6})?)([smhdw])")
_EPOCH = re.compile(r"-?\d{1,10}(?:\.\d{1,6})?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
ID_PATTERN = "[A-Za-z0-9_.:-]{1,128}"
_ID = re.compile(ID_PATTERN)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
REL_PATTERN = r"^\d{1,6}(\.\d{1,6})?[smhdw]$"
EPOCH_PATTERN = r"^-?\d{1,10}(\.\d{1,6})?$"


class BadInput(ValueError):
    """A request parameter is invalid; the message is shown to the caller with status 400."""


def parse_time(value: str) -> float:
    """Exactly the documented forms: RFC 3339 date-time (`2026-05-01T12:00:00Z`), a date (`2026-05-01`, UTC
    midnight), epoch seconds, or relative to now (`30m`, `2h`, `7d`)."""
    v = value.strip()
    m = _REL.fullmatch(v)
    if m:
        return time.time() - float(m.group(1)) * _UNIT[m.group(2)]
    if _EPOCH.fullmatch(v):
        return float(v)
    if _DATE.fullmatch(v) or _DATETIME.fullmatch(v):
        try:
            dt = datetime.fromisoformat(v.upper().replace("Z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            return dt.timestamp()
        except (ValueError, OverflowError):
            pass
    raise BadInput(f"Cannot read time {value[:64]!r}: use RFC 3339 (2026-05-01T12:00:00Z), a date, epoch seconds, "
                   "or 30m, 2h, 7d.")


def int_arg(args: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(f"{name} must be an integer.") from None
    if not lo <= value <= hi:
        raise BadInput(f"{name} must be between {lo} and {hi}.")
    return value


def float_arg(args: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    raw = args.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadInput(f"{name} must be a number.") from None
    if not (math.isfinite(value) and lo <= value <= hi):
        raise BadInput(f"{name} must be between {lo} and {hi}.")
    return value


def id_arg(args: Mapping[str, str], name: str) -> str | None:
    raw = args.get(name)
    if raw is None:
        return None
    if not _ID.fullmatch(raw):
        raise BadInput(f"{name} must be an id of letters, digits and . _ : - (at most 128).")
    return raw


def text_arg(args: Mapping[str, str], name: str, max_len: int = 200) -> str | None:
    """A free-text argument: control characters become spaces; empty means "not given"."""
    raw = args.get(name) or ""
    if len(raw) > max_len:
        raise BadInput(f"{name} must be at most {max_len} characters.")
    raw = _CONTROL.sub(" ", raw).strip()
    return raw or None


def parse_query(args: Mapping[str, str], page_size: int = 50, forms: bool = False) -> SearchQuery:
    """SearchQuery from `q, level, service, template, incident, since, until, limit, offset`. With `forms`
    (pages), empty fields mean "not given", as an HTML form submits every field."""
    if forms:
        args = {k: v for k, v in args.items() if v.strip()}
    q = SearchQuery(
        text=text_arg(args, "q", 500),
        template_id=id_arg(args, "template"),
        level=text_arg(args, "level", 32),
        service=text_arg(args, "service", 128),
        incident_id=id_arg(args, "incident"),
        limit=int_arg(args, "limit", page_size, 0, MAX_PAGE),
        offset=int_arg(args, "offset", 0, 0, MAX_OFFSET),
    )
    since, until = args.get("since"), args.get("until")
    q.since = parse_time(since) if since is not None else None
    q.until = parse_time(until) if until is not None else None
    return q


def query_args(q: SearchQuery) -> dict[str, Any]:
    """The non-empty filters of a query as URL arguments (pagination links keep the filters)."""
    out = {"q": q.text, "template": q.template_id, "level": q.level, "service": q.service,
           "incident": q.incident_id}
    return {k: v for k, v in out.items() if v}


# -- drawing ---------------------------------------------------------------------------------------------------

def highlight(content: str, params: list[str]) -> Markup:
    """`content` with each template parameter wrapped in <mark>, found left to right (escaped throughout)."""
    out: list[str] = []
    pos = 0
    for p in params or []:
        if not p:
            continue
        i = content.find(p, pos)
        if i < 0:
            continue
        out.append(str(escape(content[pos:i])))
        out.append(f'<mark class="param">{escape(p)}</mark>')
        pos = i + len(p)
    out.append(str(escape(content[pos:])))
    return Markup("".join(out))


def short_time(ts: str | None) -> str:
    """`2026-05-07T06:05:00.147Z` → `2026-05-07 06:05:00.147` (tables stay narrow)."""
    return "" if not ts else ts.replace("T", " ").rstrip("Z")


def sparkline(counts: list[int], width: int = 160, height: int = 28) -> str:
    """An SVG polyline `points` attribute for counts over equal time buckets."""
    if not counts:
        return ""
    top = max(counts) or 1
    n = len(counts)
    step = width / max(1, n - 1)
    return " ".join(f"{i * step:.1f},{height - 2 - (c / top) * (height - 4):.1f}" for i, c in enumerate(counts))


def chain_layout(chain: list[dict[str, Any]], width: int = 860, box_h: int = 58, gap: int = 34) -> dict[str, Any]:
    """Positions for drawing the fault chain as a graph: one box per event, root cause first, arrows between
    consecutive events (the chain is causal order)."""
    nodes = []
    for i, ev in enumerate(chain):
        y = 10 + i * (box_h + gap)
        text = ev.get("template") or ""
        nodes.append({
            "x": 10, "y": y, "w": width - 20, "h": box_h, "i": i,
            "service": (ev.get("service") or {}).get("name") or "?",
            "template": text if len(text) <= 110 else text[:107] + "...",
            "score": float(ev.get("score") or 0.0),
            "lines": len(ev.get("lines") or []),
            "first_seen": short_time(ev.get("first_seen")),
            "level": (ev.get("log") or {}).get("level") or "",
        })
    edges = [{"x": width // 2, "y1": n["y"] + box_h, "y2": n["y"] + box_h + gap} for n in nodes[:-1]]
    return {"nodes": nodes, "edges": edges, "width": width,
            "height": 20 + len(nodes) * box_h + max(0, len(nodes) - 1) * gap}


def register_filters(app: Flask) -> None:
    app.jinja_env.filters["highlight"] = highlight
    app.jinja_env.filters["short_time"] = short_time
    app.jinja_env.filters["when"] = lambda ts: short_time(iso(float(ts))) if ts is not None else ""
    app.jinja_env.filters["pct"] = lambda v: f"{100 * float(v or 0):.0f}%"
    app.jinja_env.filters["score"] = lambda v: f"{float(v or 0):.2f}"
