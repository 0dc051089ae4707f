"""Sources: files, .gz, stdin, errors the user can fix, odd bytes, giant lines, multi-line records, follow."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from llmid.errors import InputError
from llmid.ingest_pipelines import read_records

ROOT = Path(__file__).resolve().parents[1]

JAVA = """2024-05-01 12:00:00.123 ERROR [orders] Request failed
java.lang.IllegalStateException: boom
\tat com.example.Orders.place(Orders.java:42)
\tat com.example.Api.handle(Api.java:7)
Caused by: java.io.IOException: disk full
\tat com.example.Disk.write(Disk.java:9)
\t... 12 more
2024-05-01 12:00:01.000 INFO [orders] recovered
"""

PYTHON = """2024-05-01 12:00:00,123 - app.worker - ERROR - task crashed
Traceback (most recent call last):
  File "worker.py", line 10, in run
    step()
  File "worker.py", line 20, in step
    raise ValueError("bad input")
ValueError: bad input
2024-05-01 12:00:02,000 - app.worker - INFO - next task
"""


def test_multiline_java_trace(tmp_path: Path) -> None:
    path = tmp_path / "java.log"
    path.write_text(JAVA)
    recs = list(read_records(str(path)))
    assert len(recs) == 2
    first, second = recs
    assert first.line_id == 1 and first.offset == 0 and first.level == "ERROR" and first.service == "orders"
    assert first.message == JAVA.split("\n2024-05-01 12:00:01")[0]
    assert first.content.startswith("Request failed\njava.lang.IllegalStateException: boom\n\tat com.example")
    assert first.content.endswith("\t... 12 more")
    assert second.line_id == 8 and second.content == "recovered"
    assert second.offset == JAVA.index("2024-05-01 12:00:01")


def test_multiline_python_trace(tmp_path: Path) -> None:
    path = tmp_path / "py.log"
    path.write_text(PYTHON)
    recs = list(read_records(str(path)))
    assert [r.line_id for r in recs] == [1, 8]
    assert recs[0].content.splitlines()[-1] == "ValueError: bad input"
    assert recs[0].content.count("\n") == 6
    assert recs[1].content == "next task"


def test_multiline_off_gives_one_record_per_line(tmp_path: Path) -> None:
    path = tmp_path / "java.log"
    path.write_text(JAVA)
    recs = list(read_records(str(path), multiline=False))
    assert len(recs) == 8
    assert recs[2].log_format == "raw" and recs[2].content == "at com.example.Orders.place(Orders.java:42)"


def test_crlf_offsets_and_line_ids(tmp_path: Path) -> None:
    path = tmp_path / "crlf.log"
    data = b"2024-05-01T12:00:00Z INFO a: one\r\n\r\n2024-05-01T12:00:01Z WARN b: two\r\nlast line no newline"
    path.write_bytes(data)
    recs = list(read_records(str(path)))
    assert [(r.line_id, r.offset, r.message) for r in recs] == [
        (1, 0, "2024-05-01T12:00:00Z INFO a: one"),
        (3, data.index(b"2024-05-01T12:00:01Z"), "2024-05-01T12:00:01Z WARN b: two"),
        (4, data.index(b"last"), "last line no newline"),
    ]
    assert recs[1].level == "WARN" and recs[1].service == "b"


def test_gzip_and_truncated_gzip(tmp_path: Path) -> None:
    lines = [f"2024-05-01T12:00:{i % 60:02d}Z INFO [svc] event number {i} payload {i * 7919}" for i in range(5000)]
    body = ("\n".join(lines) + "\n").encode()
    gz = tmp_path / "app.log.gz"
    gz.write_bytes(gzip.compress(body))
    recs = list(read_records(str(gz)))
    assert len(recs) == 5000 and recs[-1].content == f"event number 4999 payload {4999 * 7919}"
    assert recs[10].offset == body.index(lines[10].encode())
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated or corrupt"):
        list(read_records(str(cut)))


def test_stdin_via_subprocess() -> None:
    code = ("from llmid.ingest_pipelines import read_records\n"
            "for r in read_records('-'):\n"
            "    print(r.line_id, r.source, r.log_format, r.content, sep='|')\n")
    data = b"2024-05-01T12:00:00Z ERROR [db] down\n{\"message\": \"hi\", \"level\": \"info\"}\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, env=env, timeout=60,
                         check=True)
    assert out.stdout.decode().splitlines() == ["1|-|iso|down", "2|-|json|hi"]


def test_stdin_monkeypatched(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    class FakeStdin:
        buffer = io.BufferedReader(io.BytesIO(b"Oct 11 22:14:15 h prog[1]: hello\n"))  # type: ignore[arg-type]

    monkeypatch.setattr(sys, "stdin", FakeStdin())
    recs = list(read_records("-"))
    assert len(recs) == 1 and recs[0].source == "-" and recs[0].content == "hello" and recs[0].host == "h"


def test_missing_directory_empty(tmp_path: Path) -> None:
    missing = tmp_path / "nope.log"
    with pytest.raises(InputError, match=r"^No such file: .*nope\.log\.$"):
        read_records(str(missing))
    with pytest.raises(InputError, match="directory"):
        read_records(str(tmp_path))
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    assert list(read_records(str(empty))) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read anything")
def test_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "secret.log"
    path.write_text("x\n")
    path.chmod(0)
    with pytest.raises(InputError, match="Permission denied"):
        read_records(str(path))


def test_binary_data_refused(tmp_path: Path) -> None:
    nul = tmp_path / "core.bin"
    nul.write_bytes(b"ELF\x00\x01\x02" * 100)
    with pytest.raises(InputError, match=r"looks like binary data, not a text log\.$"):
        read_records(str(nul))
    noise = tmp_path / "noise.dat"
    noise.write_bytes(bytes(range(1, 32)) * 200)
    with pytest.raises(InputError, match="binary"):
        list(read_records(str(noise)))


def test_invalid_utf8_warns_once_and_keeps_lines(tmp_path: Path) -> None:
    path = tmp_path / "latin.log"
    path.write_bytes(b"caf\xe9 one\nplain\ncaf\xe9 two\n")
    warnings: list[str] = []
    recs = list(read_records(str(path), warn=warnings.append))
    assert [r.content for r in recs] == ["caf\ufffd one", "plain", "caf\ufffd two"]
    assert len(warnings) == 1 and "UTF-8" in warnings[0]


def test_ten_megabyte_line_is_truncated_with_flat_memory(tmp_path: Path) -> None:
    path = tmp_path / "huge.log"
    with path.open("wb") as fh:
        fh.write(b"2024-05-01T12:00:00Z INFO [x] ")
        fh.write(b"A" * (10 * 1024 * 1024))
        fh.write(b"\n2024-05-01T12:00:01Z INFO [x] after\n")
    warnings: list[str] = []
    tracemalloc.start()
    try:
        recs = list(read_records(str(path), max_line_bytes=65536, warn=warnings.append))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(recs) == 2
    assert len(recs[0].message.encode()) == 65536
    assert recs[1].content == "after" and recs[1].line_id == 2
    assert recs[1].offset == path.stat().st_size - len(b"2024-05-01T12:00:01Z INFO [x] after\n")
    assert len(warnings) == 1 and "truncated" in warnings[0]
    assert peak < 50 * 1024 * 1024, peak


def test_follow_with_rotation(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text("2024-05-01T12:00:00Z INFO [a] first\n")
    stop = threading.Event()
    seen: list[str] = []

    def writer() -> None:
        time.sleep(0.3)
        with path.open("a") as fh:
            fh.write("2024-05-01T12:00:01Z INFO [a] appended\n")
        time.sleep(0.5)
        os.rename(path, tmp_path / "app.log.1")
        time.sleep(0.3)  # the file is missing for a while
        path.write_text("2024-05-01T12:00:02Z WARN [a] after rotation\n")
        time.sleep(0.6)
        with path.open("a") as fh:
            fh.write("2024-05-01T12:00:03Z ERROR [a] later\n")
        time.sleep(0.6)
        stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    started = time.monotonic()
    for rec in read_records(str(path), follow=True, stop_event=stop):
        seen.append(rec.content)
        assert time.monotonic() - started < 15
    thread.join()
    assert seen == ["first", "appended", "after rotation", "later"]


def test_follow_detects_truncation(tmp_path: Path) -> None:
    path = tmp_path / "trunc.log"
    path.write_text("line one is long enough\nline two is long enough\n")
    stop = threading.Event()

    def writer() -> None:
        time.sleep(0.4)
        with path.open("w") as fh:  # copytruncate-style rotation: same inode, smaller size
            fh.write("new\n")
        time.sleep(0.6)
        stop.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen = [r.content for r in read_records(str(path), follow=True, stop_event=stop)]
    thread.join()
    assert seen == ["line one is long enough", "line two is long enough", "new"]


def test_permission_denied_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.log"
    path.write_text("x\n")

    def deny(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("llmid.ingest_pipelines.sources.open", deny, raising=False)
    with pytest.raises(InputError, match=r"^Permission denied reading .*secret\.log\.$"):
        read_records(str(path))


def test_truncation_inside_a_multibyte_character_does_not_warn_about_utf8(tmp_path: Path) -> None:
    path = tmp_path / "wide.log"
    path.write_bytes(("é" * 100).encode() + b"\nnext\n")
    warnings: list[str] = []
    recs = list(read_records(str(path), max_line_bytes=51, warn=warnings.append))
    assert recs[0].message == "é" * 25
    assert [r.content for r in recs][1] == "next"
    assert len(warnings) == 1 and "truncated" in warnings[0]


def test_docker_split_long_line_is_rejoined(tmp_path: Path) -> None:
    path = tmp_path / "container.log"
    path.write_text(
        '{"log":"{\\"level\\":\\"warn\\",\\"msg\\":\\"part one ","stream":"stdout","time":"2024-05-01T12:00:00Z"}\n'
        '{"log":"part two\\"}\\n","stream":"stdout","time":"2024-05-01T12:00:00Z"}\n'
    )
    recs = list(read_records(str(path)))
    assert len(recs) == 1
    assert recs[0].content == "part one part two" and recs[0].level == "WARN" and recs[0].log_format == "docker"
