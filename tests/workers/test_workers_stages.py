"""The worker stages without a broker: chunking, restoring from the store, idempotency, the store's compare-and-set,
the ONNX Runtime helper, and the command line's answers to bad options (one sentence, no traceback)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from workers_support import assert_same, dump, free_port, llmid, settings

from llmid.config import Settings
from llmid.documents import Batch
from llmid.engine import runtime
from llmid.errors import ConfigError
from llmid.ingest_pipelines.sources import read_records
from llmid.runner import run_source
from llmid.store import open_store
from llmid.workers import chunks
from llmid.workers.local import run_local
from llmid.workers.stages import Context, Malformed, check, structure


def _chunked_records(path: Path, lines: int, max_line: int, piece: int) -> list[dict]:
    cutter = chunks.Chunker(lines, max_line)
    cut: list[chunks.RawChunk] = []
    with path.open("rb") as f:
        while data := f.read(piece):
            cut.extend(cutter.feed(data))
    rest = cutter.rest(final=True)
    if rest is not None:
        cut.append(rest)
    out = []
    for c in cut:
        chunks._parsers.clear()  # every chunk on a "different worker": a cold format detector
        out += [dataclasses.asdict(r) for r in chunks.parse_chunk(c.payload(), str(path), None, max_line)]
    return out


@pytest.mark.parametrize(("lines", "max_line", "piece"), [(1, 65536, 65536), (7, 65536, 997), (50, 100, 4096),
                                                          (1000, 65536, 65536)])
def test_chunks_parse_exactly_as_the_whole_file(tricky_log: Path, lines: int, max_line: int, piece: int) -> None:
    want = [dataclasses.asdict(r) for r in read_records(str(tricky_log), max_line_bytes=max_line)]
    assert _chunked_records(tricky_log, lines, max_line, piece) == want


def test_chunks_cut_only_at_record_starts() -> None:
    assert chunks.starts_record(b"2026-05-01 INFO ok", b"x")
    for line in (b"  at Foo.bar(Foo.java:1)", b"Traceback (most recent call last):", b"ValueError: x", b"   "):
        assert not chunks.starts_record(line, b"x")
    assert not chunks.starts_record(b"2026-05-01T00:00:00Z stdout F b", b"2026-05-01T00:00:00Z stdout P a")
    assert not chunks.starts_record(b'{"log":"b\\n"}', b'{"log":"a","stream":"stdout"}')


def _reference(tmp_path: Path, log: Path, cfg: Settings) -> dict:
    with open_store(f"sqlite:///{tmp_path / 'ref.db'}") as s:
        summary = run_source(str(log), cfg, s, resume=True).to_json()
    return {"summary": summary, "dump": dump(tmp_path / "ref.db")}


@pytest.mark.parametrize("mode", ["one worker", "fresh worker per message", "every message twice"])
def test_stages_give_the_in_process_results(tmp_path: Path, sim_log: Path, mode: str) -> None:
    cfg = settings(window_max_lines=700)  # many windows: the reasoner's history changes hands often
    ref = _reference(tmp_path, sim_log, cfg)
    with open_store(f"sqlite:///{tmp_path / 'w.db'}") as s:
        got = run_local(str(sim_log), cfg, s, fresh_workers=mode != "one worker",
                        duplicates=mode == "every message twice")
    assert got == ref["summary"]
    assert ref["summary"]["incidents"], "the scenario should raise incidents"
    assert_same(dump(tmp_path / "w.db"), ref["dump"])  # every document and the saved engine state


def test_stages_hand_over_the_baseline_reasoner_exactly(tmp_path: Path, sim_log: Path) -> None:
    """`--reasoner baseline` through fresh workers: its history changes hands after every window at full precision."""
    cfg = settings(reasoner="baseline", window_max_lines=700)
    ref = _reference(tmp_path, sim_log, cfg)
    with open_store(f"sqlite:///{tmp_path / 'w.db'}") as s:
        assert run_local(str(sim_log), cfg, s, fresh_workers=True) == ref["summary"]
    assert ref["summary"]["incidents"]
    assert_same(dump(tmp_path / "w.db"), ref["dump"])


def test_stages_on_tricky_input(tmp_path: Path, tricky_log: Path) -> None:
    cfg = settings(batch_size=97, window_seconds=60)
    ref = _reference(tmp_path, tricky_log, cfg)
    with open_store(f"sqlite:///{tmp_path / 'w.db'}") as s:
        assert run_local(str(tricky_log), cfg, s, fresh_workers=True) == ref["summary"]
    assert_same(dump(tmp_path / "w.db"), ref["dump"])


def test_a_run_continues_the_stores_templates(tmp_path: Path, sim_log: Path, tricky_log: Path) -> None:
    """Templates (and the reasoner's history) carry over from earlier runs as with `ingest` in-process."""
    cfg = settings()
    with open_store(f"sqlite:///{tmp_path / 'ref.db'}") as s:
        run_source(str(tricky_log), cfg, s, resume=True)
        run_source(str(sim_log), cfg, s, resume=True)
    with open_store(f"sqlite:///{tmp_path / 'w.db'}") as s:
        run_local(str(tricky_log), cfg, s)
        run_local(str(sim_log), cfg, s, fresh_workers=True)
    assert_same(dump(tmp_path / "w.db"), dump(tmp_path / "ref.db"))


def test_run_bookkeeping_is_removed(tmp_path: Path, tricky_log: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'w.db'}") as s:
        run_local(str(tricky_log), settings(), s)
    assert not [k for k in dump(tmp_path / "w.db")["state"] if k.startswith("workers.")]


def test_malformed_payloads_are_refused() -> None:
    for bad in (None, [], {"run": "r"}, {"run": "r", "store": "s", "seq": -1, "data": "", "line": 0, "offset": 0,
                                         "adjust": [], "context": []},
                {"run": "r", "store": "s", "seq": True, "data": "", "line": 0, "offset": 0, "adjust": [],
                 "context": []}):
        with pytest.raises(Malformed):
            check("structure", bad)
    with pytest.raises(Malformed):
        structure(Context(), {"v": 99})


def test_write_guarded_is_a_compare_and_set(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as s:
        assert s.write_guarded(Batch(state={"c": 1, "x": "a"}), "c", None)
        assert not s.write_guarded(Batch(state={"c": 2, "x": "b"}), "c", 0)
        assert s.load_state("x") == "a"
        assert s.write_guarded(Batch(state={"c": 2, "x": None}), "c", 1)
        assert s.load_state("c") == 2 and s.load_state("x") is None


# -- ONNX Runtime -------------------------------------------------------------------------------------------
def test_device_and_provider_choice() -> None:
    assert str(runtime.parse_device("CUDA:1")) == "cuda:1" and str(runtime.parse_device("cpu")) == "cpu"
    for bad in ("gpu", "cuda:x", "cuda:-1", ""):
        with pytest.raises(ConfigError):
            runtime.parse_device(bad)
    all_three = [runtime.TENSORRT, runtime.CUDA, runtime.CPU]
    names = [p[0] if isinstance(p, tuple) else p for p in runtime.providers_for("cuda:1", all_three)]
    assert names == all_three
    assert runtime.providers_for("cuda:1", all_three)[1] == (runtime.CUDA, {"device_id": 1})
    assert runtime.providers_for("cuda", [runtime.CUDA, runtime.CPU])[0] == (runtime.CUDA, {"device_id": 0})
    assert runtime.providers_for("cuda:0", [runtime.CPU]) == [runtime.CPU]
    assert runtime.providers_for("cpu", all_three) == [runtime.CPU]
    assert runtime.batch_size("cuda:0") > runtime.batch_size("cpu")


def _tiny_model(path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_sessions_run_on_the_best_provider_and_are_loaded_once(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    import numpy as np

    model = _tiny_model(tmp_path / "tiny.onnx")
    runtime.configure("cpu", threads=1)
    with caplog.at_level("INFO", logger="llmid.runtime"):
        a = runtime.get_session(model)
        b = runtime.get_session(model)
        runtime.make_session(model, "cuda:0")  # no GPU build here: falls back to CPU, and says so
    assert a is b
    out = a.run(None, {"x": np.array([[-1.0, 2.0, -3.0, 4.0]], dtype=np.float32)})[0]
    assert out.tolist() == [[0.0, 2.0, 0.0, 4.0]]
    said = [r.getMessage() for r in caplog.records]
    assert sum("runs on CPUExecutionProvider (cpu)" in m for m in said) == 1
    if runtime.CUDA not in __import__("onnxruntime").get_available_providers():
        assert any("runs on CPU although cuda:0 was asked for" in m for m in said)
    with pytest.raises(ConfigError, match="No ONNX model"):
        runtime.make_session(tmp_path / "missing.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="Cannot load ONNX model"):
        runtime.make_session(tmp_path / "bad.onnx")


# -- the command line without a broker ----------------------------------------------------------------------
def _one_sentence(p: object, fragment: str) -> None:
    assert p.returncode not in (0, None), p.stdout  # type: ignore[attr-defined]
    err = p.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in err
    lines = [x for x in err.strip().splitlines() if x]
    assert len(lines) == 1, err
    assert fragment.lower() in lines[0].lower(), lines[0]


def test_cli_errors_are_one_sentence(tmp_path: Path, tricky_log: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    store = f"sqlite:///{tmp_path / 's.db'}"
    p = llmid("ingest", str(tricky_log), "--broker", dead, "--store", store, "--wait", timeout=60)
    _one_sentence(p, "cannot reach the broker")
    assert p.returncode == 4
    _one_sentence(llmid("worker", "--broker", dead, timeout=60), "cannot reach the broker")
    _one_sentence(llmid("worker", "--broker", "kafka://x:1"), "unknown broker url")
    _one_sentence(llmid("worker"), "--broker")
    _one_sentence(llmid("worker", "--broker", dead, "--queues", "nope"), "unknown queue")
    _one_sentence(llmid("worker", "--broker", dead, "--device", "gpu"), "unknown device")
    _one_sentence(llmid("worker", "--broker", dead, "--pool", "solo", "--concurrency", "2"), "solo pool")
    _one_sentence(llmid("ingest", str(tmp_path / "nope.log"), "--broker", dead, "--store", store), "no such file")
    _one_sentence(llmid("ingest", str(tricky_log), "--broker", dead, "--store", "sqlite:///:memory:"), "in-memory")
    assert llmid("worker", "--help").returncode == 0 and llmid("failures", "--help").returncode == 0


def test_failures_and_stats_on_a_clean_store(tmp_path: Path, tricky_log: Path) -> None:
    store = f"sqlite:///{tmp_path / 's.db'}"
    assert llmid("analyze", str(tricky_log), "--store", store, "-q").returncode == 0
    p = llmid("failures", "--json", "--store", store)
    assert p.returncode == 0 and json.loads(p.stdout) == {"total": 0, "failures": []}
    assert "failures" not in json.loads(llmid("stats", "--json", "--store", store).stdout)
