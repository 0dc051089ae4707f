"""The command-line contract end to end, and every bad-input case of the foundation issue.

Each case runs the real `llmid` entry point in a subprocess, so what is checked is what a user sees: one
sentence on stderr, the exit code, and a store that still holds everything committed before the failure.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HDFS = SHARED / "loghub2k" / "HDFS" / "HDFS_2k.log"
BGL = SHARED / "rca" / "bgl_2k" / "BGL_2k.log"
needs_data = pytest.mark.skipif(not HDFS.is_file(), reason="shared Loghub data not present")


def llmid(*args: str, stdin: bytes | None = None, timeout: float = 300, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmid", *args], input=None if stdin is None else stdin.decode("latin-1"),
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )


def store_url(tmp_path: Path, name: str = "s.db") -> str:
    return f"sqlite:///{tmp_path / name}"


def assert_clean_error(p: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert p.returncode != 0, p.stdout
    assert "Traceback" not in p.stderr
    lines = [x for x in p.stderr.strip().splitlines() if x]
    assert len(lines) == 1, p.stderr
    assert fragment.lower() in lines[0].lower(), lines[0]


def app_log(path: Path, n: int) -> Path:
    """A generated service log: steady INFO traffic (no Loghub data in the package)."""
    with path.open("w") as f:
        for i in range(n):
            stamp = f"2026-05-01T12:{(i // 60) % 60:02d}:{i % 60:02d}.000Z"
            f.write(f"{stamp} INFO [api] request {i} served in {i % 97} ms\n")
    return path


# -- contract -----------------------------------------------------------------------------------------------
def test_version_and_help() -> None:
    assert llmid("--version").stdout.startswith("llmid ")
    for cmd in ("parse", "analyze", "ingest", "search", "templates", "incidents", "stats", "eval", "formats"):
        p = llmid(cmd, "--help")
        assert p.returncode == 0 and "usage:" in p.stdout, cmd
    assert llmid("config", "show", "--help").returncode == 0


@needs_data
def test_parse_hdfs_preset() -> None:
    p = llmid("parse", str(HDFS), "--log-format", "HDFS")
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert len(rows) == 2000
    assert {"LineId", "Content", "EventId", "EventTemplate"} <= set(rows[0])
    assert [int(r["LineId"]) for r in rows] == list(range(1, 2001))
    assert len({r["EventTemplate"] for r in rows}) < 40


def test_parse_stdin(tmp_path: Path) -> None:
    data = app_log(tmp_path / "a.log", 50).read_bytes()
    p = llmid("parse", "-", stdin=data)
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(io.StringIO(p.stdout)))
    assert len(rows) == 50
    assert rows[0]["EventTemplate"] == "request <*> served in <*> ms"


@needs_data
def test_analyze_json_contract_and_idempotency(tmp_path: Path) -> None:
    url = store_url(tmp_path)
    p = llmid("analyze", str(BGL), "--json", "--store", url)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["records"] == 2000 and d["templates"] > 10
    for inc in d["incidents"]:
        assert inc["ranking"] and inc["chain"][0]["template_id"] == inc["ranking"][0]["template_id"]
        for ev in inc["ranking"]:
            assert all(1 <= i <= 2000 for i in ev["lines"])
        for rec in inc["recommendations"]:
            assert {"action", "target", "confidence"} <= set(rec)
    first = json.loads(llmid("stats", "--json", "--store", url).stdout)
    assert first["records"] == 2000
    assert llmid("analyze", str(BGL), "--store", url, "-q").returncode == 0
    assert json.loads(llmid("stats", "--json", "--store", url).stdout) == first


def test_queries_after_analyze(tmp_path: Path) -> None:
    url = store_url(tmp_path)
    log = app_log(tmp_path / "a.log", 300)
    assert llmid("analyze", str(log), "--store", url, "-q").returncode == 0
    hits = json.loads(llmid("search", "served", "--json", "--store", url, "--limit", "5").stdout)
    assert hits["total"] == 300 and len(hits["hits"]) == 5
    tpl = json.loads(llmid("templates", "--json", "--store", url).stdout)["templates"]
    assert tpl[0]["count"] == 300
    by_tpl = json.loads(llmid("search", "--template", tpl[0]["template_id"], "--json", "--store", url).stdout)
    assert by_tpl["total"] == 300
    assert llmid("search", "--level", "ERROR", "--json", "--store", url).stdout.count('"total": 0') == 1
    assert llmid("incidents", "--store", url).returncode == 0
    shown = llmid("config", "show", "--json", "--store", url)
    assert json.loads(shown.stdout)["store"] == url


# -- bad input: one sentence, non-zero exit, nothing committed lost ----------------------------------------------
def test_missing_path(tmp_path: Path) -> None:
    assert_clean_error(llmid("analyze", str(tmp_path / "nope.log"), "--store", store_url(tmp_path)), "no such file")
    assert not (tmp_path / "s.db").exists()


def test_directory(tmp_path: Path) -> None:
    assert_clean_error(llmid("analyze", str(tmp_path), "--store", store_url(tmp_path)), "directory")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.log").write_bytes(b"")
    assert_clean_error(llmid("analyze", str(tmp_path / "empty.log"), "--store", store_url(tmp_path)), "no log lines")


def test_binary_data(tmp_path: Path) -> None:
    (tmp_path / "bin.dat").write_bytes(Path(sys.executable).read_bytes()[:100_000])
    assert_clean_error(llmid("analyze", str(tmp_path / "bin.dat"), "--store", store_url(tmp_path)), "binary")


def test_invalid_utf8_is_kept_with_a_warning(tmp_path: Path) -> None:
    f = tmp_path / "latin.log"
    f.write_bytes(b"2026-05-01T12:00:00Z INFO [api] caf\xe9 opened\n2026-05-01T12:00:01Z INFO [api] ok\n")
    url = store_url(tmp_path)
    p = llmid("analyze", str(f), "--store", url, "--json")
    assert p.returncode == 0 and "Traceback" not in p.stderr
    assert "utf-8" in p.stderr.lower()
    assert json.loads(p.stdout)["records"] == 2


def test_ten_megabyte_line(tmp_path: Path) -> None:
    f = tmp_path / "huge.log"
    f.write_bytes(b"2026-05-01T12:00:00Z INFO [api] " + b"x" * 10_000_000 + b"\nsecond line\n")
    p = llmid("analyze", str(f), "--store", store_url(tmp_path), "--json")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and "truncat" in p.stderr.lower()
    assert json.loads(p.stdout)["records"] == 2


def test_truncated_gz_keeps_committed_batches(tmp_path: Path) -> None:
    raw = app_log(tmp_path / "a.log", 20_000).read_bytes()
    gz = gzip.compress(raw)
    (tmp_path / "cut.log.gz").write_bytes(gz[: len(gz) * 3 // 4])
    url = store_url(tmp_path)
    p = llmid("analyze", str(tmp_path / "cut.log.gz"), "--store", url)
    assert_clean_error(p, "truncated")
    with sqlite3.connect(tmp_path / "s.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    (tmp_path / "ok.log.gz").write_bytes(gz)
    p = llmid("analyze", str(tmp_path / "ok.log.gz"), "--store", url, "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["records"] == 20_000


def test_malformed_json_lines_are_kept(tmp_path: Path) -> None:
    f = tmp_path / "j.log"
    f.write_text('{"@timestamp": "2026-05-01T12:00:00Z", "message": "fine", "log.level": "info"}\n'
                 '{"message": "broken\n'
                 '{"@timestamp": "2026-05-01T12:00:01Z", "message": "fine again", "log.level": "info"}\n')
    p = llmid("analyze", str(f), "--store", store_url(tmp_path), "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["records"] == 3


def test_unknown_preset(tmp_path: Path) -> None:
    log = app_log(tmp_path / "a.log", 5)
    assert_clean_error(llmid("parse", str(log), "--log-format", "NoSuchSystem"), "preset")


def test_unwritable_and_corrupt_store(tmp_path: Path) -> None:
    log = app_log(tmp_path / "a.log", 5)
    assert_clean_error(llmid("analyze", str(log), "--store", "sqlite:////nonexistent/dir/x.db"), "store")
    (tmp_path / "bad.db").write_bytes(b"this is not a database" * 100)
    assert_clean_error(llmid("analyze", str(log), "--store", store_url(tmp_path, "bad.db")), "store")
    assert_clean_error(llmid("stats", "--store", "redis://nope"), "store")


def test_ctrl_c_keeps_committed_batches(tmp_path: Path) -> None:
    log = app_log(tmp_path / "big.log", 400_000)
    db = tmp_path / "s.db"
    proc = subprocess.Popen([sys.executable, "-m", "llmid", "analyze", str(log), "--store", f"sqlite:///{db}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until some batches are committed
        time.sleep(0.3)
        try:
            with sqlite3.connect(db) as c:
                if c.execute("SELECT count(*) FROM logs").fetchone()[0] > 0:
                    break
        except sqlite3.Error:
            pass
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "interrupted" in err.lower()
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        kept = c.execute("SELECT count(*) FROM logs").fetchone()[0]
    assert 0 < kept < 400_000
    assert llmid("stats", "--json", "--store", f"sqlite:///{db}").returncode == 0


@needs_data
def test_analyze_every_shared_log(tmp_path: Path) -> None:
    """Done-when: `analyze --json` prints the contract's JSON for every log file under ../shared/data."""
    logs = sorted(SHARED.rglob("*.log"))
    assert len(logs) >= 20
    for i, log in enumerate(logs):
        p = llmid("analyze", str(log), "--json", "-q", "--store", store_url(tmp_path, f"{i}.db"))
        assert p.returncode == 0, (log, p.stderr)
        d = json.loads(p.stdout)
        n_lines = sum(1 for _ in log.open("rb"))
        assert 0 < d["records"] <= n_lines, log
        for inc in d["incidents"]:
            assert inc["ranking"], log
            assert all(1 <= x <= n_lines for ev in inc["ranking"] for x in ev["lines"]), log


