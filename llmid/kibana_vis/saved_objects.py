"""Saved objects for OpenSearch Dashboards 2.x and Kibana 8.x, built from the Vega-Lite specs (specs.py) and
their cluster queries (queries.py): index patterns (data views) for the four document kinds, a saved search of
the annotated logs with the `llmid.*` columns, one Vega visualization per spec, and one dashboard.

`saved_objects()` gives the objects; `to_ndjson()` the file the saved-objects import API and the UI's
"Import" accept. Ids are fixed (`llmid-...`), so importing again overwrites instead of duplicating, and each
object's description ends with a digest of its content, so `llmid install` can tell "unchanged" from "update".
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from llmid.kibana_vis import queries, specs
from llmid.store import index_templates as it

FLAVORS = ("osd", "kibana")
LOG_COLUMNS = ["log.level", "service.name", "host.name", "llmid.template", "llmid.anomaly_score",
               "llmid.root_cause_score", "llmid.incident_id", "message"]
"""The saved search's columns: what an analyst scans first."""
DASHBOARD_ID = "llmid-overview"
_EMPTY_SEARCH = json.dumps({"query": {"query": "", "language": "kuery"}, "filter": []})


def digest(obj: dict[str, Any]) -> str:
    """A short digest of an object's content (without its description, which carries the digest)."""
    attrs = {k: v for k, v in obj.get("attributes", {}).items() if k != "description"}
    raw = json.dumps({"type": obj["type"], "id": obj["id"], "attributes": attrs,
                      "references": obj.get("references", [])}, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def stored_digest(obj: dict[str, Any]) -> str | None:
    """The digest an installed object carries in its description, if any."""
    desc = str(obj.get("attributes", {}).get("description") or "")
    return desc.rsplit("[llmid:", 1)[1].rstrip("]") if "[llmid:" in desc else None


def _versions(flavor: str, kind: str) -> dict[str, Any]:
    """Migration versions: the import API migrates objects from these up to the running version."""
    if flavor == "kibana":
        return {"coreMigrationVersion": "8.8.0",
                "typeMigrationVersion": {"index-pattern": "8.0.0", "search": "8.0.0", "visualization": "8.5.0",
                                         "dashboard": "8.7.0"}[kind]}
    return {"migrationVersion": {"index-pattern": {"index-pattern": "7.6.0"}, "search": {"search": "7.9.3"},
                                 "visualization": {"visualization": "7.10.0"},
                                 "dashboard": {"dashboard": "7.9.3"}}[kind]}


def _finish(obj: dict[str, Any], flavor: str, description: str) -> dict[str, Any]:
    obj.update(_versions(flavor, obj["type"]))
    obj["attributes"]["description"] = description
    obj["attributes"]["description"] = f"{description} [llmid:{digest(obj)}]"
    return obj


def index_pattern_id(kind: str) -> str:
    return f"llmid-{kind}"


def saved_objects(flavor: str = "osd", prefix: str = it.DEFAULT_PREFIX,
                  interval: str = queries.DEFAULT_INTERVAL) -> list[dict[str, Any]]:
    """Every saved object of the LLM-ID dashboards, referenced objects first (the import API wants them so)."""
    if flavor not in FLAVORS:
        raise ValueError(f"Unknown flavor {flavor!r}: expected one of {', '.join(FLAVORS)}.")
    objs: list[dict[str, Any]] = []
    time_fields = {"logs": "@timestamp", "incidents": "@timestamp", "templates": "last_seen",
                   "recommendations": None}
    for kind in it.KINDS:
        attrs: dict[str, Any] = {"title": queries.index_of(kind, prefix)}
        if time_fields[kind]:
            attrs["timeFieldName"] = time_fields[kind]
        if flavor == "kibana":
            attrs["name"] = f"LLM-ID {kind}"
        objs.append(_finish({"type": "index-pattern", "id": index_pattern_id(kind), "attributes": attrs,
                             "references": []}, flavor, f"LLM-ID {kind} ({queries.index_of(kind, prefix)})"))
    search_source = {"query": {"query": "", "language": "kuery"}, "filter": [],
                     "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index"}
    objs.append(_finish({
        "type": "search", "id": "llmid-annotated-logs",
        "attributes": {"title": "LLM-ID annotated logs", "columns": LOG_COLUMNS, "sort": [["@timestamp", "desc"]],
                       "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(search_source)}},
        "references": [{"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern",
                        "id": index_pattern_id("logs")}],
    }, flavor, "Log records with their template, parameters, anomaly and root-cause scores"))
    panels = []
    refs = []
    for i, name in enumerate(specs.CLUSTER_DASHBOARD):
        spec = queries.cluster_spec(name, prefix, interval)
        title = str(spec.get("title") or name)
        vis_id = f"llmid-vis-{name.replace('_', '-')}"
        vis_state = {"title": title, "type": "vega", "aggs": [],
                     "params": {"spec": json.dumps(spec, indent=2, ensure_ascii=False)}}
        objs.append(_finish({
            "type": "visualization", "id": vis_id,
            "attributes": {"title": f"LLM-ID: {title}", "visState": json.dumps(vis_state, ensure_ascii=False),
                           "uiStateJSON": "{}", "version": 1,
                           "kibanaSavedObjectMeta": {"searchSourceJSON": _EMPTY_SEARCH}},
            "references": [],
        }, flavor, f"LLM-ID Vega visualization '{name}' (from llmid/kibana_vis/specs.py)"))
        w = 24
        panels.append({"version": "8.8.0" if flavor == "kibana" else "2.11.0", "type": "visualization",
                       "gridData": {"x": (i % 2) * w, "y": (i // 2) * 15, "w": w, "h": 15, "i": str(i + 1)},
                       "panelIndex": str(i + 1), "embeddableConfig": {}, "panelRefName": f"panel_{i}"})
        refs.append({"name": f"panel_{i}", "type": "visualization", "id": vis_id})
    n = len(specs.CLUSTER_DASHBOARD)
    panels.append({"version": "8.8.0" if flavor == "kibana" else "2.11.0", "type": "search",
                   "gridData": {"x": 0, "y": ((n + 1) // 2) * 15, "w": 48, "h": 20, "i": str(n + 1)},
                   "panelIndex": str(n + 1), "embeddableConfig": {}, "panelRefName": f"panel_{n}"})
    refs.append({"name": f"panel_{n}", "type": "search", "id": "llmid-annotated-logs"})
    objs.append(_finish({
        "type": "dashboard", "id": DASHBOARD_ID,
        "attributes": {"title": "LLM-ID overview", "panelsJSON": json.dumps(panels),
                       "optionsJSON": json.dumps({"useMargins": True, "hidePanelTitles": False}),
                       "timeRestore": False, "version": 1,
                       "kibanaSavedObjectMeta": {"searchSourceJSON": _EMPTY_SEARCH}},
        "references": refs,
    }, flavor, "Incidents, root causes, template volume, recommendation confidence and anomalies"))
    return objs


def to_ndjson(objs: list[dict[str, Any]]) -> str:
    """One object per line, as the saved-objects import API and the UI's Import take them."""
    return "".join(json.dumps(o, ensure_ascii=False, sort_keys=True) + "\n" for o in objs)


def export(directory: str | Path, prefix: str = it.DEFAULT_PREFIX,
           interval: str = queries.DEFAULT_INTERVAL) -> list[Path]:
    """Write `llmid-osd.ndjson` (OpenSearch Dashboards 2.x), `llmid-kibana.ndjson` (Kibana 8.x) and every spec
    in its cluster form (`vega/NAME.vl.json`, to paste into a Vega panel) under `directory`."""
    out = Path(directory)
    (out / "vega").mkdir(parents=True, exist_ok=True)
    written = []
    for flavor, name in (("osd", "llmid-osd.ndjson"), ("kibana", "llmid-kibana.ndjson")):
        path = out / name
        path.write_text(to_ndjson(saved_objects(flavor, prefix, interval)), encoding="utf-8")
        written.append(path)
    for name in specs.CLUSTER_DASHBOARD:
        path = out / "vega" / f"{name}.vl.json"
        path.write_text(json.dumps(queries.cluster_spec(name, prefix, interval), indent=2, ensure_ascii=False)
                        + "\n", encoding="utf-8")
        written.append(path)
    return written
