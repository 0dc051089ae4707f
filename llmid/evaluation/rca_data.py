"""Data of the root-cause and anomaly benchmarks, shared by `llmid eval rca` and `llmid train reasoner`.

- Simulator cases: `sim_case(seed, split)` generates a scenario, parses it with the real ingest path and the
  template miner, and keeps each record's role from the ground truth (background, root, root-repeat, symptom).
  Training uses seeds `TRAIN_SEEDS` with the "train" phrasings; evaluation uses seeds from `HELDOUT_SEED_BASE`
  with the held-out "test" phrasings (`llmid.sim.faults.split_phrasings`), so both the scenarios and the wording
  of their faults are new to the model. Scenario size, timing and traffic are drawn per seed
  (`scenario_kwargs`), the same way for both.
- HDFS sessions (`../shared/data/rca/hdfs_v1_sample`): one graph per block id. Chronological split: the blocks
  first seen in the first 20,000 lines of HDFS.log (`hdfs_20k_block_labels.csv`, 1,782 blocks) are the earlier
  sessions and train; every later block of the 100k sample (6,158) is the test set.
- BGL alerts (`../shared/data/rca/bgl_2k`): fixed windows of `BGL_WINDOW` consecutive lines; a window is
  anomalous when it holds an alert line. Chronological split: the first `BGL_TRAIN_FRACTION` of the windows train.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

from llmid.config import Settings
from llmid.documents import LogRecord
from llmid.engine.graph import GraphInputs, GraphStream, Reference, graph_inputs
from llmid.engine.structurer import Structurer
from llmid.engine.windows import Window, Windower
from llmid.ingest_pipelines.sources import read_records

TRAIN_SEEDS = range(0, 100_000)
HELDOUT_SEED_BASE = 1_000_000
"""Held-out scenarios use seeds HELDOUT_SEED_BASE + i and the held-out phrasings."""
FAULT_ROLES = frozenset({"root", "root-repeat", "symptom"})
BGL_WINDOW = 20
BGL_TRAIN_FRACTION = 0.8
DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "rca"


def data_root(path: str | os.PathLike[str] | None = None) -> Path:
    """`../shared/data/rca` next to the repository, or `$LLMID_RCA_DATA`, or the given path."""
    return Path(path or os.environ.get("LLMID_RCA_DATA") or DEFAULT_DATA)


# -- simulator -------------------------------------------------------------------------------------------------
def scenario_kwargs(seed: int) -> dict[str, Any]:
    """Per-seed scenario shape: normal period, fault duration and background rate vary between scenarios."""
    rng = Random(f"llmid-rca-shape:{seed}")
    return {"normal_minutes": rng.uniform(20.0, 40.0), "fault_minutes": rng.uniform(6.0, 14.0),
            "rate": rng.uniform(1.0, 2.5)}


@dataclass(slots=True)
class SimCase:
    seed: int
    split: str
    truth: dict[str, Any]
    records: list[LogRecord]
    roles: dict[int, str] = field(default_factory=dict)
    """LineId of a record's first line → its role in the scenario."""

    def fresh_records(self) -> list[LogRecord]:
        """Copies of the parsed records without any engine annotation (each run gets its own)."""
        return [dataclasses.replace(r, params=[], fields=dict(r.fields), template_id=None, template=None,
                                    anomaly_score=0.0, root_cause_score=0.0, incident_id=None)
                for r in self.records]


def sim_case(seed: int, split: str, *, fault_type: str | None = None, **kwargs: Any) -> SimCase:
    """Generate, write to a temporary file, read back with the real ingest path; roles from the truth."""
    from llmid.sim import generate

    shape = scenario_kwargs(seed)
    shape.update(kwargs)
    sc = generate(seed, phrasings=split, fault_type=fault_type, **shape)
    fd, path = tempfile.mkstemp(prefix="llmid-sim-", suffix=".log")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(sc.text())
        records = list(read_records(path, None))
    finally:
        os.unlink(path)
    for r in records:
        r.source = f"sim-{seed}"
    roles = {r.line: r.role for r in sc.records}
    return SimCase(seed, split, sc.truth, records, roles)


