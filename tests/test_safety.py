"""SafetyGate verdicts under the baseline policy and the policy knobs."""

from __future__ import annotations

from llmid.config import Settings
from llmid.documents import Recommendation
from llmid.engine.beta import beta_confidence
from llmid.engine.safety import MaintenanceWindow, SafetyGate, SafetyPolicy


def _rec(action: str, mean_ab: tuple[float, float] = (8.0, 2.0), target: str | None = "api") -> Recommendation:
    return Recommendation(
        recommendation_id="r1", incident_id="i1", action=action, target=target, confidence=beta_confidence(*mean_ab)
    )


def test_low_confidence_blocks_everything_but_escalation() -> None:
    gate = SafetyGate.from_settings(Settings(confidence_floor=0.3))
    low = (1.0, 9.0)  # mean 0.1
    for action in ("restart_service", "scale_out", "drain_node"):
        out = gate.assess(_rec(action, low))
        assert out.safety_verdict == "blocked"
        assert any("below the floor" in r for r in out.safety_reasons)
    esc = gate.assess(_rec("escalate_to_human", low))
    assert esc.safety_verdict == "allowed" and esc.safety_reasons


def test_disruptive_actions_need_approval_others_allowed() -> None:
    gate = SafetyGate.from_settings(Settings())
    for action in ("drain_node", "failover_database", "rollback_deploy"):
        assert gate.assess(_rec(action)).safety_verdict == "needs_approval"
    for action in (
        "restart_service",
        "scale_out",
        "free_disk",
        "renew_certificate",
        "raise_memory_limit",
        "restart_job_from_checkpoint",
    ):
        out = gate.assess(_rec(action))
        assert out.safety_verdict == "allowed", action
        assert out.safety_reasons


def test_assess_returns_a_copy() -> None:
    rec = _rec("drain_node")
    out = SafetyGate().assess(rec)
    assert out is not rec and out.action == rec.action and out.confidence == rec.confidence


def test_policy_allow_list_rate_limit_and_maintenance() -> None:
    policy = SafetyPolicy(
        allowed_actions={"payments": ["scale_out"]},
        max_per_hour={"restart_service": 2},
        maintenance_windows=[MaintenanceWindow(start=1000.0, end=2000.0, targets=["batch"])],
    )
    gate = SafetyGate(policy)
    assert gate.assess(_rec("restart_service", target="payments"), now=0).safety_verdict == "blocked"
    assert gate.assess(_rec("scale_out", target="payments"), now=0).safety_verdict == "allowed"
    gate.record_execution("restart_service", "api", ts=100.0)
    gate.record_execution("restart_service", "api", ts=200.0)
    assert gate.assess(_rec("restart_service"), now=300.0).safety_verdict == "needs_approval"
    assert gate.assess(_rec("restart_service"), now=4000.0).safety_verdict == "allowed"  # older than an hour
    assert gate.assess(_rec("free_disk", target="batch"), now=1500.0).safety_verdict == "needs_approval"
    assert gate.assess(_rec("free_disk", target="batch"), now=2500.0).safety_verdict == "allowed"
    assert gate.assess(_rec("reboot_everything"), now=0).safety_verdict == "blocked"


def _incident_with_records():
    """A disk fills up on nfs-01 (WARN, the root cause), jobs on gpu-node-02 fail (ERROR) and name their job;
    ctrl-01 only logs a benign INFO line the reasoner ranked but left off the chain."""
    from llmid.documents import Incident, LogRecord, RankedEvent

    def record(line: int, level: str, service: str, host: str, params: list[str]) -> LogRecord:
        return LogRecord(line_id=line, source="s", offset=line, message="m", content="c", level=level,
                         service=service, host=host, params=params)

    root = RankedEvent("t1", "volume <*> low on space", 0.95, [1], "diskmon", "nfs-01", "WARN")
    symptom = RankedEvent("t2", "checkpoint of <*> failed: no space", 0.4, [2], "trainer", "gpu-node-02", "ERROR")
    benign = RankedEvent("t3", "pod <*> ready", 0.3, [3], "job-controller", "ctrl-01", "INFO")
    records = [record(1, "WARN", "diskmon", "nfs-01", ["/data"]), record(2, "ERROR", "trainer", "gpu-node-02",
                                                                          ["job-4711"]),
               record(3, "INFO", "job-controller", "ctrl-01", ["pod-a1"])]
    inc = Incident("i1", "s", 0.0, 1.0, 1, 3, 0.9, [root, benign, symptom], [root, symptom])
    return inc, records


