"""Ingest pipeline definitions for OpenSearch and Elasticsearch (the same processors run on both): header parsing,
timestamp and level normalisation, so raw lines that shippers (Filebeat, Fluent Bit, Logstash) send into an index
arrive with the ECS fields the datafeed and the dashboards read: `@timestamp`, `log.level`, `service.name`,
`host.name`, `labels.*`, and the free text in `llmid.content`.

One pipeline per built-in Loghub preset (`llmid-parse-hdfs`, ...), its grok pattern compiled from the very header
template the Python reader uses (formats.py), and a generic `llmid-parse` for ISO-8601 / syslog lines. Levels are
normalised with the same alias table as levels.py (a Painless script given the table as params), so a level
reads the same whether Python or the cluster parsed the line.
"""

from __future__ import annotations

import re
from typing import Any

from llmid.ingest_pipelines import levels
from llmid.ingest_pipelines.base import template_to_regex
from llmid.ingest_pipelines.presets import PRESETS, loghub_format

DATE_FORMATS: dict[str, list[str]] = {
    "HDFS": ["yyMMdd HHmmss"],
    "Hadoop": ["yyyy-MM-dd HH:mm:ss,SSS"],
    "Spark": ["yy/MM/dd HH:mm:ss"],
    "Zookeeper": ["yyyy-MM-dd HH:mm:ss,SSS"],
    "BGL": ["UNIX"],
    "HPC": ["UNIX"],
    "Thunderbird": ["UNIX"],
    "Windows": ["yyyy-MM-dd HH:mm:ss"],
    "Linux": ["MMM d HH:mm:ss", "MMM  d HH:mm:ss"],
    "Android": ["MM-dd HH:mm:ss.SSS"],
    "HealthApp": ["yyyyMMdd-H:m:s:SSS", "yyyyMMdd-H:m:s:SS", "yyyyMMdd-H:m:s:S"],
    "Apache": ["EEE MMM dd HH:mm:ss yyyy"],
    "Proxifier": ["MM.dd HH:mm:ss"],
    "OpenSSH": ["MMM d HH:mm:ss"],
    "OpenStack": ["yyyy-MM-dd HH:mm:ss.SSS"],
    "Mac": ["MMM d HH:mm:ss"],
}
"""Java date formats of each preset's joined date fields (epoch presets read their `Timestamp`/`Time` as UNIX)."""
EPOCH_FIELD = {"BGL": "Timestamp", "HPC": "Time", "Thunderbird": "Timestamp"}

GENERIC_PATTERNS = [
    r"^\[?%{TIMESTAMP_ISO8601:_h_ts}\]?\s+\[?(?<_h_Level>[A-Za-z]+)\]?\s+(?:\[(?<_h_Thread>[^\]]*)\]\s+)?"
    r"(?:(?<_h_Component>[\w.$/-]+):?\s+)?(?<_h_Content>.*)$",
    r"^%{SYSLOGTIMESTAMP:_h_ts}\s+(?<_h_Host>\S+)\s+(?<_h_Component>[^\s\[:]+)(?:\[(?<_h_Pid>\d+)\])?:\s*"
    r"(?<_h_Content>.*)$",
    r"^(?<_h_Content>.*)$",
]
GENERIC_DATE_FORMATS = ["ISO8601", "yyyy-MM-dd HH:mm:ss,SSS", "yyyy-MM-dd HH:mm:ss.SSS", "yyyy-MM-dd HH:mm:ss",
                        "MMM d HH:mm:ss", "MMM  d HH:mm:ss"]

_NORMALISE = """
Map labels = new HashMap();
String content = null;
for (String f : params.fields) {
  String k = '_h_' + f;
  if (ctx.containsKey(k)) {
    def v = ctx.remove(k);
    if (f == 'Content') { content = v; } else if (v != null && v != '') { labels.put(f, v.toString()); }
  }
}
if (ctx.llmid == null) { ctx.llmid = new HashMap(); }
ctx.llmid.content = content == null ? ctx.message : content;
ctx.llmid.format = params.format;
if (!labels.isEmpty()) {
  if (ctx.labels == null) { ctx.labels = new HashMap(); }
  ctx.labels.putAll(labels);
}
String raw = params.level == '' ? null : labels.get(params.level);
if (raw != null) {
  String k = raw.trim().toLowerCase();
  while (k.length() > 0 && '[<'.indexOf(k.substring(0, 1)) >= 0) { k = k.substring(1); }
  while (k.length() > 0 && ']>'.indexOf(k.substring(k.length() - 1)) >= 0) { k = k.substring(0, k.length() - 1); }
  int colon = k.lastIndexOf(':');
  if (colon >= 0) { k = k.substring(colon + 1); }
  def lv = params.aliases.get(k);
  if (lv == null && k.length() > 0) {
    boolean digits = true;
    for (int i = 0; i < k.length(); i++) { if (!Character.isDigit(k.charAt(i))) { digits = false; } }
    if (digits && k.length() < 6) { lv = params.syslog[Integer.parseInt(k) % 8]; }
  }
  if (lv != null) {
    if (ctx.log == null) { ctx.log = new HashMap(); }
    ctx.log.level = lv;
  }
}
String svc = params.service_constant != '' ? params.service_constant
  : (params.service == '' ? null : labels.get(params.service));
if (svc != null) { if (ctx.service == null) { ctx.service = new HashMap(); } ctx.service.name = svc; }
String host = params.host == '' ? null : labels.get(params.host);
if (host != null) { if (ctx.host == null) { ctx.host = new HashMap(); } ctx.host.name = host; }
"""
"""Move the grok captures into ECS fields and `labels`, and normalise the level (as levels.normalize_level)."""