def structurer(settings: Settings) -> Structurer:
    """A fresh structurer of the kind the pipeline would use with these settings (the default: learned when its
    model is installed, else the baseline miner), so the reasoner is trained and scored on the templates that
    `llmid analyze` produces."""
    return Structurer.from_state(None, settings.similarity, settings.structurer, settings.structurer_model)


def structured_windows(records: list[LogRecord], settings: Settings) -> list[Window]:
    """Records → templates (fresh structurer) → windows, exactly as the pipeline does it."""
    structurer(settings).structure(records)
    w = Windower(settings.window_seconds, settings.window_max_lines)
    return list(w.add(records)) + list(w.flush())


def window_label(window: Window, roles: dict[int, str]) -> bool:
    return any(roles.get(r.line_id) in FAULT_ROLES for r in window.records)


# -- HDFS ------------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Session:
    block_id: str
    label: int
    events: list[str]


def hdfs_sessions(root: Path | None = None) -> tuple[list[Session], list[Session], dict[str, str]]:
    """(train, test, templates): chronological split of the 100k-sample sessions (see module docstring)."""
    d = data_root(root) / "hdfs_v1_sample"
    templates = {r["TemplateId"]: r["Template"] for r in csv.DictReader((d / "hdfs_100k_templates.csv").open())}
    sessions: dict[str, Session] = {}
    with (d / "hdfs_100k_sessions.jsonl").open(encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            sessions[o["block_id"]] = Session(o["block_id"], int(o["label"]), list(o["events"]))
    early = [r["BlockId"] for r in csv.DictReader((d / "hdfs_20k_block_labels.csv").open())]
    early_set = set(early)
    train = [sessions[b] for b in early if b in sessions]
    test = [s for b, s in sessions.items() if b not in early_set]
    return train, test, templates


def session_records(s: Session, templates: dict[str, str]) -> list[LogRecord]:
    return [LogRecord(line_id=i + 1, source=s.block_id, offset=i, message=templates[t], content=templates[t],
                      level="INFO", template_id=t, template=templates[t]) for i, t in enumerate(s.events)]


def hdfs_reference(train: list[Session], templates: dict[str, str]) -> Reference:
    """The normal profile: every normal training session (no decay)."""
    ref = Reference()
    for s in train:
        if s.label == 0:
            ref.absorb_records(session_records(s, templates), decay=1.0)
    return ref


def hdfs_graph(s: Session, templates: dict[str, str], ref: Reference) -> GraphInputs:
    return graph_inputs(session_records(s, templates), ref)


# -- BGL -------------------------------------------------------------------------------------------------------
def bgl_windows(root: Path | None = None, settings: Settings | None = None) -> tuple[list[Window], list[bool]]:
    """BGL 2k structured like the pipeline does, in windows of BGL_WINDOW lines, with the alert label of each."""
    path = data_root(root) / "bgl_2k" / "BGL_2k.log"
    records = list(read_records(str(path), "BGL"))
    structurer(settings or Settings()).structure(records)
    windows: list[Window] = []
    labels: list[bool] = []
    for i in range(0, len(records), BGL_WINDOW):
        chunk = records[i: i + BGL_WINDOW]
        w = Window(source="bgl", index=len(windows), records=chunk)
        ts = [r.timestamp for r in chunk if r.timestamp is not None]
        w.start, w.end = (min(ts), max(ts)) if ts else (None, None)
        windows.append(w)
        labels.append(any(r.fields.get("Label", "-") != "-" for r in chunk))
    return windows, labels


def bgl_line_alert(rec: LogRecord) -> bool:
    return rec.fields.get("Label", "-") != "-"


def bgl_stream() -> GraphStream:
    """The stream BGL windows go through: a short normal period (windows are 20 lines) and no time gap limit."""
    return GraphStream(baseline_windows=3, baseline_records=0, context_gap=None)
