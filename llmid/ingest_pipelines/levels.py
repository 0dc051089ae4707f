"""Log levels normalised to one vocabulary, so alerts and filters work the same across formats.

Every format spells severity differently (Android letters, syslog numbers, Java SEVERE, Python CRITICAL);
the engine and dashboards only ever see TRACE, DEBUG, INFO, WARN, ERROR or FATAL (or None when unknown).
"""

from __future__ import annotations

_ALIASES: dict[str, str] = {
    "trace": "TRACE", "finest": "TRACE", "finer": "TRACE", "verbose": "TRACE", "v": "TRACE",
    "debug": "DEBUG", "dbg": "DEBUG", "fine": "DEBUG", "config": "DEBUG", "d": "DEBUG",
    "info": "INFO", "information": "INFO", "informational": "INFO", "notice": "INFO", "i": "INFO",
    "n": "INFO", "ok": "INFO",
    "warn": "WARN", "warning": "WARN", "w": "WARN",
    "error": "ERROR", "err": "ERROR", "e": "ERROR", "severe": "ERROR", "failure": "ERROR",
    "fatal": "FATAL", "crit": "FATAL", "critical": "FATAL", "alert": "FATAL", "emerg": "FATAL",
    "emergency": "FATAL", "panic": "FATAL", "f": "FATAL", "a": "FATAL", "wtf": "FATAL",
}
"""Lower-cased spelling -> canonical level (single letters are Android logcat's)."""

_SYSLOG_SEVERITY = ("FATAL", "FATAL", "FATAL", "ERROR", "WARN", "INFO", "INFO", "DEBUG")
"""Syslog severity 0..7 (emerg, alert, crit, err, warning, notice, info, debug)."""

_OTEL_NUMBER = ((4, "TRACE"), (8, "DEBUG"), (12, "INFO"), (16, "WARN"), (20, "ERROR"), (24, "FATAL"))
"""OpenTelemetry SeverityNumber upper bounds (1-4 TRACE ... 21-24 FATAL)."""

_cache: dict[str, str | None] = {}


def normalize_level(raw: object) -> str | None:
    """Canonical level for a raw level string (or None when it is not a level, e.g. a hostname)."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return otel_severity(int(raw))
    text = str(raw)
    try:
        return _cache[text]
    except KeyError:
        pass
    key = text.strip().strip("[]<>").lower()
    if ":" in key:  # Apache 2.4 error log: "core:error"
        key = key.rsplit(":", 1)[1]
    level = _ALIASES.get(key)
    if level is None and key.isdigit():
        level = syslog_severity(int(key))
    if len(_cache) < 4096:
        _cache[text] = level
    return level


def syslog_severity(value: int) -> str | None:
    """Level of a syslog severity 0..7 (or of a full PRI value, whose low 3 bits are the severity)."""
    if value < 0:
        return None
    return _SYSLOG_SEVERITY[value % 8]


def otel_severity(number: int) -> str | None:
    """Level of an OpenTelemetry SeverityNumber (1..24); None for 0 (unspecified) or out of range."""
    for upper, name in _OTEL_NUMBER:
        if 1 <= number <= upper:
            return name
    return None


def status_level(status: int) -> str:
    """Level of an HTTP status: server errors are ERROR, client errors WARN, the rest INFO."""
    if status >= 500:
        return "ERROR"
    if status >= 400:
        return "WARN"
    return "INFO"
