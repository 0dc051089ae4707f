"""Getting logs in: formats (Loghub presets, syslog, ISO, JSON/ECS/OTel, Docker, CRI, access logs),
per-line format detection, multi-line records, and streaming sources (files, .gz, stdin, follow).

Everything downstream receives `LogRecord`s from `read_records`, whatever the input looked like.
"""

from llmid.ingest_pipelines.formats import PRESETS, LogFormat, get_format
from llmid.ingest_pipelines.sources import read_records

__all__ = ["PRESETS", "LogFormat", "get_format", "read_records"]
