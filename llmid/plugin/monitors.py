"""Alerting in the cluster: an OpenSearch Alerting query monitor and a Kibana Elasticsearch-query rule that fire
when an incident's `root_cause.score` reaches a threshold, with the incident, its root cause and the recommended
action in the message.

Both search `llmid-incidents`, where the cluster store keeps, beside each incident, a summary of its
recommendations (`recommendations[]`: action, target, confidence mean, safety verdict) so one search has all a
message needs. The query (`monitor_query`) and the message (`MESSAGE`, mustache) are shared by both engines; tests
run the query and render the message on a real node.
"""

from __future__ import annotations

import json
from typing import Any

from llmid.store import index_templates as it

DEFAULT_THRESHOLD = 0.8
LOOKBACK = "10m"
"""How far back each run looks (the monitor runs every minute; a longer look-back plus throttling de-duplicates)."""

MESSAGE = (
    "LLM-ID: {{ctx.results.0.hits.total.value}} incident(s) with a root-cause score at or above {{threshold}}.\n"
    "{{#ctx.results.0.hits.hits}}"
    "- Incident {{_source.incident_id}} at {{_source.@timestamp}} (anomaly {{_source.anomaly_score}}): "
    "root cause [{{_source.root_cause.service.name}}] {{_source.root_cause.template}} "
    "(score {{_source.root_cause.score}}); recommended: "
    "{{#_source.recommendations}}{{action}} on {{target}} (confidence {{confidence.mean}}, {{safety.verdict}}) "
    "{{/_source.recommendations}}\n"
    "{{/ctx.results.0.hits.hits}}"
)
"""Mustache message of the OpenSearch monitor (ctx.results = the query's response)."""

KIBANA_MESSAGE = (
    "LLM-ID: {{context.hits.length}} incident(s) with a root-cause score at or above {{params.threshold}}.\n"
    "{{#context.hits}}"
    "- Incident {{_source.incident_id}} at {{_source.@timestamp}} (anomaly {{_source.anomaly_score}}): "
    "root cause [{{_source.root_cause.service.name}}] {{_source.root_cause.template}} "
    "(score {{_source.root_cause.score}}); recommended: "
    "{{#_source.recommendations}}{{action}} on {{target}} (confidence {{confidence.mean}}, {{safety.verdict}}) "
    "{{/_source.recommendations}}\n"
    "{{/context.hits}}"
)
"""The same message for Kibana's Elasticsearch-query rule (context.hits = the matching documents)."""


def monitor_name(threshold: float) -> str:
    return f"LLM-ID: root cause score >= {threshold:g}"


def monitor_query(threshold: float, period_end: str = "{{period_end}}", lookback: str = LOOKBACK) -> dict[str, Any]:
    """Incidents of the last `lookback` whose root-cause score reached `threshold`, best first."""
    return {
        "size": 10,
        "query": {"bool": {"filter": [
            {"range": {"root_cause.score": {"gte": threshold}}},
            {"range": {"@timestamp": {"gte": f"{period_end}||-{lookback}", "lte": period_end,
                                      "format": "epoch_millis"}}},
        ]}},
        "sort": [{"root_cause.score": "desc"}, {"@timestamp": "desc"}],
        "_source": ["incident_id", "@timestamp", "anomaly_score", "root_cause", "recommendations", "status"],
    }


TRIGGER_CONDITION = "ctx.results[0].hits.total.value > 0"


def opensearch_monitor(prefix: str = it.DEFAULT_PREFIX, threshold: float = DEFAULT_THRESHOLD,
                       channel_id: str | None = None) -> dict[str, Any]:
    """An OpenSearch Alerting query-level monitor (POST _plugins/_alerting/monitors). Without a notification
    channel the trigger still raises alerts, visible in Dashboards' Alerting page."""
    actions = []
    if channel_id:
        actions.append({
            "name": "notify",
            "destination_id": channel_id,
            "subject_template": {"source": f"{monitor_name(threshold)}: {{{{ctx.results.0.hits.total.value}}}} "
                                           "incident(s)", "lang": "mustache"},
            "message_template": {"source": MESSAGE.replace("{{threshold}}", f"{threshold:g}"), "lang": "mustache"},
            "throttle_enabled": True,
            "throttle": {"value": 10, "unit": "MINUTES"},
        })
    return {
        "type": "monitor",
        "monitor_type": "query_level_monitor",
        "name": monitor_name(threshold),
        "enabled": True,
        "schedule": {"period": {"interval": 1, "unit": "MINUTES"}},
        "inputs": [{"search": {"indices": [it.index_name(prefix, "incidents")],
                               "query": monitor_query(threshold)}}],
        "triggers": [{"query_level_trigger": {
            "name": "root cause score crossed",
            "severity": "1",
            "condition": {"script": {"source": TRIGGER_CONDITION, "lang": "painless"}},
            "actions": actions,
        }}],
    }


def kibana_rule(prefix: str = it.DEFAULT_PREFIX, threshold: float = DEFAULT_THRESHOLD,
                connector_id: str | None = None) -> dict[str, Any]:
    """A Kibana Elasticsearch-query rule (POST /api/alerting/rule/ID) over llmid-incidents."""
    query = {"query": {"range": {"root_cause.score": {"gte": threshold}}}}
    actions = []
    if connector_id:
        actions.append({"group": "query matched", "id": connector_id,
                        "params": {"message": KIBANA_MESSAGE.replace("{{params.threshold}}", f"{threshold:g}")},
                        "frequency": {"summary": False, "notify_when": "onActiveAlert", "throttle": None}})
    return {
        "name": monitor_name(threshold),
        "rule_type_id": ".es-query",
        "consumer": "stackAlerts",
        "schedule": {"interval": "1m"},
        "tags": ["llmid"],
        "params": {
            "searchType": "esQuery",
            "index": [it.index_name(prefix, "incidents")],
            "timeField": "@timestamp",
            "esQuery": json.dumps(query),
            "size": 10,
            "threshold": [0],
            "thresholdComparator": ">",
            "timeWindowSize": 10,
            "timeWindowUnit": "m",
            "excludeHitsFromPreviousRun": True,
        },
        "actions": actions,
    }


def kibana_rule_id(threshold: float) -> str:
    return f"llmid-root-cause-{str(threshold).replace('.', '_')}"
