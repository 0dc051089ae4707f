"""The simulator: deterministic, realistic enough that the root cause is not trivially the loudest line."""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from llmid.documents import ACTIONS
from llmid.sim import FAULTS, generate
from llmid.sim.cli import add_parser
from llmid.sim.emit import SEVERITY_RANK
from llmid.sim.phrases import names
from llmid.sim.topology import SERVICES, blast_radius

SMALL = {"normal_minutes": 10.0, "fault_minutes": 6.0}


def _phrasing_regex(text: str) -> re.Pattern[str]:
    """A phrasing as a regex: literal text, each placeholder any non-empty run."""
    parts = re.split(r"\{[^{}]*\}", text)
    return re.compile(".+?".join(re.escape(p) for p in parts))


def _format_of(line: str) -> str | None:
    if line.startswith("{"):
        return "json"
    if re.match(r"<\d+>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d ", line):
        return "syslog"
    if re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [A-Z]+ \[", line):
        return "iso"
    if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - \S+ - [A-Z]+ - ", line):
        return "pylog"
    return None


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a, b = generate(11), generate(11)
    assert a.text() == b.text() and a.truth == b.truth
    a.write(tmp_path / "a")
    b.write(tmp_path / "b")
    for name in ("scenario.log", "truth.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert generate(12).text() != a.text()
    assert generate(11, fault_type=a.truth["fault_type"]).text() == a.text()
    other = next(f for f in sorted(FAULTS) if f != a.truth["fault_type"])
    assert generate(11, fault_type=other).truth["root_cause_line"] != a.truth["root_cause_line"]


def test_default_size_and_lines_knob() -> None:
    sc = generate(1)
    assert 3000 <= len(sc.lines) <= 6500
    assert sc.truth["lines"] == len(sc.lines)
    big = generate(1, lines=20000)
    assert 15000 <= len(big.lines) <= 26000


def test_catalogue_has_ten_fault_types_with_known_actions() -> None:
    assert len(FAULTS) >= 10
    assert {f.action for f in FAULTS.values()} <= set(ACTIONS)
    assert len({f.action for f in FAULTS.values()}) >= 9
    for f in FAULTS.values():
        assert len(f.root_phrasings) >= 2 and f.symptoms
        assert f.service in SERVICES and all(s.service in SERVICES for s in f.symptoms)


@pytest.mark.parametrize("fault_type", sorted(FAULTS))
def test_each_fault_truth_points_at_its_root_cause(fault_type: str) -> None:
    fault = FAULTS[fault_type]
    sc = generate(5, fault_type=fault_type, **SMALL)
    t = sc.truth
    assert t["fault_type"] == fault_type and t["action"] == fault.action and t["action"] in ACTIONS
    assert t["target"] and "{" not in t["target"]
    line = sc.lines[t["root_cause_line"] - 1]
    assert any(_phrasing_regex(p).search(line) for p in fault.root_phrasings), line
    assert t["root_cause_message"] in line
    assert t["root_cause_host"] in line or _format_of(line) == "iso"
    # after the normal period, and before every symptom
    assert t["fault_start"] > t["normal_end"]
    root = next(r for r in sc.records if r.role == "root")
    assert root.line == t["root_cause_line"]
    normal_end = max(r.line for r in sc.records if r.ts <= root.ts - 60)
    assert t["root_cause_line"] > normal_end
    assert t["chain_lines"] == sorted(t["chain_lines"])
    assert 2 <= len(t["chain_lines"]) <= len(fault.symptoms)  # a later stage is sometimes missing
    assert min(t["chain_lines"]) > t["root_cause_line"]
    # symptoms are louder: more lines, at least as severe
    symptoms = [r for r in sc.records if r.role == "symptom"]
    assert len(symptoms) >= 10
    assert max(SEVERITY_RANK[r.level] for r in symptoms) >= SEVERITY_RANK[root.level]


def test_root_cause_is_often_not_the_obvious_line() -> None:
    """Across seeds, the root cause is usually not the first ERROR, the most severe or the rarest event."""
    first_error = most_severe = rarest = 0
    seeds = range(30)
    for seed in seeds:
        sc = generate(seed, **SMALL)
        root = next(r for r in sc.records if r.role == "root")
        window = [r for r in sc.records if r.ts >= root.ts]
        errors = [r for r in window if SEVERITY_RANK[r.level] >= SEVERITY_RANK["ERROR"]]
        first_error += bool(errors) and errors[0] is root
        top = max(SEVERITY_RANK[r.level] for r in window)
        most_severe += SEVERITY_RANK[root.level] == top
        counts = Counter(r.kind for r in sc.records)
        rarest += sum(1 for c in counts.values() if c == 1) == 1  # the root is the only one-off
    assert first_error <= len(seeds) * 0.3
    assert most_severe <= len(seeds) * 0.3
    assert rarest <= len(seeds) * 0.2


def test_formats_interleave_with_multiline_traces() -> None:
    sc = generate(2, fault_type="cert_expired", **SMALL)
    heads = Counter(_format_of(sc.lines[r.line - 1]) for r in sc.records)
    assert None not in heads
    assert set(heads) == {"json", "syslog", "iso", "pylog"}
    assert sc.truth["formats"] == {k: v for k, v in sorted(heads.items())}
    # formats really alternate in one stream, not in blocks
    kinds = [r.fmt for r in sc.records[:200]]
    assert sum(a != b for a, b in zip(kinds, kinds[1:], strict=False)) > 50
    multi = [r for r in sc.records if r.n_lines > 1]
    assert multi, "expected stack traces"
    assert sum(r.n_lines for r in sc.records) == len(sc.lines)
    assert any(line.startswith("Traceback (most recent call last):") for line in sc.lines)
    assert any(line.startswith("\tat ") for line in sc.lines)
    for r in sc.records:
        for cont in sc.lines[r.line: r.line - 1 + r.n_lines]:
            assert _format_of(cont) is None  # continuation lines carry no header
    for line in sc.lines:
        if line.startswith("{"):
            doc = json.loads(line)
            assert {"@timestamp", "log.level", "service.name", "host.name", "message"} <= set(doc)


def test_benign_warnings_and_errors_in_normal_period() -> None:
    sc = generate(4, **SMALL)
    root = next(r for r in sc.records if r.role == "root")
    normal = [r for r in sc.records if r.ts < root.ts]
    levels = Counter(r.level for r in normal)
    assert levels["WARN"] >= 10 and levels["ERROR"] >= 3
    assert len({r.service for r in normal}) == len(SERVICES)
    assert any(r.kind.startswith("periodic:") for r in normal)


def test_topology_propagates_to_callers() -> None:
    assert blast_radius("metadata-db")[:3] == ["auth", "scheduler", "job-controller"]
    assert "gateway" in blast_radius("cache")


def test_cli_generate_single_and_many(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="llmid")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sim", "generate", "--seed", "3", "--out", str(tmp_path / "one"),
                              "--fault", "disk_full", "--normal-minutes", "5", "--lines", "1500"])
    assert args.func(args) == 0
    truth = json.loads((tmp_path / "one" / "truth.json").read_text())
    log = (tmp_path / "one" / "scenario.log").read_text().splitlines()
    assert truth["fault_type"] == "disk_full" and truth["lines"] == len(log)
    assert "/data" in log[truth["root_cause_line"] - 1]
    args = parser.parse_args(["sim", "generate", "--seed", "7", "--out", str(tmp_path / "many"),
                              "--count", "2", "--normal-minutes", "5", "--lines", "1000"])
    assert args.func(args) == 0
    manifest = json.loads((tmp_path / "many" / "manifest.json").read_text())
    assert [m["seed"] for m in manifest] == [7, 8]
    assert (tmp_path / "many" / "scenario-0002" / "truth.json").is_file()
    (tmp_path / "file").write_text("x")
    args = parser.parse_args(["sim", "generate", "--out", str(tmp_path / "file"), "--lines", "500"])
    assert args.func(args) == 2
    assert "cannot write" in capsys.readouterr().err


def test_phrasings_only_use_known_parameters() -> None:
    from llmid.sim.phrases import GENERIC

    for f in FAULTS.values():
        fixed = set(f.params) | {"host"} | set(GENERIC)
        for text in (*f.root_phrasings, *(p for s in f.symptoms for p in s.phrasings)):
            assert set(names(text)) <= fixed, (f.name, text)
