"""One simulated incident: a normal period of mixed-format traffic, then a fault that spreads, plus its truth.

The truth (root-cause line, fault chain, correct action and target) is what the analyser is scored against,
so it is computed from the same events that are rendered, never re-parsed from the text. Everything is drawn
from `random.Random(seed)`: one seed always gives byte-identical files.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from random import Random
from typing import Any

from llmid.sim.background import BACKGROUND, CHANGES, PERIODIC, RARE, Line
from llmid.sim.emit import iso_z, render
from llmid.sim.faults import FAULTS, SPLITS, Fault, split_indices, split_phrasings
from llmid.sim.phrases import fill
from llmid.sim.synthetic import synthetic_benign, synthetic_fault
from llmid.sim.topology import SERVICES, all_hosts

START = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()
"""Fixed epoch of every scenario; each seed shifts it by up to a week so timestamps differ between seeds."""
DEFAULT_RATE = 1.5
"""Background lines per second over all services (about 4-5k lines for the default 30 + ~13 minutes)."""
FAULT_MINUTES = 10.0
"""How long the fault keeps spreading before the log ends."""


@dataclass(slots=True)
class Event:
    """One log record before rendering; `kind` names its phrasing so tests can count occurrences."""

    ts: float
    seq: int
    service: str
    host: str
    level: str
    message: str
    kind: str
    role: str
    """"background", "root" or "symptom"."""
    stage: int = -1
    """Index of the symptom in the fault's chain (symptoms only)."""
    fmt: str = ""
    program: str = ""
    trace: list[str] = field(default_factory=list)


@dataclass(slots=True)
class SimRecord:
    """Where one event landed in the log (1-based first physical line and number of lines)."""

    line: int
    n_lines: int
    ts: float
    service: str
    host: str
    level: str
    fmt: str
    kind: str
    role: str
    stage: int


