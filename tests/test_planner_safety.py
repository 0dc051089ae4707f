"""Safety policy file (TOML/JSON), blast radius, maintenance windows, and executor hooks with the audit trail.

Real store (SQLite), real subprocess executor; nothing is mocked.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from llmid.config import Settings
from llmid.documents import Batch, Confidence, Incident, RankedEvent, Recommendation
from llmid.engine.safety import SafetyGate, SafetyPolicy
from llmid.errors import ConfigError, InputError
from llmid.plugin.executors import execute_recommendation
from llmid.store import open_store

POLICY = """
confidence_floor = 0.5
approval_floor = 0.8
disruptive = ["drain_node", "failover_database"]

[allowed_actions]
metadata-db = ["failover_database", "escalate_to_human"]

[blast_radius]
drain_node = 2

[max_per_hour]
restart_service = 1

[[maintenance_windows]]
daily = "02:00-03:00"
targets = ["cache"]
"""


def rec(action: str, target: str | None, mean: float = 0.9, rid: str = "r1") -> Recommendation:
    return Recommendation(rid, "inc-1", action, target, Confidence(alpha=9 * mean, beta=9 * (1 - mean), mean=mean,
                                                                   low=mean - 0.1, high=min(mean + 0.05, 1.0)))


def ts(hh: int, mm: int = 0) -> float:
    return datetime(2026, 5, 1, hh, mm, tzinfo=UTC).timestamp()


@pytest.fixture()
def policy_file(tmp_path: Path) -> Path:
    p = tmp_path / "policy.toml"
    p.write_text(POLICY)
    return p


def test_policy_file_toml_and_json_agree(policy_file: Path, tmp_path: Path) -> None:
    import tomllib

    a = SafetyPolicy.load(policy_file)
    j = tmp_path / "policy.json"
    j.write_text(json.dumps(tomllib.loads(POLICY)))
    b = SafetyPolicy.load(j)
    for p in (a, b):
        assert p.confidence_floor == 0.5 and p.approval_floor == 0.8 and p.blast_radius == {"drain_node": 2}
        assert p.allowed_actions["metadata-db"] == ["failover_database", "escalate_to_human"]
        assert p.maintenance_windows[0].daily == (120, 180)


@pytest.mark.parametrize("text", ["colour = 1", "[blast_radius]\nnuke = 1", "confidence_floor = 2.0",
                                  "[[maintenance_windows]]\ndaily = 'soon'", "[executor]\nshell = 'x'",
                                  "not toml ["])
def test_bad_policy_files_are_one_clear_error(tmp_path: Path, text: str) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(ConfigError):
        SafetyPolicy.load(p)
    with pytest.raises(ConfigError):
        SafetyPolicy.load(tmp_path / "missing.toml")


def test_gate_applies_every_rule_of_the_file(policy_file: Path) -> None:
    gate = SafetyGate.from_settings(Settings(safety_policy=str(policy_file), confidence_floor=0.3))
    assert gate.policy.confidence_floor == 0.5  # the file's floor wins over the default setting
    now = ts(12)
    assert gate.assess(rec("restart_service", "auth", 0.4), now).safety_verdict == "blocked"
    assert gate.assess(rec("escalate_to_human", None, 0.1), now).safety_verdict == "allowed"
    assert gate.assess(rec("restart_service", "auth"), now).safety_verdict == "allowed"
    assert gate.assess(rec("restart_service", "auth", 0.7), now).safety_verdict == "needs_approval"  # < approval
    assert gate.assess(rec("restart_service", "metadata-db"), now).safety_verdict == "blocked"  # allow-list
    assert gate.assess(rec("failover_database", "metadata-db"), now).safety_verdict == "needs_approval"
    # rate limit: one restart of auth per hour, then approval
    gate.record_execution("restart_service", "auth", now - 60)
    assert gate.assess(rec("restart_service", "auth"), now).safety_verdict == "needs_approval"
    # blast radius: at most 2 distinct nodes drained per hour, the third is blocked
    gate.record_execution("drain_node", "gpu-node-01", now - 600)
    gate.record_execution("drain_node", "gpu-node-02", now - 300)
    r = gate.assess(rec("drain_node", "gpu-node-03"), now)
    assert r.safety_verdict == "blocked" and any("blast radius" in x for x in r.safety_reasons)
    assert gate.assess(rec("drain_node", "gpu-node-03"), now + 3600).safety_verdict == "needs_approval"
    # daily maintenance window on cache, 02:00-03:00 UTC
    assert gate.assess(rec("scale_out", "cache"), ts(2, 30)).safety_verdict == "needs_approval"
    assert gate.assess(rec("scale_out", "cache"), ts(3, 30)).safety_verdict == "allowed"


def _stored(tmp_path: Path, r: Recommendation) -> str:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    st = open_store(url)
    ev = RankedEvent("t1", "disk <*> full", 0.9, [1], "nfs", "nfs-01", "WARN")
    inc = Incident("inc-1", "s", 0.0, 1.0, 1, 1, 0.9, [ev], [ev])
    st.write(Batch(incidents=[inc], recommendations=[r]))
    return url


def _policy(tmp_path: Path, extra: str = "") -> Path:
    marker = tmp_path / "ran.json"
    p = tmp_path / "p.toml"
    cmd = [sys.executable, "-c", f"import sys; open({str(marker)!r}, 'w').write(sys.stdin.read())",
           "{action}", "{target}"]
    p.write_text(f"confidence_floor = 0.5\n{extra}\n[executor]\ncommand = {json.dumps(cmd)}\n")
    return p


def test_nothing_runs_unless_execution_is_switched_on(tmp_path: Path) -> None:
    url = _stored(tmp_path, rec("free_disk", "nfs-01"))
    settings = Settings(store=url, safety_policy=str(_policy(tmp_path)))
    out = execute_recommendation(open_store(url), "r1", settings)
    assert not out["executed"] and "switched off" in out["reason"]
    assert not (tmp_path / "ran.json").exists()
    trail = [a["action"] for a in open_store(url).audit()]
    assert trail[:2] == ["recommendation.execution_skipped", "recommendation.gate"]


def test_allowed_action_runs_the_command_hook_and_is_audited(tmp_path: Path) -> None:
    url = _stored(tmp_path, rec("free_disk", "nfs-01"))
    settings = Settings(store=url, safety_policy=str(_policy(tmp_path)), execute=True)
    out = execute_recommendation(open_store(url), "r1", settings, actor="tester")
    assert out["executed"], out
    sent = json.loads((tmp_path / "ran.json").read_text())
    assert sent["action"] == "free_disk" and sent["target"] == "nfs-01"
    st = open_store(url)
    assert st.get_recommendation("r1")["status"] == "executed"
    acts = [a["action"] for a in st.audit()]
    assert "recommendation.executed" in acts and "recommendation.gate" in acts
    again = execute_recommendation(st, "r1", settings)  # executed once; never twice
    assert not again["executed"]


def test_blocked_and_unapproved_actions_never_run(tmp_path: Path) -> None:
    url = _stored(tmp_path, rec("free_disk", "nfs-01", mean=0.2))
    settings = Settings(store=url, safety_policy=str(_policy(tmp_path)), execute=True)
    out = execute_recommendation(open_store(url), "r1", settings)
    assert not out["executed"] and out["verdict"] == "blocked"
    sub = tmp_path / "second"
    sub.mkdir()
    url2 = _stored(sub, rec("drain_node", "gpu-1", rid="r2"))
    st = open_store(url2)
    out = execute_recommendation(st, "r2", settings)
    assert not out["executed"] and out["verdict"] == "needs_approval"
    st.set_recommendation_status("r2", "approved", actor="operator")
    out = execute_recommendation(st, "r2", settings)
    assert out["executed"]
    assert not (tmp_path / "ran.json").exists() or json.loads((tmp_path / "ran.json").read_text())["action"] == \
        "drain_node"
    with pytest.raises(InputError):
        execute_recommendation(st, "nope", settings)


def test_execute_cli_defaults_to_not_executing(tmp_path: Path) -> None:
    import subprocess

    url = _stored(tmp_path, rec("free_disk", "nfs-01"))
    p = subprocess.run([sys.executable, "-m", "llmid", "execute", "r1", "--store", url, "--safety-policy",
                        str(_policy(tmp_path))], capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["executed"] is False and not (tmp_path / "ran.json").exists()


@pytest.mark.parametrize("planner", ["baseline", "learned"])
def test_analyze_json_recommendations_and_gate_audit(tmp_path: Path, planner: str) -> None:
    """`analyze --json` lists each incident's recommendations (confidence with a 90% interval, alternatives,
    rationale, safety verdict), and every gate decision is in the store's audit trail."""
    import subprocess

    from llmid.engine.planner_learned import DEFAULT_MODEL
    from llmid.sim import generate

    if planner == "learned" and not DEFAULT_MODEL.is_file():
        pytest.skip("the learned planner model is not installed")
    log = tmp_path / "sim.log"
    log.write_text(generate(1_000_005, phrasings="test").text())
    url = f"sqlite:///{tmp_path / 'a.db'}"
    p = subprocess.run([sys.executable, "-m", "llmid", "analyze", str(log), "--json", "--store", url, "--planner",
                        planner, "-q"], capture_output=True, text=True, check=False)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    recs = [r for inc in out["incidents"] for r in inc["recommendations"]]
    assert out["incidents"] and recs
    for r in recs:
        c = r["confidence"]
        assert set(c) == {"mean", "alpha", "beta", "low", "high"} and c["low"] <= c["mean"] <= c["high"]
        assert r["safety"]["verdict"] in ("allowed", "needs_approval", "blocked") and r["rationale"]
        assert r["method"] == planner and all("confidence" in a for a in r["alternatives"])
    gated = [a for a in open_store(url).audit(limit=1000) if a["action"] == "recommendation.gate"]
    assert {a["object_id"] for a in gated} == {r["recommendation_id"] for r in recs}


