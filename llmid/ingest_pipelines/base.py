"""The format contract: `parse(line)` gives header fields, `parse_line(line)` gives a ready `Parsed`.

Every format (header template, hand-written regex, JSON, access log, container wrapper) implements the same
two methods, so detection and the source reader never care which kind of format they hold.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from llmid.ingest_pipelines.levels import normalize_level, syslog_severity
from llmid.ingest_pipelines.timestamps import date_field_names, timestamp_from_fields


@dataclass(slots=True)
class Parsed:
    """What a format learned from one line (the `LogRecord` fields besides position and message)."""

    content: str
    timestamp: float | None = None
    level: str | None = None
    service: str | None = None
    host: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    log_format: str = "raw"
    partial: bool = False
    """The line is an unfinished piece of a longer line (CRI "P" tag): join the next piece without newline."""


LEVEL_FIELDS = ("Level", "level", "Severity", "severity", "LogLevel", "Priority")
SERVICE_FIELDS = ("Component", "component", "Program", "program", "Service", "service", "Logger", "logger",
                  "App", "app", "Application", "Process")
HOST_FIELDS = ("Node", "Host", "host", "Hostname", "hostname", "HostName", "node")


def _first_field(names: tuple[str, ...], headers: list[str]) -> str | None:
    for name in names:
        if name in headers:
            return name
    return None


class LogFormat:
    """A log format: turns one physical line into header fields (with "Content") or None if it does not match."""

    name: str = "format"
    first: str | None = None
    """Characters a line of this format can start with (None = any): a cheap pre-check for detection."""

    def matches_probe(self, line: str) -> bool:
        """Cheap strict pre-check used by detection before `parse_line` (true by default)."""
        return True

    def parse(self, line: str) -> dict[str, str] | None:
        """Header fields including "Content", or None when the line does not have this format."""
        raise NotImplementedError

    def parse_line(self, line: str) -> Parsed | None:
        """The line interpreted (content, timestamp, level, service, host, other fields), or None."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class RegexFormat(LogFormat):
    """A format given as one regex with named groups; group names follow the Loghub header names.

    `roles` overrides which group holds the level/service/host ("" = none); `constants` gives a fixed service
    (e.g. "sshd") for formats whose header does not carry one. `probe` is a cheap, strict regex used only by
    auto-detection so that loose header templates cannot swallow other formats.
    """

    def __init__(self, name: str, regex: str | re.Pattern[str], headers: list[str] | None = None, *,
                 roles: dict[str, str] | None = None, service: str | None = None,
                 probe: str | None = None, first: str | None = None, strip: bool = True,
                 post: Callable[[dict[str, str]], dict[str, str]] | None = None) -> None:
        self.name = name
        self.regex = re.compile(regex) if isinstance(regex, str) else regex
        self.headers = headers if headers is not None else list(self.regex.groupindex)
        roles = roles or {}
        self.level_field = roles.get("level", _first_field(LEVEL_FIELDS, self.headers))
        self.service_field = roles.get("service", _first_field(SERVICE_FIELDS, self.headers))
        self.host_field = roles.get("host", _first_field(HOST_FIELDS, self.headers))
        self.service_constant = service
        self.date_fields = date_field_names(self.headers)
        self.other_fields = tuple(h for h in self.headers if h != "Content")
        self.probe = re.compile(probe) if probe else None
        self.first = first
        """Characters a line of this format can start with (None = any): a cheap pre-check for detection."""
        self.strip = strip
        self.post = post
        """Clean-up of the matched groups (merge alternative groups, drop NILVALUEs...)."""

    def parse(self, line: str) -> dict[str, str] | None:
        m = self.regex.match(line.strip() if self.strip else line)
        if m is None:
            return None
        values = {k: v if v is not None else "" for k, v in m.groupdict().items()}
        return self.post(values) if self.post is not None else values

    def matches_probe(self, line: str) -> bool:
        """Cheap strict check used by detection (true when the format has no probe)."""
        return self.probe is None or self.probe.match(line) is not None

    def parse_line(self, line: str) -> Parsed | None:
        values = self.parse(line)
        if values is None:
            return None
        content = values.get("Content", "")
        level = normalize_level(values.get(self.level_field)) if self.level_field else None
        if level is None and "PRI" in values and values["PRI"].isdigit():
            level = syslog_severity(int(values["PRI"]))
        service = self.service_constant or (values.get(self.service_field) or None if self.service_field
                                            else None)
        host = values.get(self.host_field) or None if self.host_field else None
        return Parsed(
            content=content,
            timestamp=timestamp_from_fields(self.date_fields, values) if self.date_fields else None,
            level=level,
            service=service,
            host=host,
            fields={k: values[k] for k in self.other_fields if values.get(k)},
            log_format=self.name,
        )


def template_to_regex(template: str) -> tuple[list[str], re.Pattern[str]]:
    """Compile a Loghub header template exactly as logpai/logparser does (`<Field>` -> lazy group,
    runs of spaces -> \\s+, anchored), except that a trailing last field is greedy (same matches, no
    per-character backtracking on long lines)."""
    headers: list[str] = []
    parts = re.split(r"(<[^<>]+>)", template)
    regex = ""
    for k, part in enumerate(parts):
        if k % 2 == 0:
            regex += re.sub(" +", r"\\s+", part)
        else:
            header = part.strip("<").strip(">")
            last = k == len(parts) - 2 and parts[-1] == ""
            regex += f"(?P<{header}>.*)" if last else f"(?P<{header}>.*?)"
            headers.append(header)
    try:
        return headers, re.compile("^" + regex + "$")
    except re.error as exc:
        from llmid.errors import ConfigError

        raise ConfigError(f"Log format {template!r} is not a valid header template ({exc}).") from None


class TemplateFormat(RegexFormat):
    """A Loghub-style header template such as '<Date> <Time> <Level> <Component>: <Content>'."""

    def __init__(self, name: str, template: str, **kwargs: object) -> None:
        headers, regex = template_to_regex(template)
        if "Content" not in headers:
            from llmid.errors import ConfigError

            raise ConfigError(f"Log format {template!r} has no <Content> field.")
        self.template = template
        super().__init__(name, regex, headers, **kwargs)  # type: ignore[arg-type]


def raw_parsed(line: str) -> Parsed:
    """The fallback for a line no format matched: kept whole as content, never dropped."""
    return Parsed(content=line.strip(), log_format="raw")
