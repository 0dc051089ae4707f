"""Built-in formats: the 16 Loghub header templates and the formats real deployments write.

Loghub templates are kept byte-for-byte as in logpai/logparser's benchmark settings so that the Content we
extract equals the benchmark ground truth. Each also gets a strict `probe` (used only by auto-detection),
because the templates themselves are loose (`.*?` everywhere) and would swallow other formats.
"""

from __future__ import annotations

from llmid.ingest_pipelines.base import RegexFormat, TemplateFormat

PRESETS: dict[str, str] = {
    "HDFS": r"<Date> <Time> <Pid> <Level> <Component>: <Content>",
    "Hadoop": r"<Date> <Time> <Level> \[<Process>\] <Component>: <Content>",
    "Spark": r"<Date> <Time> <Level> <Component>: <Content>",
    "Zookeeper": r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>",
    "BGL": r"<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
    "HPC": r"<LogId> <Node> <Component> <State> <Time> <Flag> <Content>",
    "Thunderbird": (r"<Label> <Timestamp> <Date> <User> <Month> <Day> <Time> <Location> "
                    r"<Component>(\[<PID>\])?: <Content>"),
    "Windows": r"<Date> <Time>, <Level>                  <Component>    <Content>",
    "Linux": r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>",
    "Android": r"<Date> <Time>  <Pid>  <Tid> <Level> <Component>: <Content>",
    "HealthApp": r"<Time>\|<Component>\|<Pid>\|<Content>",
    "Apache": r"\[<Time>\] \[<Level>\] <Content>",
    "Proxifier": r"\[<Time>\] <Program> - <Content>",
    "OpenSSH": r"<Date> <Day> <Time> <Component> sshd\[<Pid>\]: <Content>",
    "OpenStack": r"<Logrecord> <Date> <Time> <Pid> <Level> <Component> \[<ADDR>\] <Content>",
    "Mac": r"<Month>  <Date> <Time> <User> <Component>\[<PID>\]( \(<Address>\))?: <Content>",
}
"""Preset name -> Loghub header template (logparser benchmark settings)."""

