"""JSON lines with ECS or OpenTelemetry field names, and the container wrappers (Docker, Kubernetes CRI).

Structured loggers put the same facts under different names (`@timestamp` / `time_unix_nano`, `log.level` /
`severity_text`, `service.name` / `resource.attributes`); the nested JSON is flattened to dotted keys so one
lookup list covers both the flat and the nested spelling. Container runtimes wrap the application's own line,
which is detected again so a JSON or ISO line inside Docker/CRI is parsed as what it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from llmid.ingest_pipelines.base import LogFormat, Parsed
from llmid.ingest_pipelines.levels import normalize_level
from llmid.ingest_pipelines.timestamps import epoch_number, parse_timestamp

MESSAGE_KEYS = ("message", "msg", "body", "body.stringValue", "body.string_value", "Body", "text", "event",
                "log", "short_message", "full_message", "MESSAGE")
TIME_KEYS = ("@timestamp", "timestamp", "time", "ts", "time_unix_nano", "timeUnixNano", "observedTimestamp",
             "observed_timestamp", "observed_time_unix_nano", "observedTimeUnixNano", "Timestamp", "datetime",
             "date", "asctime", "t", "_timestamp", "eventTime")
LEVEL_KEYS = ("log.level", "level", "severity_text", "severityText", "SeverityText", "severity", "lvl",
              "levelname", "loglevel", "log_level", "level_name", "severity_number", "severityNumber")
SERVICE_KEYS = ("service.name", "resource.service.name", "resource.attributes.service.name", "service",
                "logger", "logger_name", "log.logger", "logger.name", "name", "app", "application", "component",
                "container_name", "kubernetes.container_name", "k8s.container.name",
                "resource.attributes.k8s.container.name", "SYSLOG_IDENTIFIER", "_COMM")
HOST_KEYS = ("host.name", "resource.host.name", "resource.attributes.host.name", "hostname", "host",
             "host.hostname", "kubernetes.host", "_HOSTNAME", "HOSTNAME")


def _flatten(obj: dict[str, Any], prefix: str, out: dict[str, Any], depth: int = 0) -> None:
    """Nested dicts -> dotted keys; OTel attribute lists ([{key, value: {stringValue}}]) -> dotted keys too."""
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and depth < 6:
            if len(value) == 1 and next(iter(value)) in ("stringValue", "intValue", "doubleValue", "boolValue"):
                out[name] = next(iter(value.values()))
            else:
                _flatten(value, name + ".", out, depth + 1)
        elif (isinstance(value, list) and value and depth < 6
              and all(isinstance(v, dict) and "key" in v and "value" in v for v in value)):
            _flatten({v["key"]: v["value"] for v in value}, name + ".", out, depth + 1)
        else:
            out[name] = value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _pop_first(flat: dict[str, Any], keys: tuple[str, ...], accept: Callable[[Any], bool]) -> Any:
    for key in keys:
        if key in flat:
            value = flat[key]
            if accept(value):
                del flat[key]
                return value
    return None


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool) and value != ""


def _time_of(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return epoch_number(value)
    if isinstance(value, str):
        return parse_timestamp(value)
    return None


def load_object(line: str) -> dict[str, Any] | None:
    """The JSON object on this line, or None if the line is not one (malformed JSON is not an error)."""
    s = line.strip()
    if not s.startswith("{") or not s.endswith("}"):
        return None
    try:
        obj = json.loads(s)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def interpret_object(obj: dict[str, Any], name: str = "json") -> Parsed:
    """Map a JSON log object to record fields, whichever naming convention (ECS, OTel, logfmt-ish) it uses."""
    flat: dict[str, Any] = {}
    _flatten(obj, "", flat)
    message = _pop_first(flat, MESSAGE_KEYS, lambda v: v is not None and not isinstance(v, bool))
    ts = None
    for key in TIME_KEYS:
        if key in flat:
            ts = _time_of(flat[key])
            if ts is not None:
                del flat[key]
                break
    level = None
    for key in LEVEL_KEYS:
        if key in flat:
            level = normalize_level(flat[key])
            if level is not None:
                del flat[key]
                break
    service = _pop_first(flat, SERVICE_KEYS, _is_scalar)
    host = _pop_first(flat, HOST_KEYS, _is_scalar)
    return Parsed(
        content=_text(message).strip() if message is not None else _text(obj),
        timestamp=ts,
        level=level,
        service=_text(service) if service is not None else None,
        host=_text(host) if host is not None else None,
        fields={k: _text(v) for k, v in flat.items()},
        log_format=name,
    )


class JsonFormat(LogFormat):
    """One JSON object per line (ECS, OpenTelemetry, or any structured logger)."""

    first = "{"
    probe = None

    def __init__(self, name: str = "json") -> None:
        self.name = name

    def matches_probe(self, line: str) -> bool:
        return True

    def parse(self, line: str) -> dict[str, str] | None:
        parsed = self.parse_line(line)
        if parsed is None:
            return None
        return {**parsed.fields, "Content": parsed.content}

    def parse_line(self, line: str) -> Parsed | None:
        obj = load_object(line)
        if obj is None or is_docker(obj):
            return None
        return interpret_object(obj, self.name)


def is_docker(obj: dict[str, Any]) -> bool:
    """Docker json-file lines carry the application line in "log" next to "stream"/"time"."""
    return isinstance(obj.get("log"), str) and ("stream" in obj or "time" in obj) and "message" not in obj


class _Wrapper(LogFormat):
    """Shared logic of Docker and CRI: the inner application line is detected again."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._inner: Any = None

    def matches_probe(self, line: str) -> bool:
        return True

    def inner_parsed(self, text: str) -> Parsed:
        if self._inner is None:
            from llmid.ingest_pipelines.detect import Detector

            self._inner = Detector(containers=False)
        return self._inner.parse_line(text)

    def finish(self, inner_text: str, outer: Parsed) -> Parsed:
        """Combine the re-detected inner line with the wrapper's own time and stream."""
        inner = self.inner_parsed(inner_text)
        fields = dict(outer.fields)
        fields.update(inner.fields)
        if inner.log_format != "raw":
            fields["inner_format"] = inner.log_format
        return Parsed(
            content=inner.content,
            timestamp=inner.timestamp if inner.timestamp is not None else outer.timestamp,
            level=inner.level if inner.level is not None else outer.level,
            service=inner.service or outer.service,
            host=inner.host or outer.host,
            fields=fields,
            log_format=self.name,
        )

    def parse(self, line: str) -> dict[str, str] | None:
        parsed = self.parse_line(line)
        if parsed is None:
            return None
        return {**parsed.fields, "Content": parsed.content}