@dataclass(slots=True)
class Scenario:
    """The rendered log (`lines`, physical lines), its ground truth, and the record table behind both."""

    lines: list[str]
    truth: dict[str, Any]
    records: list[SimRecord]

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def write(self, out_dir: str | Path) -> Path:
        """Write `scenario.log` and `truth.json` into `out_dir` (created if missing); returns the log path."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        log = out / "scenario.log"
        log.write_text(self.text(), encoding="utf-8")
        (out / "truth.json").write_text(json.dumps(self.truth, indent=2) + "\n", encoding="utf-8")
        return log


class _Builder:
    """Collects events for one scenario, numbering them so equal timestamps keep creation order."""

    def __init__(self, rng: Random) -> None:
        self.rng = rng
        self.events: list[Event] = []

    def add(self, ts: float, service: str, host: str, level: str, message: str, kind: str, role: str, *,
            stage: int = -1, fmt: str = "", program: str = "", trace: list[str] | None = None) -> Event:
        ev = Event(ts, len(self.events), service, host, level, message, kind, role, stage, fmt, program,
                   trace or [])
        self.events.append(ev)
        return ev

    def hosts(self, service: str) -> tuple[str, ...]:
        return SERVICES[service].hosts or all_hosts()

    def line(self, ts: float, service: str, spec: Line, kind: str, host: str | None = None,
             fmt: str = "") -> None:
        rng = self.rng
        h = host or rng.choice(self.hosts(service))
        trace = spec.trace(rng, {}) if spec.trace else None
        self.add(ts, service, h, spec.level, fill(spec.text, rng), kind, "background", fmt=fmt,
                 program=spec.program, trace=trace)


def _background(b: _Builder, t0: float, end: float, rate: float, jitter: dict[str, float]) -> None:
    """Poisson traffic per service, shared out by weight (jittered per scenario), plus clock-driven probes."""
    rng = b.rng
    weight = {s: SERVICES[s].weight * jitter.get(s, 1.0) for s in BACKGROUND}
    total = sum(weight.values())
    for service, specs in BACKGROUND.items():
        lam = rate * weight[service] / total
        weights = [s.weight for s in specs]
        t = t0 + rng.expovariate(lam)
        while t < end:
            i = rng.choices(range(len(specs)), weights)[0]
            b.line(t, service, specs[i], f"bg:{service}:{i}")
            t += rng.expovariate(lam)
    for i, (service, period, level, text) in enumerate(PERIODIC):
        t = t0 + rng.uniform(0, period)
        while t < end:
            b.line(t, service, Line(1, level, text), f"periodic:{i}")
            t += period * rng.uniform(0.9, 1.1)


def _one_offs(b: _Builder, fault: Fault, t0: float, normal_end: float, end: float, split: str) -> None:
    """Rare benign events anywhere, and look-alikes of the root cause in the normal period."""
    rng = b.rng
    pool = split_indices(len(RARE), split)
    for i in rng.sample(pool, min(len(pool), rng.randint(5, 9))):
        service, spec = RARE[i]
        b.line(rng.uniform(t0, end), service, spec, f"rare:{i}")
    decoys = split_indices(len(fault.decoys), split)
    for j in decoys:
        level, text = fault.decoys[j]
        for _ in range(rng.randint(1, 5)):
            b.line(rng.uniform(t0, normal_end), fault.service, Line(1, level, text, program=fault.program),
                   f"decoy:{fault.name}:{j}", host=rng.choice(fault.hosts or b.hosts(fault.service)),
                   fmt=fault.fmt)


CONFOUNDER_P = 0.45
"""Probability of a harmless novel event (one-off or change) shortly before the root cause."""
SYNTHETIC_CONFOUNDER_P = 0.6
"""The same with `synthetic` (training data): coincidences are what a model must learn not to trust."""
BURST_P = 0.3
"""Probability of a burst of a known benign WARN/ERROR around the time the fault starts."""


def _synthetic_benign(b: _Builder, t: float) -> None:
    service, level, text = synthetic_benign(b.rng)
    b.line(t, service, Line(1, level, text), "synthetic-benign")


def _confounders(b: _Builder, fault_start: float, split: str, synthetic: bool) -> None:
    """Coincidences: a harmless novel event just before the fault, a burst of a familiar benign error."""
    rng = b.rng
    if rng.random() < (SYNTHETIC_CONFOUNDER_P if synthetic else CONFOUNDER_P):
        t = fault_start - rng.uniform(3.0, 150.0)
        if synthetic and rng.random() < 0.5:
            _synthetic_benign(b, t)
        else:
            pool = [("rare", i, RARE[i]) for i in split_indices(len(RARE), split)]
            pool += [("change", i, CHANGES[i]) for i in split_indices(len(CHANGES), split)]
            kind, i, (service, spec) = rng.choice(pool)
            b.line(t, service, spec, f"{kind}:{i}")
    if rng.random() < BURST_P:
        service = rng.choice(sorted(BACKGROUND))
        noisy = [(i, s) for i, s in enumerate(BACKGROUND[service]) if s.level in ("WARN", "ERROR")]
        if noisy:
            i, spec = rng.choice(noisy)
            t = fault_start - rng.uniform(-60.0, 120.0)
            for _ in range(rng.randint(3, 7)):
                b.line(t, service, spec, f"bg:{service}:{i}")
                t += rng.uniform(0.5, 15.0)


def _inject(b: _Builder, fault: Fault, fault_start: float, end: float, split: str) -> dict[str, object]:
    """The root-cause record at `fault_start` (sometimes repeated), then each symptom stage ramping up after
    its delay. Stages after the first are sometimes missing (not every incident shows every symptom)."""
    rng = b.rng
    host = rng.choice(fault.hosts or b.hosts(fault.service))
    params: dict[str, object] = {name: gen(rng) for name, gen in sorted(fault.params.items())}
    params["host"] = host
    k = rng.choice(split_indices(len(fault.root_phrasings), split))
    root_text = fill(fault.root_phrasings[k], rng, params)
    b.add(fault_start, fault.service, host, fault.level, root_text, f"root:{fault.name}:{k}", "root", fmt=fault.fmt,
          program=fault.program)
    if rng.random() < fault.recur:  # the condition is logged again while it lasts (same wording, new values)
        t = fault_start + rng.uniform(45.0, 150.0)
        while t < end:
            b.add(t, fault.service, host, fault.level, fill(fault.root_phrasings[k], rng, params),
                  f"root:{fault.name}:{k}", "root-repeat", fmt=fault.fmt, program=fault.program)
            t += rng.uniform(45.0, 240.0)
    stretch = rng.uniform(0.6, 1.6)
    speed = rng.uniform(0.6, 1.5)
    for i, sym in enumerate(fault.symptoms):
        if i > 0 and len(fault.symptoms) > 2 and rng.random() < 0.12:
            continue
        first = fault_start + sym.delay * stretch + rng.uniform(0.0, 3.0)
        t = first
        n = 0
        phrasings = split_phrasings(sym.phrasings, split)
        while t < end:
            h = host if sym.host == "origin" else rng.choice(b.hosts(sym.service))
            p = {**params, "host": host}
            msg = fill(rng.choice(phrasings), rng, p)
            trace = sym.trace(rng, p) if sym.trace and (n == 0 or rng.random() < 0.5) else None
            b.add(t, sym.service, h, sym.level, msg, f"sym:{fault.name}:{i}", "symptom", stage=i,
                  fmt=sym.fmt, program=sym.program, trace=trace)
            n += 1
            # thinning: sparse at first, full rate once the fault has developed for `ramp` seconds
            while True:
                t += rng.expovariate(sym.rate * speed)
                if t >= end or rng.random() < min(1.0, 0.15 + (t - first) / sym.ramp):
                    break
    return params


def generate(seed: int, *, normal_minutes: float = 30.0, fault_type: str | None = None,
             rate: float = DEFAULT_RATE, lines: int | None = None,
             fault_minutes: float = FAULT_MINUTES, phrasings: str = "all", synthetic: bool = False) -> Scenario:
    """Simulate one incident: `normal_minutes` of healthy traffic, then `fault_type` (random if None).

    `rate` is background lines per second; `lines`, when given, overrides it to aim at about that many lines.
    `phrasings` picks the wording split (`faults.split_phrasings`): "train", "test" (held-out wordings of the
    root causes, symptoms, decoys and benign one-offs) or "all" (the default). `synthetic` (training data):
    half of the faults (unless `fault_type` is given) and some of the benign one-offs are worded procedurally
    (`synthetic.py`), so their words cannot be memorised; `fault_type="synthetic"` forces a synthetic fault.
    """
    if fault_type is not None and fault_type not in FAULTS and fault_type != "synthetic":
        raise ValueError(f"unknown fault type {fault_type!r}; known: {', '.join(sorted(FAULTS))}")
    if phrasings not in SPLITS:
        raise ValueError(f"unknown phrasing split {phrasings!r}; use one of {', '.join(SPLITS)}")
    if normal_minutes < 1 or fault_minutes < 1:
        raise ValueError("normal_minutes and fault_minutes must be at least 1")
    draw = Random(seed)
    drawn = draw.choice(sorted(FAULTS))
    if fault_type == "synthetic" or (fault_type is None and synthetic and draw.random() < 0.5):
        fault = synthetic_fault(Random(f"llmid-sim-synthetic:{seed}"))
    else:
        fault = FAULTS[fault_type or drawn]
    # the fault type is part of the seed: each fault gets its own background and timing, and
    # generate(s) == generate(s, fault_type=<the type s draws>)
    rng = Random(f"llmid-sim:{seed}:{fault.name}" + ("" if phrasings == "all" else f":{phrasings}")
                 + (":synthetic" if synthetic else ""))
    t0 = START + rng.randrange(0, 7 * 86400) + rng.random()
    normal_end = t0 + normal_minutes * 60
    fault_start = normal_end + rng.uniform(60, 300)
    end = fault_start + fault_minutes * 60
    if lines is not None:
        rate = max(0.05, lines * 0.9 / (end - t0))
    if rate <= 0:
        raise ValueError("rate must be positive")
    jitter = {s: rng.uniform(0.7, 1.4) for s in sorted(BACKGROUND)}

    b = _Builder(rng)
    _background(b, t0, end, rate, jitter)
    _one_offs(b, fault, t0, normal_end, end, phrasings)
    if synthetic:
        for _ in range(rng.randint(4, 12)):
            _synthetic_benign(b, rng.uniform(t0, end))
    _confounders(b, fault_start, phrasings, synthetic)
    params = _inject(b, fault, fault_start, end, "all" if fault.name == "synthetic" else phrasings)
    sc = _render(b.events, seed, fault, params, t0, normal_end, fault_start, end)
    sc.truth["phrasings"] = phrasings
    sc.truth["synthetic"] = synthetic
    return sc


def _render(events: list[Event], seed: int, fault: Fault, params: dict[str, object], t0: float,
            normal_end: float, fault_start: float, end: float) -> Scenario:
    """Order events by time, render them, and compute the truth from where each landed."""
    out: list[str] = []
    records: list[SimRecord] = []
    root: SimRecord | None = None
    root_text = ""
    repeats: list[int] = []
    chain: dict[int, SimRecord] = {}
    for ev in sorted(events, key=lambda e: (e.ts, e.seq)):
        svc = SERVICES[ev.service]
        fmt = ev.fmt or svc.fmt
        program = ev.program or svc.program or ev.service
        pid = 0 if program == "kernel" else _pid(ev.host, program)
        rendered = render(fmt, ev.ts, ev.level, ev.service, ev.host, ev.message, program=program, pid=pid,
                          logger=svc.logger, trace=ev.trace)
        rec = SimRecord(len(out) + 1, len(rendered), ev.ts, ev.service, ev.host, ev.level, fmt, ev.kind,
                        ev.role, ev.stage)
        records.append(rec)
        if ev.role == "root":
            root, root_text = rec, ev.message
        elif ev.role == "root-repeat":
            repeats.append(rec.line)
        elif ev.role == "symptom" and ev.stage not in chain:
            chain[ev.stage] = rec
        out.extend(rendered)
    assert root is not None
    firsts = [chain[i] for i in sorted(chain)]
    truth: dict[str, Any] = {
        "seed": seed,
        "fault_type": fault.name,
        "summary": fault.summary,
        "root_cause_line": root.line,
        "root_cause_message": root_text,
        "root_cause_service": root.service,
        "root_cause_host": root.host,
        "root_cause_level": root.level,
        "chain_lines": [r.line for r in sorted(firsts, key=lambda r: r.line)],
        "chain_services": [r.service for r in sorted(firsts, key=lambda r: r.line)],
        "root_cause_repeats": repeats,
        "action": fault.action,
        "target": fault.target.format(**params),
        "accepted_targets": sorted({fault.target.format(**params), *(a.format(**params) for a in fault.aliases)}),
        "start": iso_z(t0),
        "normal_end": iso_z(normal_end),
        "fault_start": iso_z(fault_start),
        "end": iso_z(end),
        "lines": len(out),
        "records": len(records),
        "formats": dict(sorted(Counter(r.fmt for r in records).items())),
    }
    return Scenario(out, truth, records)


def _pid(host: str, program: str) -> int:
    """A stable pid per (host, program): derived from names, so rendering order cannot change it."""
    return 300 + sum((i + 1) * ord(c) for i, c in enumerate(host + "/" + program)) % 39000


def generate_many(seed: int, count: int, **kwargs: Any) -> list[Scenario]:
    """`count` scenarios with seeds seed, seed+1, ...; with no fault_type each seed draws its own fault."""
    return [generate(seed + i, **kwargs) for i in range(count)]


def write_many(scenarios: list[Scenario], out_dir: str | Path) -> list[Path]:
    """One subdirectory per scenario (`scenario-0001/scenario.log` + `truth.json`) and a `manifest.json`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [sc.write(out / f"scenario-{i:04d}") for i, sc in enumerate(scenarios, 1)]
    manifest = [{"dir": p.parent.name, "seed": sc.truth["seed"], "fault_type": sc.truth["fault_type"],
                 "lines": sc.truth["lines"]} for p, sc in zip(paths, scenarios, strict=True)]
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return paths
