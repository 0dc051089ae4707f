"""Per-line format detection: files (and stdin pipes) mix formats, so each line is judged on its own.

The last format that matched is tried first (a single-format file costs one regex per line); otherwise the
candidates for the line's first character are tried, strictest first, and a line nothing matches is kept
whole as "raw". Loose Loghub templates only take part behind their strict probe regex.
"""

from __future__ import annotations

import re

from llmid.ingest_pipelines.access_logs import AccessLogFormat
from llmid.ingest_pipelines.base import LogFormat, Parsed, raw_parsed
from llmid.ingest_pipelines.jsonlines import CriFormat, DockerFormat, JsonFormat
from llmid.ingest_pipelines.presets import deployment_formats, loghub_format

_ORDER = (
    # containers first: their inner line would otherwise be taken for an ISO line
    "cri",
    # distinctive Loghub headers (strict probes)
    "HDFS", "Spark", "Android", "HealthApp", "HPC", "Zookeeper", "Hadoop", "Windows", "BGL", "Thunderbird",
    "OpenStack", "Apache", "Proxifier",
    # deployments
    "rfc5424", "syslog", "spring", "python-asctime", "iso", "syslog-iso", "nginx-error", "access", "python",
)


def default_candidates(containers: bool = True) -> list[LogFormat]:
    """Fresh format objects in detection order (JSON and Docker are handled by the "{" pre-check)."""
    deploy = deployment_formats()
    out: list[LogFormat] = []
    for name in _ORDER:
        if name == "cri":
            if containers:
                out.append(CriFormat())
        elif name == "access":
            out.append(AccessLogFormat())
        elif name in deploy:
            out.append(deploy[name])
        else:
            out.append(loghub_format(name))
    return out


class Detector:
    """Detects the format of each line of one source; keeps the last match as the fast path."""

    def __init__(self, candidates: list[LogFormat] | None = None, *, containers: bool = True) -> None:
        self.candidates = candidates if candidates is not None else default_candidates(containers)
        self.json_formats: list[LogFormat] = [JsonFormat()]
        if containers:
            self.json_formats.insert(0, DockerFormat())
        self.last: LogFormat | None = None
        self._by_char: dict[str, list[LogFormat]] = {}
        self._shadows: dict[tuple[int, str], re.Pattern[str] | None] = {}

    def _for_char(self, c: str) -> list[LogFormat]:
        """Candidates whose lines can start with this character (cached per character)."""
        fmts = self._by_char.get(c)
        if fmts is None:
            fmts = [f for f in self.candidates if f.first is None or c in f.first]
            if len(self._by_char) < 512:
                self._by_char[c] = fmts
        return fmts

    def _shadow(self, fmt: LogFormat, c: str) -> re.Pattern[str] | None:
        """One regex of the probes of the stricter candidates tried before `fmt`: a line they match must not
        be taken by `fmt` on the fast path (an ISO fast path must not swallow a Hadoop line)."""
        key = (id(fmt), c)
        if key not in self._shadows:
            probes = []
            for other in self._for_char(c):
                if other is fmt:
                    break
                probe = getattr(other, "probe", None)
                if probe is not None:
                    probes.append(f"(?:{probe.pattern})")
            self._shadows[key] = re.compile("|".join(probes)) if probes else None
        return self._shadows[key]

    def match(self, line: str) -> tuple[LogFormat, Parsed] | None:
        """The format and parse of this line, or None when no candidate matches."""
        last = self.last
        if last is not None and line and last.matches_probe(line):
            shadow = self._shadow(last, line[0]) if last.first != "{" else None
            if shadow is None or shadow.match(line) is None:
                parsed = last.parse_line(line)
                if parsed is not None:
                    return last, parsed
        s = line.lstrip()
        if not s:
            return None
        c = s[0]
        if c == "{":
            for fmt in self.json_formats:
                if fmt is last:
                    continue
                parsed = fmt.parse_line(s)
                if parsed is not None:
                    self.last = fmt
                    return fmt, parsed
            return None
        for fmt in self._for_char(c):
            if fmt is last or not fmt.matches_probe(line):
                continue
            parsed = fmt.parse_line(line)
            if parsed is not None:
                self.last = fmt
                return fmt, parsed
        return None

    def parse_line(self, line: str) -> Parsed:
        """Parse with whatever format fits, or keep the line whole as raw content."""
        found = self.match(line)
        return found[1] if found is not None else raw_parsed(line)


class FixedParser:
    """The same interface as `Detector` for a format chosen by the user (no detection)."""

    def __init__(self, fmt: LogFormat) -> None:
        self.fmt = fmt

    def match(self, line: str) -> tuple[LogFormat, Parsed] | None:
        parsed = self.fmt.parse_line(line)
        return (self.fmt, parsed) if parsed is not None else None

    def parse_line(self, line: str) -> Parsed:
        found = self.match(line)
        return found[1] if found is not None else raw_parsed(line)
