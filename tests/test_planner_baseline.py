"""KeywordPlanner rules, Beta confidence math and recommendation documents."""

from __future__ import annotations

import json

import pytest

from llmid.documents import ACTIONS, Incident, RankedEvent, stable_id
from llmid.engine.beta import beta_cdf, beta_confidence, beta_interval, beta_ppf
from llmid.engine.planner import KeywordPlanner


def _ev(template: str, service: str | None = "api", host: str | None = "node-7", first: float = 0.0) -> RankedEvent:
    return RankedEvent(
        template_id=stable_id("t", template),
        template=template,
        score=0.5,
        lines=[1],
        service=service,
        host=host,
        first_seen=first,
    )


def _incident(root: str, *chain: str, service: str | None = "api", host: str | None = "node-7") -> Incident:
    rc = _ev(root, service, host)
    rest = [_ev(t, service, host, first=float(i + 1)) for i, t in enumerate(chain)]
    return Incident(
        incident_id="inc-1",
        source="x.log",
        window_start=0.0,
        window_end=300.0,
        first_line=1,
        last_line=9,
        anomaly_score=0.9,
        ranking=[rc, *rest],
        chain=[rc, *rest],
    )


@pytest.mark.parametrize(
    ("root", "action"),
    [
        ("java.lang.OutOfMemoryError: Java heap space <*>", "raise_memory_limit"),
        ("Out of memory: Killed process <*> (python)", "raise_memory_limit"),
        ("write failed: No space left on device", "free_disk"),
        ("filesystem /var is 97% full", "free_disk"),
        ("x509: certificate has expired or is not yet valid", "renew_certificate"),
        ("deployed version <*> of checkout", "rollback_deploy"),
        ("upstream connect error: connection refused <*>", "restart_service"),
        ("request queue depth <*> exceeds limit", "scale_out"),
        ("deadlock detected while waiting for ShareLock", "failover_database"),
        ("kernel panic - not syncing: Fatal exception", "drain_node"),
        ("machine check interrupt (bit=<*>): L2 dcache unit data parity error", "drain_node"),
        ("NCCL WARN Net : Connection closed by remote peer", "restart_job_from_checkpoint"),
        ("CUDA error: an illegal memory access was encountered", "restart_job_from_checkpoint"),
    ],
)
def test_rules_pick_expected_action(root: str, action: str) -> None:
    (rec,) = KeywordPlanner().recommend(_incident(root))
    assert rec.action == action
    assert rec.method == "baseline"
    assert rec.rationale and "root cause" in rec.rationale[0]
    assert rec.action in ACTIONS


def test_fallback_is_escalation_with_uniform_confidence() -> None:
    (rec,) = KeywordPlanner().recommend(_incident("user <*> logged in", "cache warmed"))
    assert rec.action == "escalate_to_human"
    assert (rec.confidence.alpha, rec.confidence.beta) == (1.0, 1.0)
    assert rec.confidence.mean == pytest.approx(0.5)
    assert rec.alternatives == []


def test_targets_service_or_host_for_drain() -> None:
    (rec,) = KeywordPlanner().recommend(_incident("kernel panic at <*>", service="kernel", host="R02-M1-N0"))
    assert (rec.action, rec.target) == ("drain_node", "R02-M1-N0")
    (rec,) = KeywordPlanner().recommend(_incident("connection refused", service="payments", host="h1"))
    assert (rec.action, rec.target) == ("restart_service", "payments")


def test_root_cause_outweighs_chain_and_alternatives_carry_confidence() -> None:
    inc = _incident("deployed version <*>", "connection refused to db <*>", "request latency <*> ms")
    (rec,) = KeywordPlanner().recommend(inc)
    assert rec.action == "rollback_deploy"
    c = rec.confidence
    # alpha = 1 + 3 (root); beta = 1 + 1 + (0.5 + 1/3) / 2
    assert c.alpha == pytest.approx(4.0)
    assert c.beta == pytest.approx(2.0 + (0.5 + 1 / 3) / 2)
    assert c.mean == pytest.approx(c.alpha / (c.alpha + c.beta))
    assert 0.0 < c.low < c.mean < c.high < 1.0
    alts = [a["action"] for a in rec.alternatives]
    assert alts == ["restart_service", "scale_out", "escalate_to_human"]
    for a in rec.alternatives:
        assert set(a["confidence"]) == {"mean", "alpha", "beta", "low", "high"}
        assert a["confidence"]["mean"] < c.mean
    assert rec.recommendation_id == stable_id("rec", "inc-1", "rollback_deploy", "api")
    json.dumps(rec.to_doc())


def test_beta_quantiles_known_values() -> None:
    low, high = beta_interval(2, 5)
    assert low == pytest.approx(0.0628, abs=1e-4)
    assert high == pytest.approx(0.5818, abs=1e-4)
    low, high = beta_interval(1, 1)
    assert (low, high) == (pytest.approx(0.05, abs=1e-9), pytest.approx(0.95, abs=1e-9))
    # Beta(0.5, 0.5) is the arcsine law: F^-1(q) = sin^2(pi q / 2)
    assert beta_ppf(0.05, 0.5, 0.5) == pytest.approx(0.0061558, abs=1e-6)
    # Beta(1, b): F^-1(q) = 1 - (1 - q)^(1/b)
    assert beta_ppf(0.95, 1, 50) == pytest.approx(1 - 0.05 ** (1 / 50), abs=1e-9)
    assert beta_cdf(beta_ppf(0.3, 200, 300), 200, 300) == pytest.approx(0.3, abs=1e-9)
    assert beta_interval(2, 5, mass=0.5)[0] > low
    c = beta_confidence(3, 1)
    assert c.mean == pytest.approx(0.75) and c.low < c.mean < c.high
    with pytest.raises(ValueError):
        beta_interval(0, 1)
