"""Vega-Lite specs: one source of truth for every dashboard (Kibana / OpenSearch Dashboards saved objects and the
built-in web app's dashboards page).

Interface: each spec reads only *named* datasets (`"data": {"name": NAME}`), never a URL or an index query, so
each renderer fills them from its own backend: the web app from the Store's aggregations (`datasets` in the
spec), Kibana / OSD by turning each dataset into a query. `DATASETS` says which fields each dataset holds and
what they mean; a renderer must provide exactly those. Specs use only Vega-Lite features that v5 (Kibana, OSD)
and v6 (the vendored web-app build) share.
"""

from __future__ import annotations

import copy
from typing import Any

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"

DATASETS: dict[str, dict[str, Any]] = {
    "records_over_time": {
        "description": "Log records per time bucket and level (a histogram of llmid-logs-*).",
        "fields": {"t": "bucket start, ISO-8601", "t_end": "bucket end, ISO-8601", "level": "log.level",
                   "count": "records in the bucket"},
    },
    "incidents": {
        "description": "One row per incident (llmid-incidents).",
        "fields": {"t": "@timestamp", "incident_id": "incident_id", "anomaly_score": "anomaly_score",
                   "root_cause_score": "root_cause.score", "service": "root_cause.service.name",
                   "template": "root_cause.template"},
    },
    "top_templates": {
        "description": "The most frequent event templates (llmid-templates, by count).",
        "fields": {"template_id": "template_id", "template": "template", "count": "count",
                   "service": "service.name"},
    },
    "root_cause_services": {
        "description": "Incidents per root-cause service (terms of root_cause.service.name).",
        "fields": {"service": "root_cause.service.name", "incidents": "number of incidents"},
    },
    "recommendations": {
        "description": "One row per recommendation (llmid-recommendations).",
        "fields": {"recommendation_id": "recommendation_id", "incident_id": "incident_id", "action": "action",
                   "target": "target", "label": "action on target", "mean": "confidence.mean",
                   "low": "confidence.low", "high": "confidence.high", "verdict": "safety.verdict",
                   "status": "status"},
    },
    "incident_events": {
        "description": "Records of one incident window (llmid-logs-* filtered on llmid.incident_id).",
        "fields": {"t": "@timestamp", "template": "llmid.template", "service": "service.name",
                   "level": "log.level", "root_cause_score": "llmid.root_cause_score", "line": "event.sequence"},
    },
    # Datasets of the cluster dashboard (Kibana / OpenSearch Dashboards; llmid/kibana_vis/queries.py fills them).
    "incidents_over_time": {
        "description": "Incidents per time bucket and root-cause service (llmid-incidents).",
        "fields": {"t": "bucket start", "t_end": "bucket end", "service": "root_cause.service.name",
                   "incidents": "incidents in the bucket"},
    },
    "root_cause_templates": {
        "description": "The templates most often found as root cause (terms of root_cause.template).",
        "fields": {"template": "root_cause.template", "incidents": "number of incidents",
                   "max_score": "highest root_cause.score"},
    },
    "template_volume": {
        "description": "Log records per time bucket of the most frequent templates (llmid-logs-*).",
        "fields": {"t": "bucket start", "t_end": "bucket end", "template": "llmid.template",
                   "count": "records in the bucket"},
    },
    "anomaly_heatmap": {
        "description": "Highest anomaly score per time bucket and service (llmid-logs-*).",
        "fields": {"t": "bucket start", "t_end": "bucket end", "service": "service.name",
                   "anomaly": "max llmid.anomaly_score"},
    },
}

_BASE: dict[str, Any] = {"$schema": SCHEMA, "width": "container", "height": 220, "autosize": {"type": "fit"}}

