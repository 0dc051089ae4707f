"""Each named dataset of `specs.py` as a cluster query plus the Vega-Lite transforms that turn the response into
exactly the dataset's fields. This is how Kibana / OpenSearch Dashboards fill the shared specs: `cluster_spec`
replaces `"data": {"name": ...}` by `"data": {"url": {index, body}, "format": {"property": ...}}` and prepends the
transforms, so the marks and encodings stay those of the one source of truth.

`%context%` / `%timefield%` make a panel follow the dashboard's time picker and filters (Kibana and OSD Vega
syntax); tests run the same `body` against a real node with `request_body()`, which puts the query in.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from llmid.kibana_vis import specs
from llmid.store import index_templates as it

DEFAULT_INTERVAL = "1h"
"""Bucket width of the time-based panels (a fixed interval, so each bar knows where it ends)."""
TOP = 10
MAX_ROWS = 500


@dataclass(frozen=True, slots=True)
class DatasetQuery:
    """How one dataset is read from a cluster."""

    kind: str
    """Index kind: logs, templates, incidents, recommendations."""
    body: dict[str, Any]
    """The search body, without a query when `context` (the dashboard's filters become the query)."""
    property: str
    """Where the rows are in the response: hits.hits or aggregations.NAME.buckets."""
    transform: list[dict[str, Any]]
    """Vega-Lite transforms from a response row to the dataset's fields."""
    context: bool = True
    """Follow the dashboard's time range (needs a time field) and filters."""
    query: dict[str, Any] = field(default_factory=lambda: {"match_all": {}})
    """The query to use outside a dashboard (tests, export for manual runs)."""


def interval_ms(interval: str) -> int:
    """'30s', '5m', '1h', '1d' → milliseconds."""
    units = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
    for suffix in ("ms", "s", "m", "h", "d"):
        if interval.endswith(suffix) and interval[: -len(suffix)].isdigit():
            return int(interval[: -len(suffix)]) * units[suffix]
    raise ValueError(f"Invalid interval {interval!r}: expected a number with ms, s, m, h or d.")


def _hist(field_name: str, interval: str, sub: dict[str, Any]) -> dict[str, Any]:
    return {"date_histogram": {"field": field_name, "fixed_interval": interval, "min_doc_count": 1}, "aggs": sub}


def _time_rows(inner: str, key_as: str, value: str, value_as: str, interval: str) -> list[dict[str, Any]]:
    """Transforms for date_histogram → terms buckets: one row per (bucket, term)."""
    return [
        {"flatten": [f"{inner}.buckets"], "as": ["sub"]},
        {"calculate": "datum.key", "as": "t"},
        {"calculate": f"datum.key + {interval_ms(interval)}", "as": "t_end"},
        {"calculate": "datum.sub.key", "as": key_as},
        {"calculate": value, "as": value_as},
    ]


def dataset_queries(interval: str = DEFAULT_INTERVAL) -> dict[str, DatasetQuery]:
    """Dataset name → its query, for every dataset of the cluster dashboard."""
    src = "datum._source"
    return {
        "records_over_time": DatasetQuery(
            "logs",
            {"size": 0, "aggs": {"t": _hist("@timestamp", interval, {
                "s": {"terms": {"field": "log.level", "size": 10, "missing": "none"}}})}},
            "aggregations.t.buckets", _time_rows("s", "level", "datum.sub.doc_count", "count", interval)),
        "incidents": DatasetQuery(
            "incidents",
            {"size": MAX_ROWS, "sort": [{"@timestamp": "asc"}],
             "_source": ["@timestamp", "incident_id", "anomaly_score", "root_cause"]},
            "hits.hits",
            [{"calculate": f"time(toDate({src}['@timestamp']))", "as": "t"},
             {"calculate": f"{src}.incident_id", "as": "incident_id"},
             {"calculate": f"{src}.anomaly_score", "as": "anomaly_score"},
             {"calculate": f"{src}.root_cause.score", "as": "root_cause_score"},
             {"calculate": f"{src}.root_cause.service.name || '?'", "as": "service"},
             {"calculate": f"{src}.root_cause.template", "as": "template"}]),
        "top_templates": DatasetQuery(
            "templates",
            {"size": 15, "sort": [{"count": "desc"}, {"template_id": "asc"}],
             "query": {"exists": {"field": "template"}}},
            "hits.hits",
            [{"calculate": f"{src}.template_id", "as": "template_id"},
             {"calculate": f"substring({src}.template, 0, 120)", "as": "template"},
             {"calculate": f"{src}.count", "as": "count"},
             {"calculate": f"{src}.service.name || '?'", "as": "service"}],
            context=False, query={"exists": {"field": "template"}}),
        "root_cause_services": DatasetQuery(
            "incidents",
            {"size": 0, "aggs": {"s": {"terms": {"field": "root_cause.service.name", "size": 20, "missing": "?"}}}},
            "aggregations.s.buckets",
            [{"calculate": "datum.key", "as": "service"}, {"calculate": "datum.doc_count", "as": "incidents"}]),
        "recommendations": DatasetQuery(
            "recommendations",
            {"size": 200, "sort": [{"confidence.mean": "desc"}, {"recommendation_id": "asc"}]},
            "hits.hits",
            [{"calculate": f"{src}.recommendation_id", "as": "recommendation_id"},
             {"calculate": f"{src}.incident_id", "as": "incident_id"},
             {"calculate": f"{src}.action", "as": "action"},
             {"calculate": f"{src}.target", "as": "target"},
             {"calculate": f"{src}.action + ' on ' + {src}.target + ' (' + substring({src}.incident_id, 0, 8) + ')'",
              "as": "label"},
             {"calculate": f"{src}.confidence.mean", "as": "mean"},
             {"calculate": f"{src}.confidence.low", "as": "low"},
             {"calculate": f"{src}.confidence.high", "as": "high"},
             {"calculate": f"{src}.safety.verdict", "as": "verdict"},
             {"calculate": f"{src}.status", "as": "status"}],
            context=False),
        "incidents_over_time": DatasetQuery(
            "incidents",
            {"size": 0, "aggs": {"t": _hist("@timestamp", interval, {
                "s": {"terms": {"field": "root_cause.service.name", "size": 20, "missing": "?"}}})}},
            "aggregations.t.buckets", _time_rows("s", "service", "datum.sub.doc_count", "incidents", interval)),
        "root_cause_templates": DatasetQuery(
            "incidents",
            {"size": 0, "aggs": {"s": {"terms": {"field": "root_cause.template.keyword", "size": TOP},
                                       "aggs": {"m": {"max": {"field": "root_cause.score"}}}}}},
            "aggregations.s.buckets",
            [{"calculate": "substring(datum.key, 0, 120)", "as": "template"},
             {"calculate": "datum.doc_count", "as": "incidents"},
             {"calculate": "datum.m.value", "as": "max_score"}]),
        "template_volume": DatasetQuery(
            "logs",
            {"size": 0, "aggs": {"t": _hist("@timestamp", interval, {
                "s": {"terms": {"field": "llmid.template.keyword", "size": TOP}}})}},
            "aggregations.t.buckets",
            [*_time_rows("s", "template_full", "datum.sub.doc_count", "count", interval),
             {"calculate": "substring(datum.template_full, 0, 80)", "as": "template"}]),
        "anomaly_heatmap": DatasetQuery(
            "logs",
            {"size": 0, "aggs": {"t": _hist("@timestamp", interval, {
                "s": {"terms": {"field": "service.name", "size": 20, "missing": "?"},
                      "aggs": {"a": {"max": {"field": "llmid.anomaly_score"}}}}})}},
            "aggregations.t.buckets", _time_rows("s", "service", "datum.sub.a.value", "anomaly", interval)),
    }


def index_of(kind: str, prefix: str = it.DEFAULT_PREFIX) -> str:
    """What a panel searches: the logs alias pattern or the kind's index."""
    return it.logs_pattern(prefix) if kind == "logs" else it.index_name(prefix, kind)


def request_body(q: DatasetQuery, query: dict[str, Any] | None = None) -> dict[str, Any]:
    """The search body with its query in, as a dashboard would send it (for running outside a dashboard)."""
    body = copy.deepcopy(q.body)
    body["query"] = query or q.query
    return body


def cluster_spec(name: str, prefix: str = it.DEFAULT_PREFIX, interval: str = DEFAULT_INTERVAL,
                 values: Any = None) -> dict[str, Any]:
    """Spec `name` reading its dataset from the cluster (Kibana / OSD Vega syntax). With `values` (a raw search
    response), the data is inlined instead of fetched: the same transforms run over a response already in
    hand (tests render real query results this way, in a plain browser)."""
    s = specs.spec(name)
    queries = dataset_queries(interval)
    parts = [s, *s.get("layer", [])]
    for part in parts:
        data = part.get("data")
        if not (isinstance(data, dict) and "name" in data):
            continue
        q = queries[data["name"]]
        if values is not None:
            part["data"] = {"values": _at(values, q.property)}
        else:
            url: dict[str, Any] = {"index": index_of(q.kind, prefix), "body": copy.deepcopy(q.body)}
            if q.context:
                url["%context%"] = True
                url["%timefield%"] = "@timestamp"
            part["data"] = {"url": url, "format": {"property": q.property}}
        part["transform"] = [*q.transform, *part.get("transform", [])]
    return s


def _at(obj: Any, dotted: str) -> Any:
    for key in dotted.split("."):
        obj = (obj or {}).get(key)
    return obj if obj is not None else []