def test_evidence_rules_hold_targets_the_incident_does_not_implicate() -> None:
    from llmid.engine.safety import IncidentContext

    inc, records = _incident_with_records()
    ctx = IncidentContext.of(inc, records)
    assert {"diskmon", "nfs-01", "trainer", "gpu-node-02", "job-4711"} <= set(ctx.implicated)
    assert "ctrl-01" not in ctx.implicated and "pod-a1" not in ctx.implicated
    gate = SafetyGate(SafetyPolicy())
    assert gate.assess(_rec("free_disk", target="nfs-01"), context=ctx).safety_verdict == "allowed"
    assert gate.assess(_rec("restart_job_from_checkpoint", target="job-4711"), context=ctx).safety_verdict == \
        "allowed"  # an identifier in a chain line's parameters is on the chain
    off = gate.assess(_rec("restart_service", target="ctrl-01"), context=ctx)
    assert off.safety_verdict == "needs_approval"
    assert any("does not implicate" in r for r in off.safety_reasons)
    assert any("shows no trouble" in r for r in off.safety_reasons)
    # without the incident the evidence rules cannot apply
    assert gate.assess(_rec("restart_service", target="ctrl-01")).safety_verdict == "allowed"
    strict = SafetyGate(SafetyPolicy.from_doc({"evidence": {"off_chain": "blocked", "healthy": "blocked"}}))
    assert strict.assess(_rec("restart_service", target="ctrl-01"), context=ctx).safety_verdict == "blocked"
    assert strict.assess(_rec("free_disk", target="nfs-01"), context=ctx).safety_verdict == "allowed"
    assert strict.assess(_rec("escalate_to_human", target=None), context=ctx).safety_verdict == "allowed"
    weak = SafetyGate(SafetyPolicy.from_doc({"evidence": {"min_score": 0.5}}))
    assert weak.assess(_rec("restart_service", target="gpu-node-02"), context=ctx).safety_verdict == "needs_approval"
    assert weak.assess(_rec("free_disk", target="nfs-01"), context=ctx).safety_verdict == "allowed"
    # a node action must name a host of the incident: draining a job id or a service is blocked
    node = gate.assess(_rec("drain_node", target="job-4711"), context=ctx)
    assert node.safety_verdict == "blocked" and any("acts on a node" in r for r in node.safety_reasons)
    assert gate.assess(_rec("drain_node", target="diskmon"), context=ctx).safety_verdict == "blocked"
    assert gate.assess(_rec("drain_node", target="gpu-node-02"), context=ctx).safety_verdict == "needs_approval"
    # the context survives JSON (the evaluation caches it), and an incident document gives services and hosts
    assert IncidentContext.from_doc(ctx.to_doc()) == ctx
    from_store = IncidentContext.from_doc(inc.to_doc())
    assert "nfs-01" in from_store.implicated and "ctrl-01" not in from_store.implicated
    assert from_store.hosts == ctx.hosts == ["ctrl-01", "gpu-node-02", "nfs-01"]


def test_alternatives_get_their_own_verdicts() -> None:
    from llmid.engine.safety import IncidentContext

    inc, records = _incident_with_records()
    rec = _rec("free_disk", target="nfs-01")
    rec.alternatives = [
        {"action": "restart_service", "target": "ctrl-01", "confidence": beta_confidence(9.0, 1.0).to_doc()},
        {"action": "escalate_to_human", "target": None, "confidence": beta_confidence(1.0, 1.0).to_doc()},
    ]
    out = SafetyGate().assess(rec, context=IncidentContext.of(inc, records))
    assert out.safety_verdict == "allowed"
    assert [a["safety"]["verdict"] for a in out.alternatives] == ["needs_approval", "allowed"]
    assert "safety" not in rec.alternatives[0]  # the input is not changed


def test_bad_evidence_settings_are_errors() -> None:
    import pytest

    from llmid.errors import ConfigError

    for doc in ({"evidence": {"off_chain": "maybe"}}, {"evidence": {"colour": 1}}, {"evidence": {"min_score": 2}},
                {"ambiguity": 1.5}, {"approval_on": "median"}):
        with pytest.raises(ConfigError):
            SafetyPolicy.from_doc(doc)


def test_ambiguous_target_and_interval_rules() -> None:
    """The planner proposing the same action on two different places means it is unsure where to act; with
    approval_on = "low" the pessimistic end of the 90% interval must reach the approval floor."""
    from llmid.engine.safety import IncidentContext

    inc, records = _incident_with_records()
    ctx = IncidentContext.of(inc, records)
    assert ctx.same_place("diskmon", "nfs-01") and not ctx.same_place("nfs-01", "gpu-node-02")
    rec = _rec("free_disk", (9.5, 0.5), target="nfs-01")
    rec.alternatives = [{"action": "free_disk", "target": "gpu-node-02", "confidence": beta_confidence(6, 4).to_doc()}]
    gate = SafetyGate(SafetyPolicy.from_doc({"ambiguity": 0.5}))
    out = gate.assess(rec, context=ctx)
    assert out.safety_verdict == "needs_approval" and any("unsure where to act" in r for r in out.safety_reasons)
    rec.alternatives[0]["target"] = "diskmon"  # the same place by another name: no ambiguity
    assert gate.assess(rec, context=ctx).safety_verdict == "allowed"
    rec.alternatives[0]["confidence"] = beta_confidence(2, 8).to_doc()
    rec.alternatives[0]["target"] = "gpu-node-02"  # another place, but not plausible
    assert gate.assess(rec, context=ctx).safety_verdict == "allowed"
    sure, unsure = _rec("free_disk", (95.0, 5.0), target="nfs-01"), _rec("free_disk", (9.5, 0.5), target="nfs-01")
    low = SafetyGate(SafetyPolicy.from_doc({"approval_floor": 0.9, "approval_on": "low"}))
    assert low.assess(sure).safety_verdict == "allowed"  # mean 0.95, 90% interval from ~0.91
    assert low.assess(unsure).safety_verdict == "needs_approval"  # mean 0.95, but the interval reaches ~0.81
    assert SafetyGate(SafetyPolicy.from_doc({"approval_floor": 0.9})).assess(unsure).safety_verdict == "allowed"