SPECS: dict[str, dict[str, Any]] = {
    "records_over_time": {
        **_BASE,
        "title": "Log records over time, by level",
        "data": {"name": "records_over_time"},
        # Buckets span [t, t_end): an explicit stack, since Vega-Lite does not stack ranged (x/x2) bars itself.
        "transform": [{"stack": "count", "groupby": ["t"], "sort": [{"field": "level"}], "as": ["y0", "y1"]}],
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "x": {"field": "t", "type": "temporal", "title": "time"},
            "x2": {"field": "t_end"},
            "y": {"field": "y1", "type": "quantitative", "title": "records"},
            "y2": {"field": "y0"},
            "color": {"field": "level", "type": "nominal", "title": "level",
                      "scale": {"domain": ["ERROR", "WARN", "INFO", "DEBUG"],
                                "range": ["#d62728", "#ff7f0e", "#4c78a8", "#9d9d9d"]}},
            "tooltip": [{"field": "t", "type": "temporal", "format": "%Y-%m-%d %H:%M:%S"}, {"field": "level"},
                        {"field": "count", "type": "quantitative"}],
        },
    },
    "incident_scores": {
        **_BASE,
        "title": "Incidents: anomaly score over time (size = root-cause score)",
        "data": {"name": "incidents"},
        "mark": {"type": "point", "filled": True, "tooltip": True},
        "encoding": {
            "x": {"field": "t", "type": "temporal", "title": "time"},
            "y": {"field": "anomaly_score", "type": "quantitative", "title": "anomaly score",
                  "scale": {"domain": [0, 1]}},
            "size": {"field": "root_cause_score", "type": "quantitative", "title": "root-cause score",
                     "scale": {"domain": [0, 1]}},
            "color": {"field": "service", "type": "nominal", "title": "root-cause service"},
            "tooltip": [{"field": "incident_id"}, {"field": "service"}, {"field": "template"},
                        {"field": "anomaly_score", "format": ".2f"}, {"field": "root_cause_score", "format": ".2f"}],
        },
    },
    "top_templates": {
        **_BASE,
        "title": "Most frequent event templates",
        "height": {"step": 16},
        "autosize": {"type": "fit-x"},
        "data": {"name": "top_templates"},
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "y": {"field": "template", "type": "nominal", "sort": "-x", "title": None,
                  "axis": {"labelLimit": 380}},
            "x": {"field": "count", "type": "quantitative", "title": "records"},
            "color": {"field": "service", "type": "nominal", "title": "service"},
        },
    },
    "root_cause_services": {
        **_BASE,
        "title": "Incidents per root-cause service",
        "data": {"name": "root_cause_services"},
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "x": {"field": "service", "type": "nominal", "sort": "-y", "title": "service"},
            "y": {"field": "incidents", "type": "quantitative", "title": "incidents"},
        },
    },
    "recommendation_confidence": {
        **_BASE,
        "title": "Recommendations: confidence (90% interval) and safety verdict",
        "height": {"step": 22},
        "autosize": {"type": "fit-x"},
        "data": {"name": "recommendations"},
        "layer": [
            {"mark": {"type": "rule", "strokeWidth": 2},
             "encoding": {"x": {"field": "low", "type": "quantitative", "title": "confidence",
                                "scale": {"domain": [0, 1]}},
                          "x2": {"field": "high"}}},
            {"mark": {"type": "point", "filled": True, "size": 70, "tooltip": True},
             "encoding": {"x": {"field": "mean", "type": "quantitative"}}},
        ],
        "encoding": {
            "y": {"field": "label", "type": "nominal", "title": None, "axis": {"labelLimit": 300}},
            "color": {"field": "verdict", "type": "nominal", "title": "safety"},
        },
    },
    "incident_timeline": {
        **_BASE,
        "title": "Incident timeline: events of the window",
        "height": {"step": 18},
        "autosize": {"type": "fit-x"},
        "data": {"name": "incident_events"},
        "mark": {"type": "tick", "thickness": 2, "tooltip": True},
        "encoding": {
            "x": {"field": "t", "type": "temporal", "title": "time"},
            "y": {"field": "template", "type": "nominal", "title": None, "sort": None,
                  "axis": {"labelLimit": 320}},
            "color": {"field": "service", "type": "nominal", "title": "service"},
            "tooltip": [{"field": "t", "type": "temporal", "format": "%H:%M:%S.%L"}, {"field": "service"},
                        {"field": "level"}, {"field": "line"}, {"field": "template"}],
        },
    },
    "incidents_over_time": {
        **_BASE,
        "title": "Incidents over time, by root-cause service",
        "data": {"name": "incidents_over_time"},
        "transform": [{"stack": "incidents", "groupby": ["t"], "sort": [{"field": "service"}],
                       "as": ["y0", "y1"]}],
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "x": {"field": "t", "type": "temporal", "title": "time"},
            "x2": {"field": "t_end"},
            "y": {"field": "y1", "type": "quantitative", "title": "incidents"},
            "y2": {"field": "y0"},
            "color": {"field": "service", "type": "nominal", "title": "root-cause service"},
            "tooltip": [{"field": "t", "type": "temporal", "format": "%Y-%m-%d %H:%M"}, {"field": "service"},
                        {"field": "incidents", "type": "quantitative"}],
        },
    },
    "root_cause_templates": {
        **_BASE,
        "title": "Top root-cause templates",
        "height": {"step": 18},
        "autosize": {"type": "fit-x"},
        "data": {"name": "root_cause_templates"},
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "y": {"field": "template", "type": "nominal", "sort": "-x", "title": None,
                  "axis": {"labelLimit": 380}},
            "x": {"field": "incidents", "type": "quantitative", "title": "incidents"},
            "color": {"field": "max_score", "type": "quantitative", "title": "max score",
                      "scale": {"domain": [0, 1], "scheme": "orangered"}},
        },
    },
    "template_volume": {
        **_BASE,
        "title": "Template volume over time",
        "data": {"name": "template_volume"},
        "mark": {"type": "line", "point": True, "tooltip": True},
        "encoding": {
            "x": {"field": "t", "type": "temporal", "title": "time"},
            "y": {"field": "count", "type": "quantitative", "title": "records"},
            "color": {"field": "template", "type": "nominal", "title": "template",
                      "legend": {"labelLimit": 260, "orient": "bottom", "columns": 1}},
        },
    },
    "anomaly_heatmap": {
        **_BASE,
        "title": "Anomaly heat map: highest anomaly score per service and time",
        "data": {"name": "anomaly_heatmap"},
        "mark": {"type": "rect", "tooltip": True},
        "encoding": {
            "x": {"field": "t", "type": "temporal", "title": "time"},
            "x2": {"field": "t_end"},
            "y": {"field": "service", "type": "nominal", "title": "service"},
            "color": {"field": "anomaly", "type": "quantitative", "title": "anomaly",
                      "scale": {"domain": [0, 1], "scheme": "orangered"}},
        },
    },
}
"""Spec id → Vega-Lite spec. `incident_timeline` is a per-incident drill-down; the others form the overview."""

OVERVIEW = ("records_over_time", "incident_scores", "root_cause_services", "top_templates",
            "recommendation_confidence")
"""The dashboard's specs, in order."""

CLUSTER_DASHBOARD = ("incidents_over_time", "root_cause_templates", "template_volume", "recommendation_confidence",
                     "anomaly_heatmap", "incident_scores", "root_cause_services", "records_over_time",
                     "top_templates")
"""The specs of the Kibana / OpenSearch Dashboards dashboard, in order (every one has a cluster query)."""


def spec(name: str) -> dict[str, Any]:
    """A copy of one spec (callers fill `datasets` in their copy)."""
    return copy.deepcopy(SPECS[name])


def dataset_names(s: dict[str, Any]) -> set[str]:
    """The named datasets a spec reads (top level and layers)."""
    names = set()
    for part in [s, *s.get("layer", [])]:
        data = part.get("data")
        if isinstance(data, dict) and "name" in data:
            names.add(data["name"])
    return names
