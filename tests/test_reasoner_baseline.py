"""BaselineReasoner and the event graph on synthetic window streams with a known fault."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from llmid.config import Settings
from llmid.documents import LogRecord
from llmid.engine.graph import EventGraph, build_events, normalize_level
from llmid.engine.reasoner import BaselineReasoner
from llmid.engine.windows import Window

NORMAL = [
    ("t-login", "user <*> logged in", "INFO", 0.4),
    ("t-get", "GET /api/items <*> 200", "INFO", 0.4),
    ("t-cache", "cache hit ratio <*>", "DEBUG", 0.15),
    ("t-slow", "slow query took <*> ms", "WARN", 0.05),
]


class Stream:
    """Builds windows of one source with consecutive line ids, like the Windower would."""

    def __init__(self, source: str = "app.log", seed: int = 7) -> None:
        self.source = source
        self.rng = random.Random(seed)
        self.line = 0
        self.index = 0

    def record(self, tid: str, template: str, level: str, service: str = "web", host: str = "h1") -> LogRecord:
        self.line += 1
        return LogRecord(
            line_id=self.line,
            source=self.source,
            offset=self.line * 100,
            message=template,
            content=template,
            timestamp=1_700_000_000.0 + self.line,
            level=level,
            service=service,
            host=host,
            template_id=tid,
            template=template,
        )

    def normal_records(self, n: int) -> list[LogRecord]:
        weights = [w for *_, w in NORMAL]
        return [self.record(*self.rng.choices(NORMAL, weights)[0][:3]) for _ in range(n)]

    def window(self, records: list[LogRecord]) -> Window:
        w = Window(source=self.source, index=self.index, records=records)
        w.start, w.end = records[0].timestamp, records[-1].timestamp
        self.index += 1
        return w

    def normal_window(self) -> Window:
        return self.window(self.normal_records(self.rng.randint(60, 120)))

    def fault_window(self) -> Window:
        recs = self.normal_records(30)
        recs.append(self.record("t-deploy", "deployed version <*>", "INFO", service="web", host="h2"))
        recs += self.normal_records(5)
        for _ in range(6):
            recs.append(self.record("t-refused", "connection refused to db <*>", "ERROR", service="web", host="h2"))
            recs += self.normal_records(2)
        recs += self.normal_records(20)
        return self.window(recs)


def _settings(**kw: float) -> Settings:
    kw.setdefault("baseline_records", 0)
    return Settings(baseline_windows=int(kw.pop("baseline_windows", 3)), **kw)  # type: ignore[arg-type]


def test_fault_after_normal_period_raises_incident_with_complete_ranking() -> None:
    s = Stream()
    r = BaselineReasoner(_settings())
    for _ in range(8):
        assert r.reason(s.normal_window()) is None
    win = s.fault_window()
    inc = r.reason(win)
    assert inc is not None
    assert inc.method == "baseline"
    assert inc.ranking, "an incident always has a root cause"
    assert inc.anomaly_score >= 0.5
    # root cause = the earliest anomalous event (the deploy), then the ERROR that follows it
    assert inc.ranking[0].template_id == "t-deploy"
    assert {e.template_id for e in inc.ranking} == {"t-deploy", "t-refused"}
    assert inc.chain[0] is inc.ranking[0]
    firsts = [e.first_seen for e in inc.chain[1:]]
    assert firsts == sorted(firsts)
    # every line of each ranked event inside the window, nothing else
    for ev in inc.ranking:
        expected = [rec.line_id for rec in win.records if rec.template_id == ev.template_id]
        assert ev.lines == expected
    assert len(inc.ranking[1].lines) == 6
    assert (inc.first_line, inc.last_line) == (win.first_line, win.last_line)
    # the records are annotated: all get the window score and the incident id, ranked ones a root-cause score
    assert all(rec.anomaly_score == pytest.approx(inc.anomaly_score) for rec in win.records)
    assert all(rec.incident_id == inc.incident_id for rec in win.records)
    ranked_ids = {"t-deploy", "t-refused"}
    for rec in win.records:
        assert (rec.root_cause_score > 0) == (rec.template_id in ranked_ids)
    doc = inc.to_doc()
    assert doc["root_cause"]["template_id"] == "t-deploy"
    json.dumps(doc)


def test_incident_id_is_deterministic() -> None:
    ids = []
    for _ in range(2):
        s = Stream()
        r = BaselineReasoner(_settings())
        for _ in range(5):
            r.reason(s.normal_window())
        inc = r.reason(s.fault_window())
        assert inc is not None
        ids.append(inc.incident_id)
    assert ids[0] == ids[1]


def test_normal_stream_raises_nothing_but_scores_records() -> None:
    s = Stream(seed=11)
    r = BaselineReasoner(_settings())
    for _ in range(40):
        w = s.normal_window()
        assert r.reason(w) is None
        assert all(rec.incident_id is None and rec.root_cause_score == 0.0 for rec in w.records)
        assert all(0.0 <= rec.anomaly_score < 0.5 for rec in w.records)


def test_baseline_period_is_never_an_incident_but_is_learned() -> None:
    s = Stream()
    r = BaselineReasoner(_settings(baseline_windows=2))
    assert r.reason(s.fault_window()) is None  # window 0: baseline, learns the deploy/refused templates
    assert r.reason(s.normal_window()) is None
    assert r.reason(s.fault_window()) is None  # no longer novel, counts as in history
    assert r.histories["app.log"].windows == 3


def test_novel_info_alone_is_not_an_incident() -> None:
    s = Stream()
    r = BaselineReasoner(_settings())
    for _ in range(5):
        r.reason(s.normal_window())
    recs = s.normal_records(50) + [s.record("t-new", "feature flag <*> enabled", "INFO")] + s.normal_records(50)
    assert r.reason(s.window(recs)) is None


def test_frequency_burst_of_known_warning_is_an_incident() -> None:
    s = Stream()
    r = BaselineReasoner(_settings())
    for _ in range(8):
        r.reason(s.normal_window())
    recs = s.normal_records(40) + [s.record("t-slow", "slow query took <*> ms", "WARN") for _ in range(40)]
    inc = r.reason(s.window(recs))
    assert inc is not None
    assert inc.root_cause.template_id == "t-slow"
    assert len(inc.root_cause.lines) >= 40


def test_flagged_window_does_not_enter_history() -> None:
    s = Stream()
    r = BaselineReasoner(_settings())
    for _ in range(4):
        r.reason(s.normal_window())
    assert r.reason(s.fault_window()) is not None
    assert r.reason(s.fault_window()) is not None  # still novel: anomalous windows are not "normal"


def test_state_round_trip_resumes_identically() -> None:
    s1, s2 = Stream(seed=3), Stream(seed=3)
    a = BaselineReasoner(_settings())
    for _ in range(6):
        a.reason(s1.normal_window())
        s2.normal_window()
    blob = json.dumps(a.state())
    b = BaselineReasoner(_settings())
    b.load_state(json.loads(blob))
    ia, ib = a.reason(s1.fault_window()), b.reason(s2.fault_window())
    assert ia is not None and ib is not None
    assert ia.to_doc() == ib.to_doc()
    with pytest.raises(ValueError):
        b.load_state({"method": "learned", "version": 1, "sources": {}})


def test_sources_have_separate_histories() -> None:
    a, b = Stream("a.log"), Stream("b.log")
    r = BaselineReasoner(_settings())
    for _ in range(4):
        r.reason(a.normal_window())
    # b.log is still in its own baseline period: its fault window is not an incident
    assert r.reason(b.fault_window()) is None
    assert r.reason(a.fault_window()) is not None


def test_build_events_and_graph() -> None:
    s = Stream()
    recs = [
        s.record("A", "start <*>", "INFO"),
        s.record("B", "retry <*>", "WARNING"),
        s.record("A", "start <*>", "ERROR"),
        s.record("A", "start <*>", "INFO", service="other"),
        s.record("C", "done", "INFO"),
    ]
    w = s.window(recs)
    events = build_events(w)
    assert [(e.template_id, e.service) for e in events] == [("A", "web"), ("B", "web"), ("A", "other"), ("C", "web")]
    a = events[0]
    assert (a.count, a.lines, a.first_index, a.last_index, a.level) == (2, [1, 3], 0, 2, "ERROR")
    assert events[1].level == "WARN"
    g = EventGraph.from_window(w, horizon=2)
    assert g.precedence.shape == (4, 4) and g.cooccurrence.shape == (4, 4)
    assert g.precedence[0, 1] == 1 and g.precedence[1, 0] == 0
    assert g.precedence[0, 3] == 0  # first occurrences 0 and 4: beyond the horizon of 2
    assert np.array_equal(g.cooccurrence, g.cooccurrence.T)
    assert g.cooccurrence[0, 1] == 2  # A@0-B@1 and B@1-A@2
    assert np.all(np.diag(g.cooccurrence) == 0)
    assert g.features().shape == (4, 4)
    assert normalize_level("severe") == "ERROR" and normalize_level("bogus") is None
