"""Log formats by name: `get_format("HDFS")`, `get_format("json")` or a header template of your own.

The public entry point for choosing a format; the formats themselves live in presets.py (Loghub and
syslog-like regexes), jsonlines.py (JSON, Docker, CRI) and access_logs.py.
"""

from __future__ import annotations

from collections.abc import Callable

from llmid.errors import ConfigError
from llmid.ingest_pipelines.access_logs import AccessLogFormat
from llmid.ingest_pipelines.base import LogFormat, Parsed, RegexFormat, TemplateFormat
from llmid.ingest_pipelines.jsonlines import CriFormat, DockerFormat, JsonFormat
from llmid.ingest_pipelines.presets import PRESETS, deployment_formats, loghub_format

__all__ = ["PRESETS", "LogFormat", "Parsed", "RegexFormat", "TemplateFormat", "get_format", "format_names",
           "named_format"]

_FACTORIES: dict[str, Callable[[], LogFormat]] = {
    "json": JsonFormat,
    "docker": DockerFormat,
    "cri": CriFormat,
    "access": AccessLogFormat,
}
for _name in deployment_formats():
    _FACTORIES[_name] = (lambda n=_name: deployment_formats()[n])  # type: ignore[misc]

ALIASES: dict[str, str] = {
    "rfc3164": "syslog", "bsd-syslog": "syslog", "iso8601": "iso", "iso-8601": "iso", "ecs": "json",
    "otel": "json", "opentelemetry": "json", "jsonl": "json", "ndjson": "json", "kubernetes": "cri",
    "k8s": "cri", "containerd": "cri", "nginx": "access", "combined": "access", "common": "access",
    "apache-access": "access", "clf": "access", "logging": "python", "spring-boot": "spring",
}

_PRESET_BY_LOWER = {name.lower(): name for name in PRESETS}


def format_names() -> list[str]:
    """Every name `get_format` accepts besides a template (Loghub presets first)."""
    return list(PRESETS) + list(_FACTORIES)


def named_format(name: str) -> LogFormat | None:
    """A fresh format object for a preset or built-in name (case-insensitive), or None if unknown."""
    key = name.strip().lower()
    if key in _PRESET_BY_LOWER:
        return loghub_format(_PRESET_BY_LOWER[key])
    key = ALIASES.get(key, key)
    factory = _FACTORIES.get(key)
    return factory() if factory is not None else None


def get_format(spec: str) -> LogFormat:
    """A preset or built-in format name (case-insensitive), or a Loghub header template with a <Content> field."""
    if not spec or not spec.strip():
        raise ConfigError("The log format is empty; give a preset name or a header template.")
    fmt = named_format(spec)
    if fmt is not None:
        return fmt
    if "<" in spec and ">" in spec:
        return TemplateFormat("custom", spec)
    raise ConfigError(
        f"Unknown log format {spec!r}; use a header template such as '<Date> <Time> <Level> <Content>' "
        f"or one of the presets: {', '.join(format_names())}."
    )
