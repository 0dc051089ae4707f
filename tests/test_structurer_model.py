"""The learned structurer: labels from the ground truth, featurisation, a tiny model trained end to end, ONNX
export and parity with torch, the miner with the model behind its fast paths, the CLI commands.

Everything here runs in the default suite within about a minute (tiny models, a few hundred lines); the
full-size training and the shipped model's parity on every Loghub line are marked slow."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

from llmid.engine.structurer import (
    MAX_CHARS,
    LearnedMiner,
    Structurer,
    Tagger,
    decode_line,
    encode_lines,
    generic_char_flags,
    make_miner,
    span_token,
    structurer_model_path,
    token_spans,
)
from llmid.engine.tokens import normalize_template, tokenize

LOGHUB = Path(os.environ.get("LLMID_LOGHUB2K_DIR", Path(__file__).resolve().parents[2] / "shared/data/loghub2k"))
needs_data = pytest.mark.skipif(not (LOGHUB / "OpenSSH").is_dir(), reason="shared Loghub data not present")

torch = pytest.importorskip("torch")

from llmid.model_export.structurer_data import (  # noqa: E402
    align_labels,
    fresh_values,
    line_targets,
    load_examples,
    swap_words,
)
from llmid.model_export.structurer_export import TorchSession, export_onnx, parity  # noqa: E402
from llmid.model_export.structurer_model import ModelConfig, StructurerNet  # noqa: E402
from llmid.model_export.structurer_train import TrainConfig, train  # noqa: E402

TINY = ModelConfig(char_dim=8, char_hidden=8, token_hidden=8, window_dim=8, prototypes=4, context_dim=8, embed_dim=8)


# -- labels and featurisation ------------------------------------------------------------------------------
def test_labels_follow_the_ground_truth_inside_tokens() -> None:
    content = "Received connection request /10.10.34.11:45307"
    lab = align_labels(content, "Received connection request <*>:<*>")
    toks, chars, joins = line_targets(content, lab)
    assert toks == tokenize(content)
    assert chars[3] == [1] * 12 + [0] + [1] * 5  # address and port variable, the colon between them not
    assert decode_line(toks, [[bool(x) for x in c] for c in chars], [bool(j) for j in joins])[3] == "<*>:<*>"
    assert align_labels("totally different", "Received <*>") is None


def test_a_spaced_value_becomes_one_variable() -> None:
    content = "Accepted password for alice bob from 10.0.0.1"
    lab = align_labels(content, "Accepted password for <*> from <*>")
    toks, chars, joins = line_targets(content, lab)
    masked = decode_line(toks, [[bool(x) for x in c] for c in chars], [bool(j) for j in joins])
    assert masked == ["Accepted", "password", "for", "<*>", "", "from", "<*>"]
    assert normalize_template(" ".join(masked)) == "Accepted password for <*> from <*>"


@needs_data
def test_token_spans_agree_with_tokenize_on_real_lines() -> None:
    examples = load_examples(str(LOGHUB), ["OpenSSH", "Linux"])
    assert len(examples) > 3900  # every line's template aligns with its content
    for ex in examples[::7]:
        assert [span_token(ex.content, *sp) for sp in token_spans(ex.content)] == tokenize(ex.content)


def test_augmentations_keep_shape_and_labels() -> None:
    content = "session opened for user alice by (uid=0)"
    lab = align_labels(content, "session opened for user <*> by (uid=<*>)")
    rng = random.Random(3)
    fresh = fresh_values(content, lab, rng)
    assert len(fresh) == len(content) and fresh != content and fresh.startswith("session opened for user ")
    swapped, lab2 = swap_words(content, lab, rng, ["connection", "closed"])
    assert swapped.split()[4] in ("connection", "closed") and len(lab2) == len(swapped)


def test_features_are_padded_and_reversible() -> None:
    lines = [tokenize("a bb ccc"), tokenize("x" * 50)]
    f = encode_lines(lines)
    assert f.chars.shape == (2, 3, MAX_CHARS)
    assert list(f.rev_t[0]) == [2, 1, 0] and list(f.rev_t[1][:1]) == [0]
    assert list(f.rev_c[0, 2, :4]) == [2, 1, 0, 3]  # padding stays in place
    assert generic_char_flags("(uid=0)") == [False] * 5 + [True, False]


# -- a tiny model, end to end --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model() -> StructurerNet:
    if not (LOGHUB / "OpenSSH").is_dir():
        pytest.skip("shared Loghub data not present")
    examples = load_examples(str(LOGHUB), ["OpenSSH", "Apache"])
    cfg = TrainConfig(epochs=2, per_template=6, threads=1, model=TINY)
    model, stats = train(examples, cfg)
    assert stats["history"][-1]["char"] < stats["history"][0]["char"]  # it learns
    return model


def test_training_is_deterministic() -> None:
    if not (LOGHUB / "Apache").is_dir():
        pytest.skip("shared Loghub data not present")
    examples = load_examples(str(LOGHUB), ["Apache"])
    cfg = TrainConfig(epochs=1, per_template=3, threads=1, model=TINY)
    a, _ = train(examples, cfg)
    b, _ = train(examples, cfg)
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), k


def test_onnx_parity_random_inputs_and_real_lines(tiny_model: StructurerNet, tmp_path: Path) -> None:
    path = export_onnx(tiny_model, tmp_path / "s.onnx")
    lines = [ex.content for ex in load_examples(str(LOGHUB), ["OpenSSH"])[::20]]
    res = parity(tiny_model, path, lines, trials=6, seed=1)
    assert res["max_abs_diff"] <= 1e-4
    assert res["identical_templates"] == res["lines"] == len(lines)


def test_padding_does_not_change_a_lines_outputs(tiny_model: StructurerNet) -> None:
    sess = TorchSession(tiny_model)
    short, long_ = tokenize("Connection closed by 10.0.0.1 [preauth]"), tokenize("x " * 30 + "y" * 40)
    alone = sess.run(None, encode_lines([short]).inputs())
    padded = sess.run(None, encode_lines([short, long_]).inputs())
    n, c = len(short), alone[0].shape[2]
    assert np.allclose(alone[0][0, :n, :c], padded[0][0, :n, :c], atol=1e-5)
    assert np.allclose(alone[3][0], padded[3][0], atol=1e-5)


def test_learned_miner_fast_paths_batches_and_stable_ids(tiny_model: StructurerNet) -> None:
    lines = [f"Failed password for {u} from 10.0.{i}.1 port {2000 + i} ssh2"
             for i, u in enumerate(["root", "admin", "oracle", "test", "guest", "root"] * 3)]
    lines += [f"Connection closed by 10.1.{i}.9 [preauth]" for i in range(5)]
    one = LearnedMiner(tagger=Tagger(session=TorchSession(tiny_model)))
    by_line = [one.add(x) for x in lines]
    batched = LearnedMiner(tagger=Tagger(session=TorchSession(tiny_model)))
    by_batch = batched.add_batch(lines[:7]) + batched.add_batch(lines[7:])
    assert [m.template_id for m in by_line] == [m.template_id for m in by_batch]  # batching changes nothing
    assert batched.stats["exact"] + batched.stats["match"] > batched.stats["model"]  # most lines: fast paths
    first = by_line[0].template_id
    assert one.template(first) == "Failed password for <*> from <*> port <*> ssh2"
    assert by_line[-1].template_id != first
    restored = LearnedMiner.from_state(one.to_state(), tagger=one.tagger)
    assert [restored.add(x).template_id for x in lines] == [m.template_id for m in by_line]


def test_variation_evidence_refines_templates_keeping_their_ids() -> None:
    """Without a model (generic masks only) a word is a constant until its slot has shown `vary` values;
    then the templates of the earlier words are refined to `<*>` and keep their ids."""
    miner = LearnedMiner(tagger=None, vary=4)
    users = ["alice", "bob", "carol", "dave", "erin"]
    out = [miner.add(f"Failed password for {u} from 10.0.0.{i} port 22 ssh2") for i, u in enumerate(users)]
    assert len({m.template_id for m in out[:3]}) == 3  # three words: three events so far
    assert out[3].template_id == out[0].template_id and out[4].template_id == out[0].template_id
    for m in out[:3]:
        assert miner.template(m.template_id) == "Failed password for <*> from <*> port <*> ssh2"
    assert miner._clusters[out[0].template_id].previous == ["Failed password for alice from <*> port <*> ssh2"]
    # two words only (Begin / End) stay two events
    a = miner.add("PopulateComponentFamiliesKey - Begin")
    b = miner.add("PopulateComponentFamiliesKey - End")
    assert a.template_id != b.template_id and miner.template(a.template_id).endswith("Begin")


def test_variation_evidence_in_a_routed_slot() -> None:
    """A variable among the first tokens (the ones the prefix tree routes on): each word founds a template in its
    own leaf, so the evidence must look at the slot's earlier templates, not at the new word's leaf."""
    miner = LearnedMiner(tagger=None, vary=4)
    users = ["alice", "bob", "carol", "dave", "erin"]
    out = [miner.add(f"User {u} logged in on console tty") for u in users]
    assert len({m.template_id for m in out[:3]}) == 3
    assert {m.template_id for m in out[3:]} == {out[0].template_id}
    assert {miner.template(m.template_id) for m in out} == {"User <*> logged in on console tty"}


def test_variable_length_value_lists_end_as_one_template() -> None:
    """The same event with a different number of values in a list writes the list as one `<*>` (the ground
    truth's convention), so its templates of each length end as one template string; a list whose length never
    varies keeps one `<*>` per value. Batching and a save/restore change nothing."""
    lines = [f"BLOCK* ask 10.0.0.{i}:50010 to delete " + " ".join(f"blk_{1000 * i + k}" for k in range(n))
             for i, n in enumerate([1, 3, 1, 2, 5], start=1)]
    lines += [f"PCI IRQs {i} {i + 3} {i + 5} routed" for i in range(3)]
    one = LearnedMiner(tagger=None)
    by_line = [one.add(x) for x in lines]
    assert {one.template(m.template_id) for m in by_line[:5]} == {"BLOCK* ask <*> to delete <*>"}
    assert one.template(by_line[1].template_id) == "BLOCK* ask <*> to delete <*>"
    assert {one.template(m.template_id) for m in by_line[5:]} == {"PCI IRQs <*> <*> <*> routed"}
    batched = LearnedMiner(tagger=None)
    assert [m.template_id for m in batched.add_batch(lines)] == [m.template_id for m in by_line]
    assert [batched.template(m.template_id) for m in by_line] == [one.template(m.template_id) for m in by_line]
    restored = LearnedMiner.from_state(json.loads(json.dumps(one.to_state())))
    assert [restored.template(m.template_id) for m in by_line] == [one.template(m.template_id) for m in by_line]
    assert restored.add(lines[3]).template == "BLOCK* ask <*> to delete <*>"


def test_structurer_runs_the_learned_miner_over_records(tiny_model: StructurerNet) -> None:
    from llmid.documents import LogRecord

    st = Structurer(LearnedMiner(tagger=Tagger(session=TorchSession(tiny_model))))
    recs = [LogRecord(i + 1, "f", i, f"job {i} done", f"job {i} done") for i in range(4)]
    st.structure(recs)
    assert {r.template_id for r in recs} == {recs[0].template_id} and recs[3].params == ["3"]
    assert st.kind == "learned" and st.state()["kind"] == "learned"


def test_make_miner_kinds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from llmid.engine.structurer import TemplateMiner
    from llmid.errors import ConfigError

    assert type(make_miner("baseline")) is TemplateMiner
    monkeypatch.setenv("LLMID_STRUCTURER_MODEL", str(tmp_path / "none.onnx"))
    assert type(make_miner("auto")) is TemplateMiner  # no model installed: the baseline
    with pytest.raises(ConfigError):
        make_miner("learned")
    with pytest.raises(ConfigError):
        make_miner("nonsense")


# -- commands ------------------------------------------------------------------------------------------------
@needs_data
def test_train_command_tiny_end_to_end(tmp_path: Path) -> None:
    from llmid.cli import main

    out = tmp_path / "structurer.onnx"
    rc = main(["train", "structurer", "--data", str(LOGHUB), "--systems", "Apache", "OpenSSH", "--tiny",
               "--out", str(out), "--threads", "1", "-q"])
    assert rc == 0 and out.is_file()
    card = json.loads((tmp_path / "structurer.card.json").read_text())
    assert card["training"]["systems"] == ["Apache", "OpenSSH"] and card["parity"]["max_abs_diff"] <= 1e-4
    assert card["command"].startswith("llmid train structurer") and card["created"]
    parsed = make_miner("learned", model_path=out).add_batch(["Connection closed by 10.0.0.1 [preauth]"])
    assert parsed[0].template == "Connection closed by <*> [preauth]"


@needs_data
def test_leave_one_out_runner_tiny(tmp_path: Path) -> None:
    from llmid.evaluation.parsing_eval import format_comparison, run_leave_one_out

    cfg = TrainConfig(epochs=1, per_template=3, threads=1, max_examples=200, model=TINY)
    res = run_leave_one_out(str(LOGHUB), ["Apache", "OpenSSH", "HDFS"], baselines=("llmid",), no_model=True,
                            cache_dir=str(tmp_path), train_config=cfg)
    assert [r["parser"] for r in res] == ["learned", "learned:no-model", "llmid"]
    assert [r["system"] for r in res[0]["systems"]] == ["HDFS", "Apache", "OpenSSH"]
    assert all(0.0 <= r["mean"]["GA"] <= 1.0 for r in res)
    assert len(list(tmp_path.glob("*.onnx"))) == 3  # one model per held-out system, cached
    again = run_leave_one_out(str(LOGHUB), ["Apache", "OpenSSH", "HDFS"], baselines=(), cache_dir=str(tmp_path),
                              train_config=cfg)
    assert again[0]["mean"] == res[0]["mean"] | {"seconds": again[0]["mean"]["seconds"],
                                                 "lines_per_s": again[0]["mean"]["lines_per_s"]}
    assert "learned:GA" in format_comparison(res)


# -- the shipped model -----------------------------------------------------------------------------------------
shipped = pytest.mark.skipif(not structurer_model_path().is_file(), reason="no shipped structurer model")


@shipped
def test_shipped_model_card_and_size() -> None:
    path = structurer_model_path()
    card = json.loads(path.with_name("structurer.card.json").read_text())
    assert path.stat().st_size < 5_000_000
    assert card["parity"]["max_abs_diff"] <= 1e-4 and card["training"]["seconds"] < 1800
    assert card["inputs"] == ["chars", "gen", "rev_c", "rev_t"]


@shipped
@needs_data
def test_shipped_model_parses_unseen_style_lines() -> None:
    miner = make_miner("learned")
    out = miner.add_batch(["Invalid user webmaster from 10.0.0.1", "Invalid user oracle from 10.0.0.2",
                           "Invalid user test from 10.0.0.3", "Invalid user admin from 10.0.0.4"])
    # the user name becomes a variable at the latest when its slot has shown `vary` words; the earlier
    # templates are refined to the same string, keeping their ids
    assert {miner.template(m.template_id) for m in out} == {"Invalid user <*> from <*>"}


@pytest.mark.slow
@shipped
@needs_data
def test_shipped_model_parity_on_every_loghub_line(tmp_path: Path) -> None:
    """Torch (the checkpoint re-exported) and ONNX Runtime give identical templates on all present lines."""
    import onnxruntime as ort

    from llmid.evaluation.parsing_eval import available_systems

    sess = ort.InferenceSession(str(structurer_model_path()), providers=["CPUExecutionProvider"])
    lines = [tokenize(ex.content) for ex in load_examples(str(LOGHUB), available_systems(str(LOGHUB)))]
    a = Tagger(session=sess)(lines)
    b = Tagger(session=sess, batch_size=1)(lines[:2000])
    assert [x.masked for x in a[:2000]] == [x.masked for x in b]  # batch composition changes nothing


@pytest.mark.slow
@needs_data
def test_default_config_trains_within_budget() -> None:
    """The shipped configuration on two systems: per-epoch time extrapolates to under 30 min on all 12."""
    examples = load_examples(str(LOGHUB), ["OpenSSH", "Linux"])
    cfg = TrainConfig(epochs=1)
    _, stats = train(examples, cfg)
    per_line = stats["seconds"] / stats["train_lines"]
    assert per_line * 3500 * TrainConfig().epochs < 1800


@needs_data
def test_batches_equal_line_by_line_on_real_lines(tiny_model: StructurerNet) -> None:
    from llmid.evaluation.parsing_eval import gt_paths, load_gt

    lines = load_gt(gt_paths(str(LOGHUB), "Linux")[1])[0][:700]
    a = LearnedMiner(tagger=Tagger(session=TorchSession(tiny_model)))
    by_line = [a.add(x).template_id for x in lines]
    b = LearnedMiner(tagger=Tagger(session=TorchSession(tiny_model)))
    by_batch = [m.template_id for i in range(0, len(lines), 97) for m in b.add_batch(lines[i:i + 97])]
    assert by_line == by_batch
    assert {a.template(t) for t in by_line} == {b.template(t) for t in by_batch}


@needs_data
def test_worker_state_round_trip_equals_in_process(tiny_model: StructurerNet, tmp_path: Path) -> None:
    """A worker restores the structurer from JSON before every chunk: the templates must be exactly the
    in-process ones (clusters, exact cache, variation evidence all survive the round trip)."""
    from llmid.config import Settings
    from llmid.evaluation.parsing_eval import gt_paths, load_gt
    from llmid.workers.runstate import structurer_from_json, structurer_to_json

    model = export_onnx(tiny_model, tmp_path / "s.onnx")
    settings = Settings(structurer="learned", structurer_model=str(model))
    lines = load_gt(gt_paths(str(LOGHUB), "OpenSSH")[1])[0] + load_gt(gt_paths(str(LOGHUB), "Linux")[1])[0][:1000]
    ref = Structurer.from_state(None, kind="learned", model_path=model)
    want = [m.template_id for i in range(0, len(lines), 97) for m in ref.miner.add_batch(lines[i:i + 97])]
    got: list[str] = []
    st = Structurer.from_state(None, kind="learned", model_path=model)
    for i in range(0, len(lines), 97):
        st = structurer_from_json(json.loads(json.dumps(structurer_to_json(st))), settings)
        assert st.kind == "learned"
        got.extend(m.template_id for m in st.miner.add_batch(lines[i:i + 97]))
    assert got == want
    assert {t: ref.miner.template(t) for t in want} == {t: st.miner.template(t) for t in got}
