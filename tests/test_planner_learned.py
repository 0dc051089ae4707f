"""Learned recovery planner: tiny train → ONNX export → recommend, features, pipeline wiring, evaluation.

Real components throughout: the simulator, the real pipeline (structurer, reasoner), the MiniLM ONNX encoder,
torch training and ONNX Runtime sessions.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from llmid.config import Settings
from llmid.documents import Incident, LogRecord, RankedEvent
from llmid.engine.embeddings import default_embedder
from llmid.engine.planner import KeywordPlanner, make_planner
from llmid.engine.planner_features import FEATURE_DIM, JOINT, N_JOINT, entity_of, planner_state
from llmid.engine.planner_learned import LearnedPlanner, PlannerModel
from llmid.errors import ConfigError
from llmid.evaluation.planner_data import build_arrays, build_case
from llmid.evaluation.planner_eval import (
    calibration,
    evaluate,
    model_steps,
    random_steps,
    reliability_png,
    runbook_steps,
)
from llmid.evaluation.rca_data import HELDOUT_SEED_BASE, sim_case

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train the tiny configuration end to end (6 scenarios, 3 epochs) and export it."""
    from llmid.model_export.planner_train import TrainConfig, run

    out = tmp_path_factory.mktemp("planner") / "planner.onnx"
    cfg = TrainConfig.tiny()
    cfg.scenarios = 6
    res = run(cfg, out)
    assert res["parity"] < 1e-4
    return out


@pytest.fixture(scope="module")
def heldout_case():
    return build_case(HELDOUT_SEED_BASE + 3, "test")


def test_tiny_train_exports_onnx_and_card(tiny_model: Path) -> None:
    card = json.loads(tiny_model.with_suffix(".json").read_text())
    assert card["feature_dim"] == FEATURE_DIM and len(card["joint_actions"]) == N_JOINT
    assert card["training_data"]["scenarios"] == 6 and card["metrics"]["onnx_parity_max_abs"] < 1e-4
    m = PlannerModel(tiny_model)
    x = np.zeros((2, FEATURE_DIM), np.float32)
    out = m.run(x, np.ones((2, N_JOINT), np.float32))
    assert out["policy"].shape == (2, N_JOINT) and np.allclose(out["policy"].sum(1), 1.0, atol=1e-5)
    assert (out["alpha"] > 0).all() and (out["beta"] > 0).all()
    avail = np.zeros((1, N_JOINT), np.float32)
    avail[0, [0, N_JOINT - 1]] = 1.0
    p = m.run(x[:1], avail)["policy"][0]
    assert p[[0, N_JOINT - 1]].sum() > 0.999  # unavailable actions get no probability


def test_training_is_reproducible(tmp_path: Path) -> None:
    from llmid.model_export.planner_train import TrainConfig, train

    case = build_case(1, "train")
    data = build_arrays([case, case])
    cfg = TrainConfig.tiny()
    a, b = train(cfg, data), train(cfg, data)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_learned_planner_recommends_with_beta_confidence(tiny_model: Path, heldout_case) -> None:
    inc = heldout_case.incident
    assert inc is not None
    (rec,) = LearnedPlanner(tiny_model).recommend(inc, heldout_case.records)
    assert rec.method == "learned" and rec.incident_id == inc.incident_id
    c = rec.confidence
    assert 0 < c.low <= c.mean <= c.high < 1 and abs(c.mean - c.alpha / (c.alpha + c.beta)) < 1e-9
    doc = rec.to_doc()
    assert set(doc["confidence"]) == {"mean", "alpha", "beta", "low", "high"}
    assert any(a["action"] == "escalate_to_human" for a in rec.alternatives) or rec.action == "escalate_to_human"
    assert all(set(a["confidence"]) == {"mean", "alpha", "beta", "low", "high"} for a in rec.alternatives)
    pairs = [(rec.action, rec.target)] + [(a["action"], a["target"]) for a in rec.alternatives]
    assert len(pairs) == len(set(pairs))  # the same action on the same target is never offered twice
    assert any(inc.root_cause.template in r or "ranked event" in r for r in rec.rationale)


