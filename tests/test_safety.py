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