_LOGHUB_OPTIONS: dict[str, dict[str, object]] = {
    # probe: strict regex for detection (None = not used by detection: covered by the generic syslog format)
    "HDFS": {"probe": r"\d{6} \d{6} \d+ [A-Z]+ \S+: ", "first": "0123456789"},
    "Hadoop": {"probe": r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \[[^\]]*\] \S+: ", "first": "0123456789"},
    "Spark": {"probe": r"\d\d/\d\d/\d\d \d\d:\d\d:\d\d [A-Z]+ \S+: ", "first": "0123456789"},
    "Zookeeper": {"probe": r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - [A-Z]+ +\[.*@\d+\] - ",
                  "first": "0123456789", "roles": {"host": ""}},
    "BGL": {"probe": r"\S+ \d{9,10} \d{4}\.\d\d\.\d\d \S+ \d{4}-\d\d-\d\d-\d\d\.\d\d\.\d\d\.\d+ "},
    "HPC": {"probe": r"\d+ \S+ \S+ \S+ \d{9,10} -?\d+ ", "first": "0123456789", "roles": {"level": ""}},
    "Thunderbird": {"probe": r"\S+ \d{9,10} \d{4}\.\d\d\.\d\d \S+ [A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d ",
                    "roles": {"host": "User"}},
    "Windows": {"probe": r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d, [A-Za-z]+ +\S", "first": "0123456789"},
    "Linux": {"roles": {"host": "Level", "level": ""}},
    "Android": {"probe": r"\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} +\d+ +\d+ [VDIWEFA] ", "first": "0123456789"},
    "HealthApp": {"probe": r"\d{8}-\d{1,2}:\d{1,2}:\d{1,2}:\d{1,3}\|", "first": "0123456789"},
    "Apache": {"probe": r"\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)? \d{4}\] \[[\w:]+\] ",
               "first": "[", "service": "apache"},
    "Proxifier": {"probe": r"\[\d\d\.\d\d \d\d:\d\d:\d\d\] \S+ - ", "first": "[", "roles": {"service": "Program"}},
    "OpenSSH": {"roles": {"host": "Component"}, "service": "sshd"},
    "OpenStack": {"probe": r"\S+\.log\S* \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \d+ [A-Z]+ \S+ \[",
                  "first": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"},
    "Mac": {"roles": {"host": "User"}},
}


def loghub_format(name: str) -> TemplateFormat:
    """A fresh format object for one Loghub preset (with its roles and detection probe)."""
    return TemplateFormat(name, PRESETS[name], **_LOGHUB_OPTIONS.get(name, {}))


def detectable_loghub() -> list[str]:
    """Loghub presets distinctive enough to take part in auto-detection."""
    return [n for n, o in _LOGHUB_OPTIONS.items() if o.get("probe")]


# --- formats of real deployments -------------------------------------------------------------------------

ISO_TS = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:Z|z|[+-]\d\d(?::?\d\d)?)?"
LEVEL_WORD = (r"(?i:TRACE|DEBUG|INFORMATION|INFO|NOTICE|WARNING|WARN|ERROR|ERR|FATAL|CRITICAL|CRIT|SEVERE"
              r"|ALERT|EMERG|PANIC)")
_DIGITS = "0123456789"


def _merge(*pairs: tuple[str, str]) -> object:
    """Post hook: fold alternative groups (`Content2` -> `Content`) and drop the empty ones."""

    def post(values: dict[str, str]) -> dict[str, str]:
        for target, alt in pairs:
            if alt in values:
                v = values.pop(alt)
                if v and not values.get(target):
                    values[target] = v
        return values

    return post


def _iso_post(values: dict[str, str]) -> dict[str, str]:
    svc = values.get("Service", "")
    if svc:
        values["Service"] = svc.rstrip(":").strip("[]").strip()
    return values


def _rfc5424_post(values: dict[str, str]) -> dict[str, str]:
    for k in ("Timestamp", "Host", "Program", "Pid", "MsgId", "SD"):
        if values.get(k) == "-":
            values[k] = ""
    content = values.get("Content", "")
    if content.startswith("\ufeff"):
        values["Content"] = content[1:]
    return values


def deployment_formats() -> dict[str, RegexFormat]:
    """Fresh format objects for the syslog / ISO / Python / Spring / nginx-error formats, by name."""
    fmts = [
        RegexFormat(
            "syslog",
            r"^(?:<(?P<PRI>\d{1,3})>)?(?P<Timestamp>[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d(?:\.\d+)?)\s+"
            r"(?P<Host>\S+)\s+(?:(?P<Program>.*?)(?:\[(?P<Pid>\d+)\])?:(?:\s+(?P<Content>.*))?|(?P<Content2>.*))$",
            first="<ABCDEFGHIJKLMNOPQRSTUVWXYZ", post=_merge(("Content", "Content2")),  # type: ignore[arg-type]
        ),
        RegexFormat(
            "rfc5424",
            r"^<(?P<PRI>\d{1,3})>(?P<Version>\d{1,2}) (?P<Timestamp>\S+) (?P<Host>\S+) (?P<Program>\S+) "
            r"(?P<Pid>\S+) (?P<MsgId>\S+) (?P<SD>-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: (?P<Content>.*))?$",
            first="<", post=_rfc5424_post,
        ),
        RegexFormat(
            "spring",
            r"^(?P<Timestamp>" + ISO_TS + r")\s+(?P<Level>" + LEVEL_WORD + r")\s+(?P<Pid>\d+)\s+---\s+"
            r"(?:\[(?P<App>[^\]]*)\]\s+)?\[\s*(?P<Thread>[^\]]*)\]\s+(?P<Logger>\S+)\s*:\s?(?P<Content>.*)$",
            first=_DIGITS, roles={"service": "Logger"}, probe=r"\S+\s+[A-Za-z]+\s+\d+\s+---\s",
        ),
        RegexFormat(
            "python-asctime",
            r"^(?P<Timestamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:,\d{3})?) - (?P<Logger>.+?) - "
            r"(?P<Level>" + LEVEL_WORD + r") - (?P<Content>.*)$",
            first=_DIGITS, probe=r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:,\d{3})? - ",
        ),
        RegexFormat(
            "iso",
            r"^(?P<Timestamp>" + ISO_TS + r")\s+\[?(?P<Level>" + LEVEL_WORD + r")\]?(?:\s+|$)"
            r"(?:(?P<Service>\[[^\]]*\]:?|[\w.$@/-]+:)(?:\s+|$))?(?P<Content>.*)$",
            first=_DIGITS, post=_iso_post,
        ),
        RegexFormat(
            "syslog-iso",
            r"^(?:<(?P<PRI>\d{1,3})>)?(?P<Timestamp>" + ISO_TS + r")\s+(?P<Host>\S+)\s+"
            r"(?P<Program>[^\s\[:]+)(?:\[(?P<Pid>\d+)\])?:(?:\s+(?P<Content>.*))?$",
            first="<" + _DIGITS,
        ),
        RegexFormat(
            "nginx-error",
            r"^(?P<Timestamp>\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(?P<Level>\w+)\] (?P<Pid>\d+)#(?P<Tid>\d+): "
            r"(?P<Content>.*)$",
            first=_DIGITS, service="nginx",
        ),
        RegexFormat(
            "python",
            r"^(?P<Level>DEBUG|INFO|WARNING|ERROR|CRITICAL):(?P<Logger>[^:\s]*):(?P<Content>.*)$",
            first="DIWEC",
        ),
    ]
    return {f.name: f for f in fmts}
