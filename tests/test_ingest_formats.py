"""Formats and per-line detection: Loghub presets against ground truth, and every deployment format."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from llmid.documents import iso
from llmid.errors import ConfigError
from llmid.ingest_pipelines import PRESETS, get_format, read_records
from llmid.ingest_pipelines.detect import Detector
from llmid.ingest_pipelines.levels import normalize_level
from llmid.ingest_pipelines.timestamps import parse_timestamp

LOGHUB = Path("/work/shared/data/loghub2k")


def _loghub_paths(name: str) -> tuple[Path, Path]:
    return LOGHUB / name / f"{name}_2k.log", LOGHUB / name / f"{name}_2k.log_structured_corrected.csv"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_loghub_preset_content_matches_ground_truth(name: str) -> None:
    log, truth = _loghub_paths(name)
    if not log.exists() or not truth.exists():
        pytest.skip(f"{name} is not in {LOGHUB}")
    with truth.open(newline="", encoding="utf-8") as fh:
        expected = [row["Content"] for row in csv.DictReader(fh)]
    records = list(read_records(str(log), name))
    assert len(records) == len(expected)
    same = sum(r.content == e for r, e in zip(records, expected, strict=True))
    assert same / len(expected) >= 0.995, f"{name}: {same}/{len(expected)}"
    assert [r.line_id for r in records] == list(range(1, len(records) + 1))
    assert all(r.log_format == name for r in records)
    assert sum(r.timestamp is not None for r in records) / len(records) >= 0.99
    # auto-detection must find the same Content on (nearly) every line
    detected = list(read_records(str(log)))
    agree = sum(a.content == b.content for a, b in zip(detected, records, strict=True))
    assert agree / len(records) >= 0.99, f"{name} detection: {agree}/{len(records)}"


LINES = [
    # (line, format, content, level, service, host, timestamp)
    ("081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_1 terminating",
     "HDFS", "PacketResponder 1 for block blk_1 terminating", "INFO", "dfs.DataNode$PacketResponder", None,
     "2008-11-09T20:36:15.000Z"),
    ("2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster",
     "Hadoop", "Created MRAppMaster", "INFO", "org.apache.hadoop.mapreduce.v2.app.MRAppMaster", None,
     "2015-10-18T18:01:47.978Z"),
    ("17/06/09 20:10:40 INFO executor.CoarseGrainedExecutorBackend: Registered signal handlers",
     "Spark", "Registered signal handlers", "INFO", "executor.CoarseGrainedExecutorBackend", None,
     "2017-06-09T20:10:40.000Z"),
    ("2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - "
     "Notification time out: 3200", "Zookeeper", "Notification time out: 3200", "INFO",
     "0:0:0:0:0:0:0:2181:FastLeaderElection",
     None, "2015-07-29T17:41:44.747Z"),
    ("- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL "
     "FATAL instruction cache parity error corrected", "BGL", "instruction cache parity error corrected",
     "FATAL", "KERNEL", "R02-M1-N0-C:J12-U11", "2005-06-03T22:42:50.000Z"),
    ("03-17 16:13:38.811  1702  2395 W WindowManager: freezing display", "Android", "freezing display", "WARN",
     "WindowManager", None, None),
    ("20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579", "HealthApp",
     "onStandStepChanged 3579", None, "Step_LSC", None, "2017-12-23T22:15:29.606Z"),
    ("[Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6", "Apache",
     "mod_jk child workerEnv in error state 6", "ERROR", "apache", None, "2005-12-04T04:47:44.000Z"),
    ("[10.30 16:49:06] chrome.exe - proxy.cse.cuhk.edu.hk:5070 open through proxy", "Proxifier",
     "proxy.cse.cuhk.edu.hk:5070 open through proxy", None, "chrome.exe", None, None),
    ("nova-api.log.1.2017-05-16_13:53:08 2017-05-16 00:00:00.008 25746 INFO nova.osapi_compute.wsgi.server "
     "[req-38101a0b-2096-447d-96ea-a692162415ae 113d3a99c3da401fbd62cc2caa5b96d2 - - -] 10.11.10.1 "
     "\"GET /v2/servers/detail HTTP/1.1\" status: 200", "OpenStack",
     "10.11.10.1 \"GET /v2/servers/detail HTTP/1.1\" status: 200", "INFO", "nova.osapi_compute.wsgi.server",
     None, "2017-05-16T00:00:00.008Z"),
    ("2016-09-28 04:30:30, Info                  CBS    Loaded Servicing Stack v6.1.7601.23505", "Windows",
     "Loaded Servicing Stack v6.1.7601.23505", "INFO", "CBS", None, "2016-09-28T04:30:30.000Z"),
    ("<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8", "syslog",
     "'su root' failed for lonvick on /dev/pts/8", "FATAL", "su", "mymachine", None),
    ("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0", "syslog",
     "authentication failure; logname= uid=0", None, "sshd(pam_unix)", "combo", None),
    ("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\"] "
     "An application event log entry", "rfc5424", "An application event log entry", "INFO", "evntslog",
     "mymachine.example.com", "2003-10-11T22:14:15.003Z"),
    ("2024-05-01T12:00:00.123Z ERROR [payments] charge failed for order 42", "iso",
     "charge failed for order 42", "ERROR", "payments", None, "2024-05-01T12:00:00.123Z"),
    ("2024-05-01 12:00:00.123 warning payments: retrying in 5s", "iso", "retrying in 5s", "WARN", "payments",
     None, "2024-05-01T12:00:00.123Z"),
    ("2024-05-01T14:00:00+02:00 INFO started", "iso", "started", "INFO", None, None, "2024-05-01T12:00:00.000Z"),
    ("2024-05-01T12:00:00.5Z web-1 nginx[812]: upstream timed out", "syslog-iso", "upstream timed out", None,
     "nginx", "web-1", "2024-05-01T12:00:00.500Z"),
    ("WARNING:urllib3.connectionpool:Retrying (Retry(total=2)) after connection broken", "python",
     "Retrying (Retry(total=2)) after connection broken", "WARN", "urllib3.connectionpool", None, None),
    ("2024-05-01 12:00:00,123 - app.db - CRITICAL - connection pool exhausted", "python-asctime",
     "connection pool exhausted", "FATAL", "app.db", None, "2024-05-01T12:00:00.123Z"),
    ("2024-05-01T12:00:00.123Z  INFO 4242 --- [           main] com.example.App          : Started App",
     "spring", "Started App", "INFO", "com.example.App", None, "2024-05-01T12:00:00.123Z"),
    ("2024/05/01 12:00:00 [error] 812#0: *1 connect() failed (111: Connection refused)", "nginx-error",
     "*1 connect() failed (111: Connection refused)", "ERROR", "nginx", None, "2024-05-01T12:00:00.000Z"),
    ('10.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 503 2326 '
     '"http://example.com/" "Mozilla/4.08"', "access",
     '"GET /apache_pb.gif HTTP/1.0" 503 2326 "http://example.com/" "Mozilla/4.08"', "ERROR", "http", None,
     "2000-10-10T20:55:36.000Z"),
    ('192.168.1.2 - - [01/May/2024:12:00:00 +0000] "POST /login HTTP/1.1" 404 -', "access",
     '"POST /login HTTP/1.1" 404 -', "WARN", "http", None, "2024-05-01T12:00:00.000Z"),
    ('{"@timestamp":"2024-05-01T12:00:00.250Z","log.level":"warn","message":"disk 91% full",'
     '"service.name":"storage","host.name":"node-3","disk":"/dev/sda"}', "json", "disk 91% full", "WARN",
     "storage", "node-3", "2024-05-01T12:00:00.250Z"),
    ('{"@timestamp":"2024-05-01T12:00:00Z","log":{"level":"ERROR","logger":"x"},"message":"boom",'
     '"service":{"name":"api"},"host":{"name":"h1"}}', "json", "boom", "ERROR", "api", "h1",
     "2024-05-01T12:00:00.000Z"),
    ('{"time_unix_nano":"1714564800000000000","severity_text":"FATAL","body":"out of memory",'
     '"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"trainer"}}]}}', "json",
     "out of memory", "FATAL", "trainer", None, "2024-05-01T12:00:00.000Z"),
    ('{"timestamp":"2024-05-01T12:00:00Z","severityText":"Information","body":{"stringValue":"ready"},'
     '"resource":{"service.name":"gateway"}}', "json", "ready", "INFO", "gateway", None,
     "2024-05-01T12:00:00.000Z"),
    ('{"log":"{\\"level\\":\\"error\\",\\"msg\\":\\"db down\\",\\"service\\":\\"orders\\"}\\n",'
     '"stream":"stderr","time":"2024-05-01T12:00:00.123456789Z"}', "docker", "db down", "ERROR", "orders", None,
     "2024-05-01T12:00:00.123Z"),
    ('{"log":"plain text from the app\\n","stream":"stdout","time":"2024-05-01T12:00:00.5Z"}', "docker",
     "plain text from the app", None, None, None, "2024-05-01T12:00:00.500Z"),
    ("2024-05-01T12:00:00.123456789Z stdout F 2024-05-01T12:00:00.100Z WARN [cache] eviction storm", "cri",
     "eviction storm", "WARN", "cache", None, "2024-05-01T12:00:00.100Z"),
]


@pytest.mark.parametrize(("line", "fmt", "content", "level", "service", "host", "ts"), LINES,
                         ids=[f"{i}-{row[1]}" for i, row in enumerate(LINES)])
def test_detect_each_format(line: str, fmt: str, content: str, level: str | None, service: str | None,
                            host: str | None, ts: str | None) -> None:
    found = Detector().match(line)
    assert found is not None, line
    parsed = found[1]
    assert parsed.log_format == fmt
    assert parsed.content == content
    assert parsed.level == level
    assert parsed.service == service
    assert parsed.host == host
    if ts is not None:
        assert iso(parsed.timestamp) == ts
    # the explicit format gives the same result as detection
    explicit = get_format(fmt).parse_line(line)
    assert explicit is not None and explicit.content == content
    assert get_format(fmt).parse(line)["Content"] == content  # type: ignore[index]


def test_interleaved_file_each_line_right(tmp_path: Path) -> None:
    lines = [
        "Oct 11 22:14:15 web-1 sshd[42]: Accepted publickey for deploy",
        '{"@timestamp":"2024-05-01T12:00:01Z","log.level":"error","message":"payment failed","service.name":"pay"}',
        "2024-05-01T12:00:02.000Z INFO [api] request served",
        "Oct 11 22:14:16 web-1 cron[43]: job started",
        "2024-05-01T12:00:03.000Z WARN [api] slow request",
        '{"@timestamp":"2024-05-01T12:00:04Z","log.level":"info","message":"ok","service.name":"pay"}',
        '{"broken": json',
        "081109 203615 148 INFO dfs.DataNode: served block",
        "just some words",
    ]
    path = tmp_path / "mixed.log"
    path.write_text("\n".join(lines) + "\n")
    recs = list(read_records(str(path)))
    assert [r.log_format for r in recs] == ["syslog", "json", "iso", "syslog", "iso", "json", "raw", "HDFS", "raw"]
    assert [r.content for r in recs] == ["Accepted publickey for deploy", "payment failed", "request served",
                                         "job started", "slow request", "ok", '{"broken": json',
                                         "served block", "just some words"]
    assert [r.service for r in recs][:5] == ["sshd", "pay", "api", "cron", "api"]
    assert [r.line_id for r in recs] == list(range(1, 10))


def test_malformed_json_is_raw_not_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"message": "fine"}\n{"message": "cut\n{not json at all}\n')
    recs = list(read_records(str(path), "json"))
    assert [r.log_format for r in recs] == ["json", "raw", "raw"]
    assert recs[1].content == '{"message": "cut'
    assert recs[2].message == "{not json at all}"


def test_cri_partial_lines_are_joined(tmp_path: Path) -> None:
    path = tmp_path / "cri.log"
    path.write_text(
        '2024-05-01T12:00:00.1Z stdout P {"level":"error","msg":"very long\n'
        '2024-05-01T12:00:00.2Z stdout F  message"}\n'
        "2024-05-01T12:00:01Z stderr F plain\n"
    )
    recs = list(read_records(str(path)))
    assert len(recs) == 2
    assert recs[0].content == "very long message" and recs[0].level == "ERROR" and recs[0].line_id == 1
    assert recs[1].content == "plain" and recs[1].fields["stream"] == "stderr" and recs[1].line_id == 3


def test_get_format_names_and_templates() -> None:
    assert get_format("hdfs").name == "HDFS"
    assert get_format("Json").name == "json"
    assert get_format("rfc3164").name == "syslog"
    custom = get_format("<Date> <Time> <Level> <Component>: <Content>")
    assert custom.parse("2024-05-01 12:00:00 INFO api: hello world") == {
        "Date": "2024-05-01", "Time": "12:00:00", "Level": "INFO", "Component": "api", "Content": "hello world"}
    assert custom.parse("nothing like it") is None


def test_unknown_preset_is_config_error() -> None:
    with pytest.raises(ConfigError, match="HDFS") as err:
        get_format("NoSuchPreset")
    assert str(err.value).count(".") >= 1 and "\n" not in str(err.value)
    with pytest.raises(ConfigError):
        get_format("<Date> <Time>")  # no <Content>
    with pytest.raises(ConfigError):
        get_format("")


def test_unmatched_line_kept_whole_with_explicit_format(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("081109 203615 148 INFO dfs.DataNode: ok\nnot an hdfs line\n")
    recs = list(read_records(str(path), "HDFS"))
    assert [(r.log_format, r.content) for r in recs] == [("HDFS", "ok"), ("raw", "not an hdfs line")]


@pytest.mark.parametrize(("raw", "level"), [
    ("W", "WARN"), ("E", "ERROR"), ("I", "INFO"), ("D", "DEBUG"), ("V", "TRACE"), ("F", "FATAL"),
    ("warning", "WARN"), ("err", "ERROR"), ("crit", "FATAL"), ("CRITICAL", "FATAL"), ("SEVERE", "ERROR"),
    ("notice", "INFO"), ("core:error", "ERROR"), ("[warn]", "WARN"), ("combo", None), (None, None),
    (17, "ERROR"), ("3", "ERROR"),
])
def test_level_normalisation(raw: object, level: str | None) -> None:
    assert normalize_level(raw) == level


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.000Z"),
    ("2024-05-01T12:00:00.123456789-01:30", "2024-05-01T13:30:00.123Z"),
    ("1714564800123", "2024-05-01T12:00:00.123Z"),
    ("Sun Dec 04 04:47:44 2005", "2005-12-04T04:47:44.000Z"),
    ("10/Oct/2000:13:55:36 -0700", "2000-10-10T20:55:36.000Z"),
    ("081109 203615", "2008-11-09T20:36:15.000Z"),
    ("not a time", None),
])
def test_timestamps(text: str, expected: str | None) -> None:
    assert iso(parse_timestamp(text)) == expected


def test_fast_path_does_not_swallow_stricter_formats() -> None:
    detector = Detector()
    lines = [
        ("2024-05-01T12:00:00Z INFO [api] one", "iso"),
        ("2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.X: Created", "Hadoop"),
        ("2024-05-01 12:00:00,123 - app.db - ERROR - x", "python-asctime"),
        ("2024-05-01T12:00:00.123Z  INFO 4242 --- [           main] com.example.App          : Started", "spring"),
        ("2024-05-01T12:00:00Z INFO [api] two", "iso"),
        ("2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:2181:FastLeaderElection@774] - Note", "Zookeeper"),
    ]
    assert [detector.parse_line(line).log_format for line, _ in lines] == [fmt for _, fmt in lines]


def test_detection_on_shuffled_mix_of_loghub_files() -> None:
    import random

    names = [n for n in sorted(PRESETS) if _loghub_paths(n)[0].exists()]
    if not names:
        pytest.skip("no Loghub files")
    items = []
    for name in names:
        fmt = get_format(name)
        for line in _loghub_paths(name)[0].read_text(encoding="utf-8").splitlines()[:300]:
            parsed = fmt.parse_line(line)
            items.append((line, parsed.content if parsed else line.strip()))
    random.Random(7).shuffle(items)
    detector = Detector()
    agree = sum(detector.parse_line(line).content == content for line, content in items)
    assert agree / len(items) >= 0.99