def test_execution_never_loosens_the_verdict_given_with_the_incident(tmp_path: Path) -> None:
    """At analysis time the gate saw the incident (evidence rules); `llmid execute` re-checks without it, so the
    stored verdict is the least strict it may give."""
    from llmid.engine.safety import IncidentContext

    ev = RankedEvent("t1", "disk <*> full", 0.9, [1], "nfs", "nfs-01", "WARN")
    inc = Incident("inc-1", "s", 0.0, 1.0, 1, 1, 0.9, [ev], [ev])
    gate = SafetyGate(SafetyPolicy(confidence_floor=0.5))
    held = gate.assess(rec("restart_service", "ctrl-01"), context=IncidentContext.of(inc, []))
    assert held.safety_verdict == "needs_approval"  # ctrl-01 is on no event of the incident
    url = f"sqlite:///{tmp_path / 'x.db'}"
    open_store(url).write(Batch(incidents=[inc], recommendations=[held]))
    settings = Settings(store=url, safety_policy=str(_policy(tmp_path)), execute=True)
    st = open_store(url)
    out = execute_recommendation(st, "r1", settings)
    assert not out["executed"] and out["verdict"] == "needs_approval" and "does not implicate" in out["reason"]
    st.set_recommendation_status("r1", "approved", actor="operator")
    assert execute_recommendation(st, "r1", settings)["executed"]
