"""Apache/Nginx access logs (common and combined): the level comes from the HTTP status.

An access line has no level or component of its own; deriving the level from the status (5xx ERROR, 4xx WARN)
lets incidents and alerts see failing requests, and "http" groups all of them as one service.
"""

from __future__ import annotations

from llmid.ingest_pipelines.base import Parsed, RegexFormat
from llmid.ingest_pipelines.levels import status_level
from llmid.ingest_pipelines.timestamps import parse_timestamp

ACCESS_REGEX = (
    r'^(?P<Client>\S+) (?P<Ident>\S+) (?P<User>\S+) \[(?P<Time>[^\]]+)\] '
    r'(?P<Content>"(?P<Request>(?:[^"\\]|\\.)*)" (?P<Status>\d{3}) (?P<Size>\d+|-)'
    r'(?: "(?P<Referer>(?:[^"\\]|\\.)*)" "(?P<Agent>(?:[^"\\]|\\.)*)")?.*)$'
)
"""Common Log Format, optionally followed by referer and user agent (combined) and extra fields."""


class AccessLogFormat(RegexFormat):
    """Common/combined access log; Content is the request, status, size (and referer, agent) part."""

    def __init__(self, name: str = "access") -> None:
        super().__init__(name, ACCESS_REGEX, probe=r'\S+ \S+ \S+ \[\d\d/[A-Z][a-z]{2}/\d{4}:[^\]]*\] "',
                         roles={"level": "", "service": "", "host": ""}, service="http")

    def parse_line(self, line: str) -> Parsed | None:
        values = self.parse(line)
        if values is None:
            return None
        fields = {k: v for k, v in values.items() if v and k != "Content"}
        return Parsed(
            content=values["Content"],
            timestamp=parse_timestamp(values["Time"]),
            level=status_level(int(values["Status"])),
            service="http",
            host=None,
            fields=fields,
            log_format=self.name,
        )
