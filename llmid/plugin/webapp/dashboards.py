"""Fill the named datasets of the shared Vega-Lite specs (llmid/kibana_vis/specs.py) from a Store.

The specs stay backend-free; this is the web app's renderer: each dataset name maps to one Store call.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from llmid.documents import iso
from llmid.kibana_vis import specs
from llmid.store.base import SearchQuery, Store

MAX_INCIDENTS = 500
MAX_RECOMMENDATIONS = 200


def _records_over_time(store: Store) -> list[dict[str, Any]]:
    hist = store.histogram(None, None, by="level")
    step = hist["interval_s"]
    return [{"t": b["t"], "t_end": iso(_epoch(b["t"]) + step), "level": b["key"] or "none", "count": b["count"]}
            for b in hist["buckets"]]


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _incident_rows(store: Store) -> list[dict[str, Any]]:
    rows = []
    for inc in store.incidents(limit=MAX_INCIDENTS).hits:
        rc = inc.get("root_cause") or {}
        rows.append({"t": inc.get("@timestamp"), "incident_id": inc.get("incident_id"),
                     "anomaly_score": inc.get("anomaly_score"), "root_cause_score": rc.get("score"),
                     "service": (rc.get("service") or {}).get("name") or "?", "template": rc.get("template")})
    return rows


def _root_cause_services(store: Store) -> list[dict[str, Any]]:
    counts = Counter(r["service"] for r in _incident_rows(store))
    return [{"service": s, "incidents": n} for s, n in counts.most_common()]


def _top_templates(store: Store) -> list[dict[str, Any]]:
    return [{"template_id": t["template_id"], "template": t["template"][:120], "count": t["count"],
             "service": (t.get("service") or {}).get("name") or "?"} for t in store.templates(limit=15).hits]


def _recommendations(store: Store) -> list[dict[str, Any]]:
    rows = []
    for r in store.recommendations(limit=MAX_RECOMMENDATIONS).hits:
        c = r.get("confidence") or {}
        rows.append({"recommendation_id": r.get("recommendation_id"), "incident_id": r.get("incident_id"),
                     "action": r.get("action"), "target": r.get("target"),
                     "label": f"{r.get('action')} on {r.get('target')} ({str(r.get('incident_id'))[:8]})",
                     "mean": c.get("mean"), "low": c.get("low"), "high": c.get("high"),
                     "verdict": (r.get("safety") or {}).get("verdict"), "status": r.get("status")})
    return rows


def incident_events(store: Store, incident_id: str, limit: int = 2000) -> list[dict[str, Any]]:
    hits = store.search(SearchQuery(incident_id=incident_id, limit=limit)).hits
    return [{"t": h.get("@timestamp"), "template": (h["llmid"].get("template") or "")[:90],
             "service": (h.get("service") or {}).get("name") or "?", "level": (h.get("log") or {}).get("level"),
             "root_cause_score": h["llmid"].get("root_cause_score"), "line": (h.get("event") or {}).get("sequence")}
            for h in hits if h.get("@timestamp")]


FILLERS = {
    "records_over_time": _records_over_time,
    "incidents": _incident_rows,
    "root_cause_services": _root_cause_services,
    "top_templates": _top_templates,
    "recommendations": _recommendations,
}


def filled(store: Store, name: str, incident_id: str | None = None) -> dict[str, Any]:
    """Spec `name` with its datasets inlined under `datasets` (Vega-Lite resolves `data.name` from there)."""
    s = specs.spec(name)
    data: dict[str, list[dict[str, Any]]] = {}
    for ds in specs.dataset_names(s):
        if ds == "incident_events":
            data[ds] = incident_events(store, incident_id) if incident_id else []
        else:
            data[ds] = FILLERS[ds](store)
    s["datasets"] = data
    return s


def overview(store: Store) -> list[dict[str, Any]]:
    return [{"id": n, "spec": filled(store, n)} for n in specs.OVERVIEW]