def pipeline_id(prefix: str, preset: str | None = None) -> str:
    return f"{prefix}parse" if preset is None else f"{prefix}parse-{preset.lower()}"


def grok_pattern(template: str) -> str:
    """The preset's header template as an anchored Oniguruma pattern with `_h_FIELD` captures (grok syntax)."""
    _, regex = template_to_regex(template)
    return re.sub(r"\(\?P<([A-Za-z0-9_]+)>", r"(?<_h_\1>", regex.pattern)


def _script(fields: list[str], fmt: str, level: str, service: str, host: str, service_constant: str) -> dict[
        str, Any]:
    return {"script": {"lang": "painless", "source": _NORMALISE.strip(), "params": {
        "fields": fields, "format": fmt, "level": level, "service": service, "host": host,
        "service_constant": service_constant, "aliases": dict(levels._ALIASES),
        "syslog": list(levels._SYSLOG_SEVERITY)}}}


def _on_failure() -> list[dict[str, Any]]:
    """A line the grok does not match is kept whole as content, marked raw, with the reason."""
    return [{"set": {"field": "llmid.format", "value": "raw"}},
            {"set": {"field": "llmid.content", "value": "{{{message}}}", "ignore_empty_value": True}},
            {"set": {"field": "error.message", "value": "{{ _ingest.on_failure_message }}"}}]


def preset_pipeline(preset: str) -> dict[str, Any]:
    """The pipeline of one Loghub preset (header → fields, timestamp, level, service, host)."""
    fmt = loghub_format(preset)
    headers, _ = template_to_regex(PRESETS[preset])
    processors: list[dict[str, Any]] = [
        {"grok": {"field": "message", "patterns": [grok_pattern(PRESETS[preset])]}},
    ]
    epoch = EPOCH_FIELD.get(preset)
    date_fields = [epoch] if epoch else list(fmt.date_fields)
    if date_fields:
        value = " ".join("{{{_h_" + f + "}}}" for f in date_fields)
        processors.append({"set": {"field": "_h_ts", "value": value}})
        processors.append({"date": {"field": "_h_ts", "formats": DATE_FORMATS[preset], "target_field": "@timestamp",
                                    "timezone": "UTC", "locale": "en", "ignore_failure": True}})
        processors.append({"remove": {"field": "_h_ts", "ignore_missing": True}})
    processors.append(_script(headers, preset, fmt.level_field or "", fmt.service_field or "",
                              fmt.host_field or "", fmt.service_constant or ""))
    return {"description": f"LLM-ID: parse {preset} lines (header template {PRESETS[preset]!r})",
            "processors": processors, "on_failure": _on_failure()}


def generic_pipeline() -> dict[str, Any]:
    """ISO-8601 and syslog lines: timestamp, level, component; anything else is kept whole as content."""
    return {
        "description": "LLM-ID: parse ISO-8601 or syslog lines (timestamp, level, component)",
        "processors": [
            {"grok": {"field": "message", "patterns": GENERIC_PATTERNS}},
            {"date": {"field": "_h_ts", "formats": GENERIC_DATE_FORMATS, "target_field": "@timestamp",
                      "timezone": "UTC", "locale": "en", "ignore_failure": True, "if": "ctx._h_ts != null"}},
            {"remove": {"field": "_h_ts", "ignore_missing": True}},
            _script(["Level", "Thread", "Component", "Host", "Pid", "Content"], "generic", "Level", "Component",
                    "Host", ""),
        ],
        "on_failure": _on_failure(),
    }


def pipelines(prefix: str) -> dict[str, dict[str, Any]]:
    """Pipeline id → body: the generic one and one per preset."""
    out = {pipeline_id(prefix): generic_pipeline()}
    for preset in PRESETS:
        out[pipeline_id(prefix, preset)] = preset_pipeline(preset)
    return out