def test_features_come_from_the_incident_not_the_simulator() -> None:
    """A hand-written incident from another system featurises and gets a recommendation (no simulator wording)."""
    recs = [LogRecord(line_id=i, source="s", offset=i, message=m, content=m, level=lv, service=svc, host="h7",
                      timestamp=1000.0 + i, template_id=t, template=tpl, params=ps)
            for i, (m, lv, svc, t, tpl, ps) in enumerate([
                ("batch etl-42 ran out of heap", "WARN", "spark", "a", "batch <*> ran out of heap", ["etl-42"]),
                ("executor lost for etl-42", "ERROR", "yarn", "b", "executor lost for <*>", ["etl-42"]),
                ("etl-42 failed after 3 attempts", "ERROR", "airflow", "c", "<*> failed after 3 attempts",
                 ["etl-42"]),
            ], start=1)]
    events = [RankedEvent(r.template_id or "", r.template or "", 1.0 - 0.1 * k, [r.line_id], r.service, r.host,
                          r.level) for k, r in enumerate(recs)]
    inc = Incident("inc-x", "s", 1000.0, 1010.0, 1, 3, 0.9, events, events)
    assert entity_of(inc, recs) == "etl-42"
    st = planner_state(inc, recs, default_embedder())
    assert st.features.shape == (FEATURE_DIM,) and st.features.dtype == np.float32
    assert st.mask[N_JOINT - 1] and st.target(N_JOINT - 1) == "-"
    j = next(j for j, (a, e, k) in enumerate(JOINT) if e == 0 and k == "entity")
    assert st.mask[j] and st.target(j) == "etl-42"
    assert entity_of(inc, None) is None


def test_make_planner_mirrors_the_reasoner_setting(tiny_model: Path) -> None:
    assert isinstance(make_planner(Settings(planner="baseline")), KeywordPlanner)
    assert isinstance(make_planner(Settings(planner="learned", planner_model=str(tiny_model))), LearnedPlanner)
    assert isinstance(make_planner(Settings(planner="auto", planner_model=str(tiny_model))), LearnedPlanner)
    with pytest.raises(ConfigError):
        make_planner(Settings(planner="oracle"))
    with pytest.raises(ConfigError):
        make_planner(Settings(planner="learned", planner_model="/nonexistent/planner.onnx"))


def test_pipeline_uses_the_learned_planner(tiny_model: Path, heldout_case) -> None:
    from llmid.engine.pipeline import Pipeline, batched

    settings = Settings(planner="learned", planner_model=str(tiny_model))
    pipe = Pipeline(settings)
    records = sim_case(HELDOUT_SEED_BASE + 3, "test").fresh_records()
    recs = []
    for chunk in batched(records, settings.batch_size):
        recs += pipe.feed(chunk).recommendations
    recs += pipe.finish().recommendations
    assert recs and all(r.method == "learned" and r.safety_verdict in ("allowed", "needs_approval", "blocked")
                        for r in recs)


def test_evaluation_metrics_and_reliability_png(tiny_model: Path, heldout_case, tmp_path: Path) -> None:
    from llmid.engine.safety import SafetyPolicy

    data = build_arrays([heldout_case, build_case(HELDOUT_SEED_BASE + 4, "test")])
    planners = {"learned": model_steps(tiny_model, data), "runbook": runbook_steps(data),
                "random": random_steps(data)}
    res = evaluate(data, planners, lambda: SafetyPolicy(confidence_floor=0.99))
    for m in res["planners"].values():
        assert m["n"] == 2 and 0 <= m["success@1"] <= m["success@3"] <= 1 and 0 <= m["ece"] <= 1
        assert m["harmful_actions_after_gate"] == 0  # with a 0.99 floor nothing but escalation passes
    png = reliability_png(res, tmp_path / "rel.png")
    blob = png.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", blob[16:24])
    idat = blob[blob.index(b"IDAT") + 4: blob.index(b"IEND") - 8]
    assert len(zlib.decompress(idat)) == h * (1 + 3 * w)


def test_calibration_error() -> None:
    ece, bins = calibration(np.array([0.9, 0.9, 0.1, 0.1]), np.array([True, True, False, False]))
    assert ece == pytest.approx(0.1) and [b["count"] for b in bins] == [2, 2]
    ece, _ = calibration(np.array([0.95] * 4), np.array([True, False, True, False]))
    assert ece == pytest.approx(0.45)