def test_memory_stays_flat_when_streaming(tmp_path: Path) -> None:
    """Peak RSS of the real command on 10x more lines stays about the same (benchmarks/stream_memory.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from stream_memory import generate, run_child

    peaks = []
    for n in (20_000, 200_000):
        log = tmp_path / f"{n}.log"
        generate(log, n)
        peaks.append(run_child(log, tmp_path / f"{n}.db")[0])
    assert peaks[1] < peaks[0] * 1.5, peaks


def test_ingest_follow_writes_while_following_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    log = tmp_path / "live.log"
    app_log(log, 10)
    db = tmp_path / "s.db"
    proc = subprocess.Popen([sys.executable, "-m", "llmid", "ingest", str(log), "--follow", "--store",
                             f"sqlite:///{db}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stored() -> int:
        try:
            with sqlite3.connect(db) as c:
                return int(c.execute("SELECT count(*) FROM logs").fetchone()[0])
        except sqlite3.Error:
            return 0

    try:
        deadline = time.time() + 30
        while stored() < 10 and time.time() < deadline:
            time.sleep(0.2)
        assert stored() == 10
        with log.open("a") as f:  # appended lines arrive without restarting
            f.write("2026-05-01T13:00:00.000Z ERROR [api] upstream db timed out after 30 s\n")
        log.rename(tmp_path / "live.log.1")  # rotation: a new file under the same name
        app_log(log, 5)
        deadline = time.time() + 30
        while stored() < 16 and time.time() < deadline:
            time.sleep(0.2)
        assert stored() == 16
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in err, err
