"""Simulator extensions: held-out phrasings, coincidences, and the recovery environment (`step(action, target)`)."""

from __future__ import annotations

import re

import pytest

from llmid.documents import ACTIONS
from llmid.sim import FAULTS, generate
from llmid.sim.background import CHANGES, RARE
from llmid.sim.env import ACTION_MINUTES, ESCALATION_CREDIT, FIX_REWARD, SIDE_EFFECT, RecoveryEnv
from llmid.sim.faults import split_indices, split_phrasings
from llmid.sim.phrases import GENERIC, names

SMALL = {"normal_minutes": 10.0, "fault_minutes": 6.0}


def _rx(text: str) -> re.Pattern[str]:
    parts = re.split(r"\{[^{}]*\}", text)
    return re.compile(".+?".join(re.escape(p) for p in parts))


def test_split_rule_holds_out_a_third() -> None:
    six = tuple("abcdef")
    assert split_phrasings(six, "train") == tuple("abcd") and split_phrasings(six, "test") == ("e", "f")
    assert split_phrasings(six, "all") == six
    assert split_phrasings(("a", "b"), "test") == ("a", "b")  # too short to hold one out: shared
    assert split_indices(3, "test") == [2]
    # the train share cut once more, for choosing settings without the test wording
    assert split_phrasings(six, "dev") == ("d",) and split_phrasings(six, "fit") == tuple("abc")
    with pytest.raises(ValueError):
        split_phrasings(six, "validation")


def test_every_fault_has_held_out_wordings_for_root_symptoms_and_decoys() -> None:
    assert len(FAULTS) >= 12
    for f in FAULTS.values():
        assert len(f.root_phrasings) >= 6, f.name
        assert set(split_phrasings(f.root_phrasings, "train")).isdisjoint(split_phrasings(f.root_phrasings, "test"))
        for s in f.symptoms:
            assert len(s.phrasings) >= 3, (f.name, s.service)
        assert len(f.decoys) >= 3, f.name
        fixed = set(f.params) | {"host"} | set(GENERIC)
        for text in (*f.root_phrasings, *(p for s in f.symptoms for p in s.phrasings)):
            assert set(names(text)) <= fixed, (f.name, text)
    for _, line in RARE + CHANGES:
        assert set(names(line.text)) <= set(GENERIC), line.text


@pytest.mark.parametrize("split", ["train", "test"])
def test_scenarios_use_only_their_split(split: str) -> None:
    other = "test" if split == "train" else "train"
    for seed in range(12):
        sc = generate(seed, phrasings=split, **SMALL)
        fault = FAULTS[sc.truth["fault_type"]]
        assert sc.truth["phrasings"] == split
        line = sc.lines[sc.truth["root_cause_line"] - 1]
        assert any(_rx(p).search(line) for p in split_phrasings(fault.root_phrasings, split)), line
        root_kind = next(r.kind for r in sc.records if r.role == "root")
        assert int(root_kind.rsplit(":", 1)[1]) in split_indices(len(fault.root_phrasings), split)
        held = [i for i in range(len(RARE)) if i not in split_indices(len(RARE), split)]
        assert not any(r.kind in {f"rare:{i}" for i in held} for r in sc.records)
        only_other = set(split_phrasings(fault.root_phrasings, other)) - set(split_phrasings(fault.root_phrasings,
                                                                                             split))
        assert not any(_rx(p).search(line) for p in only_other)


def test_root_cause_repeats_and_truth_fields() -> None:
    repeats = 0
    for seed in range(30):
        t = generate(seed, **SMALL).truth
        assert t["target"] in t["accepted_targets"]
        assert all(x > t["root_cause_line"] for x in t["root_cause_repeats"])
        repeats += bool(t["root_cause_repeats"])
    assert 3 <= repeats <= 25


def test_coincident_benign_events_happen_before_some_faults() -> None:
    hits = 0
    for seed in range(40):
        sc = generate(seed, **SMALL)
        root = next(r for r in sc.records if r.role == "root")
        near = [r for r in sc.records if r.role == "background" and root.ts - 150 <= r.ts < root.ts
                and (r.kind.startswith("rare:") or r.kind.startswith("change:"))]
        hits += bool(near)
    assert hits >= 10


def test_env_correct_action_fixes() -> None:
    env = RecoveryEnv(7, **SMALL)
    obs = env.reset()
    assert obs.lines and obs.symptomatic and env.truth["target"] in obs.targets
    res = env.step(env.truth["action"], env.truth["target"])
    assert res.done and res.observation.resolved and res.info["outcome"] == "fixed"
    assert res.reward == pytest.approx(FIX_REWARD - ACTION_MINUTES[env.truth["action"]] / 60.0)
    assert res.observation.symptomatic == []
    with pytest.raises(RuntimeError):
        env.step("restart_service", "auth")


def test_env_wrong_action_costs_time_and_side_effects_then_out_of_steps() -> None:
    env = RecoveryEnv(7, max_steps=2, **SMALL)  # seed 7 is a database fault
    env.reset()
    assert env.truth["action"] != "drain_node"
    res = env.step("drain_node", "gpu-node-01")
    assert not res.done and res.info["outcome"] == "no_effect"
    assert res.info["side_effects"] and res.reward == pytest.approx(-ACTION_MINUTES["drain_node"] / 60.0
                                                                    - SIDE_EFFECT["drain_node"])
    assert len(res.observation.lines) > 1 and res.observation.symptomatic  # the fault went on meanwhile
    res = env.step("drain_node", "gpu-node-02")
    assert res.done and res.truncated and res.info["outcome"] == "out_of_steps"


def test_env_escalation_ends_and_is_right_for_the_config_typo() -> None:
    env = RecoveryEnv(3, fault_type="config_typo", **SMALL)
    env.reset()
    res = env.step("escalate_to_human", None)
    assert res.done and res.observation.resolved and res.info["outcome"] == "fixed"
    env = RecoveryEnv(3, fault_type="disk_full", **SMALL)
    env.reset()
    res = env.step("escalate_to_human", None)
    assert res.done and res.observation.escalated and not res.observation.resolved
    assert res.reward == pytest.approx(ESCALATION_CREDIT - 0.5)


def test_env_is_deterministic_and_validates() -> None:
    a, b = RecoveryEnv(11, **SMALL), RecoveryEnv(11, **SMALL)
    oa, ob = a.reset(), b.reset()
    assert oa.lines == ob.lines
    ra, rb = a.step("restart_service", "gateway"), b.step("restart_service", "gateway")
    assert ra.observation.lines == rb.observation.lines and ra.reward == rb.reward
    with pytest.raises(ValueError):
        a.step("reboot_everything", "gateway")
    assert {x for x, _ in a.actions()} == set(ACTIONS)
    with pytest.raises(RuntimeError):
        RecoveryEnv(1).step("restart_service", "auth")


def test_env_relief_hides_symptoms_without_fixing() -> None:
    env = RecoveryEnv(5, fault_type="trainer_oom", **SMALL)
    env.reset()
    res = env.step("restart_job_from_checkpoint", env.truth["target"])
    assert res.info["outcome"] == "relieved" and not res.done
    assert res.observation.symptomatic == []
    res = env.step("raise_memory_limit", env.truth["target"])
    assert res.done and res.info["outcome"] == "fixed"