class DockerFormat(_Wrapper):
    """Docker json-file driver: {"log": "...\\n", "stream": "stdout", "time": "..."}."""

    first = "{"
    probe = None

    def __init__(self, name: str = "docker") -> None:
        super().__init__(name)

    def raw_inner(self, line: str) -> str | None:
        """The application's text inside the wrapper, line break removed."""
        obj = load_object(line)
        return obj["log"].rstrip("\r\n") if obj is not None and is_docker(obj) else None

    def parse_line(self, line: str) -> Parsed | None:
        obj = load_object(line)
        if obj is None or not is_docker(obj):
            return None
        text = obj["log"]
        partial = not text.endswith("\n")  # the driver splits lines over 16 KiB without the newline
        text = text.rstrip("\r\n")
        outer = Parsed(content=text, timestamp=_time_of(obj.get("time")), log_format=self.name,
                       fields={"stream": _text(obj.get("stream"))} if obj.get("stream") else {})
        attrs = obj.get("attrs")
        if isinstance(attrs, dict) and isinstance(attrs.get("tag"), str):
            outer.service = attrs["tag"]
        if partial:
            outer.partial = True
            return outer
        return self.finish(text, outer)


_CRI = re.compile(r"^(?P<Time>\d{4}-\d\d-\d\dT\S+) (?P<Stream>stdout|stderr) (?P<Tag>[FP])(?::\S*)?(?: (?P<Log>.*))?$")


class CriFormat(_Wrapper):
    """Kubernetes CRI container log line: `<RFC3339Nano> stdout|stderr F|P <message>` (P = partial)."""

    first = "0123456789"
    probe = None

    def __init__(self, name: str = "cri") -> None:
        super().__init__(name)

    def raw_inner(self, line: str) -> str | None:
        """The application's text inside the wrapper."""
        m = _CRI.match(line.rstrip("\r\n"))
        return (m.group("Log") or "") if m is not None else None

    def parse_line(self, line: str) -> Parsed | None:
        m = _CRI.match(line.rstrip("\r\n"))
        if m is None:
            return None
        text = m.group("Log") or ""
        outer = Parsed(content=text, timestamp=parse_timestamp(m.group("Time")), log_format=self.name,
                       fields={"stream": m.group("Stream")})
        if m.group("Tag") == "P":
            outer.partial = True
            return outer
        return self.finish(text, outer)
