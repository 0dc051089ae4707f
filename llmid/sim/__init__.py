"""Fault-injection simulator of a cloud AI platform: mixed-format incident logs with ground truth.

`generate(seed)` gives a `Scenario` (physical log lines + truth: root-cause line, fault chain, recovery
action and target). It is the demo input on a fresh machine and training/evaluation data for the models.
"""

from llmid.sim.faults import FAULTS, Fault, Symptom
from llmid.sim.scenario import Scenario, generate, generate_many, write_many

__all__ = ["FAULTS", "Fault", "Scenario", "Symptom", "generate", "generate_many", "write_many"]