def test_eval_planner_cli(tiny_model: Path, tmp_path: Path) -> None:
    png = tmp_path / "rel.png"
    p = subprocess.run([sys.executable, "-m", "llmid", "eval", "planner", "--scenarios", "2", "--model",
                        str(tiny_model), "--cache", str(tmp_path), "--png", str(png), "-q"],
                       capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert set(res["planners"]) == {"learned", "runbook", "random"} and png.is_file()
    assert res["scenarios"] == 2


def test_replanning_after_a_failure_masks_it_and_escalates_last(tiny_model: Path, heldout_case) -> None:
    """The ranked list is what an operator tries in turn: each next candidate is planned as if the previous ones
    failed (never the same action on the same target again, however named), and after a failure escalation
    waits while a remaining candidate is still plausible."""
    from llmid.engine.planner_learned import ESCALATE

    st = heldout_case.state
    assert st is not None
    model = PlannerModel(tiny_model)
    names = [[st.target(j) for j in range(N_JOINT)]]
    x, avail = st.features[None], st.mask[None].astype(np.float32)
    free = model.rank_batch(x, avail, depth=5, targets=names, plausible=None)[0]
    pairs = [(JOINT[j][0], names[0][j]) for j, *_ in free]
    assert len(pairs) == len(set(pairs))  # the next recommendation after a failure always differs
    assert free[0][0] == model.rank_batch(x, avail, depth=1, targets=names)[0][0][0]  # the first is the policy's
    # plausible = 0: every remaining action is plausible, so escalation comes only first or after all of them
    eager = model.rank_batch(x, avail, depth=5, targets=names, plausible=0.0)[0]
    assert eager[0][0] == free[0][0]
    assert all(j != ESCALATE for j, *_ in eager[1:]) or eager[0][0] == ESCALATE
    assert len(eager) == 5 or eager[0][0] == ESCALATE
    # plausible = 1: nothing is plausible enough to delay escalation: the policy's own order
    assert model.rank_batch(x, avail, depth=5, targets=names, plausible=1.01)[0] == free


def test_validation_wording_is_held_out_of_fit_and_test() -> None:
    """Settings are chosen on "dev" wording: a share of the training wording that "fit" leaves out, never "test"."""
    from llmid.evaluation.planner_data import VALIDATION_SEED_BASE, seeds_for
    from llmid.sim.faults import split_phrasings

    for n in range(1, 12):
        items = tuple(range(n))
        train, test = set(split_phrasings(items, "train")), set(split_phrasings(items, "test"))
        fit, dev = set(split_phrasings(items, "fit")), set(split_phrasings(items, "dev"))
        assert fit | dev == train and (dev <= train)
        if n >= 4:  # long enough to hold a third of the train share out
            assert not fit & dev and not dev & test
    assert seeds_for("dev", 2) == [VALIDATION_SEED_BASE, VALIDATION_SEED_BASE + 1]
    assert seeds_for("fit", 2) == [0, 1] and seeds_for("test", 1) == [HELDOUT_SEED_BASE]


def test_ensemble_export_matches_torch(tmp_path: Path) -> None:
    from llmid.model_export.planner_train import TrainConfig, run

    cfg = TrainConfig.tiny()
    cfg.scenarios, cfg.ensemble = 3, 2
    res = run(cfg, tmp_path / "e.onnx")
    assert res["parity"] < 1e-4
    card = json.loads((tmp_path / "e.json").read_text())
    assert "ensemble of 2" in card["architecture"] and card["train"]["ensemble"] == 2
    x, avail = np.zeros((1, FEATURE_DIM), np.float32), np.ones((1, N_JOINT), np.float32)
    out = PlannerModel(tmp_path / "e.onnx").run(x, avail)
    assert np.allclose(out["policy"].sum(1), 1.0, atol=1e-5) and (out["alpha"] > 0).all()


def test_misranked_training_states_move_every_action_with_its_event() -> None:
    """The simulated reasoner misrank swaps the top two events' blocks (scores stay in rank order), and every
    per-action tensor (availability, outcome, reward, target groups) follows the event it acts on."""
    from llmid.engine.planner_features import N_EVENT, SCORE_COL, event_swap_columns
    from llmid.model_export.planner_train import _misranked

    cols = torch.from_numpy(event_swap_columns(1))
    x = torch.randn(3, FEATURE_DIM)
    fixed = torch.zeros(3, N_JOINT, dtype=torch.bool)
    on_second = JOINT.index(("free_disk", 1, "host"))
    fixed[:, on_second] = True
    rows = torch.tensor([True, False, True])
    x2, fixed2 = _misranked(rows, [x, fixed], cols)
    now_first = JOINT.index(("free_disk", 0, "host"))
    assert fixed2[0, now_first] and not fixed2[0, on_second]
    assert fixed2[1, on_second] and not fixed2[1, now_first] and torch.equal(x2[1], x[1])
    assert torch.equal(x2[0, :SCORE_COL], x[0, N_EVENT:N_EVENT + SCORE_COL])
    assert torch.equal(x2[0, N_EVENT:N_EVENT + SCORE_COL], x[0, :SCORE_COL])
    assert x2[0, SCORE_COL] == x[0, SCORE_COL] and x2[0, N_EVENT + SCORE_COL] == x[0, N_EVENT + SCORE_COL]
    assert torch.equal(x2[0, 2 * N_EVENT:], x[0, 2 * N_EVENT:])
    assert cols[-1] == N_JOINT - 1 and sorted(cols.tolist()) == list(range(N_JOINT))


def test_next_cause_replanning_moves_the_next_suspect_in_front(tiny_model: Path, heldout_case) -> None:
    """After a failed fix, step k is planned on the view where the reasoner's k-th event leads: its pick is the
    best Beta mean there, mapped back to the incident's own joint actions."""
    from llmid.engine.planner_features import event_swap_columns, swap_events

    for k in (1, 2):
        cols = event_swap_columns(k)
        assert (cols[cols] == np.arange(N_JOINT)).all()  # trading places twice is the identity
        for j, (a, e, t) in enumerate(JOINT):
            assert JOINT[cols[j]][0] == a and JOINT[cols[j]][2] == t
            assert JOINT[cols[j]][1] == ({0: k, k: 0}.get(e, e) if e is not None else None)
    st = heldout_case.state
    assert st is not None
    model = PlannerModel(tiny_model)
    x, avail = st.features[None], st.mask[None].astype(np.float32)
    ranked = model.rank_batch(x, avail, depth=2, plausible=None, after_failure="next_cause")[0]
    first, second = ranked[0][0], ranked[1][0]
    view_avail = avail.copy()
    view_avail[0, first] = 0.0
    cols = event_swap_columns(1)
    res = model.run(swap_events(x, 1), view_avail[:, cols])
    mean = res["alpha"][0] / (res["alpha"][0] + res["beta"][0])
    assert second == int(cols[int(np.argmax(np.where(view_avail[0, cols] > 0.5, mean, -1.0)))])
    real = model.run(x, view_avail)  # its confidence is stated for the incident as ranked, not for the view
    assert np.isclose(ranked[1][1], real["alpha"][0, second]) and np.isclose(ranked[1][2], real["beta"][0, second])


def test_platt_calibration_fits_and_keeps_the_concentration() -> None:
    from llmid.engine.beta import platt_apply, platt_fit

    rng = np.random.default_rng(0)
    raw = rng.uniform(0.02, 0.98, 4000)
    true = 1 / (1 + np.exp(-(0.5 * np.log(raw / (1 - raw)) + 1.0)))  # the real rate is σ(0.5 logit + 1)
    hit = rng.uniform(size=raw.size) < true
    a, b = platt_fit(raw.tolist(), hit.tolist())
    assert abs(a - 0.5) < 0.1 and abs(b - 1.0) < 0.15
    alpha, beta = np.array([[2.0, 9.0]]), np.array([[6.0, 1.0]])
    a2, b2 = platt_apply(alpha, beta, a, b)
    assert np.allclose(a2 + b2, alpha + beta) and (a2 / (a2 + b2) > alpha / (alpha + beta))[0, 0]
    assert np.allclose(platt_apply(alpha, beta, 1.0, 0.0)[0], alpha)
    assert platt_fit([0.3, 0.6], [True, True]) == (1.0, 0.0)  # nothing to fit: identity
    # an extreme shift keeps the network's parameter floor, so the 90% interval still holds the mean
    from llmid.engine.beta import PARAM_FLOOR, beta_confidence

    a3, b3 = platt_apply(np.array([9.0]), np.array([1.0]), 3.0, 6.0)
    assert b3[0] >= PARAM_FLOOR - 1e-6
    c = beta_confidence(float(a3[0]), float(b3[0]))
    assert c.low <= c.mean <= c.high


def test_trained_card_carries_its_calibration(tiny_model: Path) -> None:
    card = json.loads(tiny_model.with_suffix(".json").read_text())
    cal = card["calibration"]
    assert cal["split"] == "dev" and {"a", "b", "ece_before", "ece_after"} <= set(cal)
    assert PlannerModel(tiny_model).platt == (cal["a"], cal["b"])
