"""One settings object. Precedence: command-line flags > environment `LLMID_*` > TOML file > embedded defaults.

The file is `--config PATH`, else `$LLMID_CONFIG`, else `./llmid.toml`, else `~/.config/llmid/config.toml`
(first that exists). Every field can be set in all three places: `window_seconds` is `LLMID_WINDOW_SECONDS` in
the environment and `window_seconds = 60` in the file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from llmid.errors import ConfigError

ENV_PREFIX = "LLMID_"


@dataclass(slots=True)
class Settings:
    store: str = "sqlite:///./llmid.db"
    """Where results go (see `open_store`)."""
    log_format: str | None = None
    """Header template or preset name; None = detect per line."""
    window_seconds: float = 300.0
    """Reasoning window length on the source's clock."""
    window_max_lines: int = 2000
    """A window also closes after this many records (bounds memory and latency)."""
    baseline_windows: int = 3
    """The normal period of each source: at least this many windows before any incident can be raised..."""
    baseline_records: int = 1000
    """...and at least this many records (a short first window alone says little about normal)."""
    anomaly_threshold: float = 0.5
    """Window anomaly score at or above which an incident is raised."""
    reasoner: str = "auto"
    """Which reasoner scores windows: "learned" (the event-graph model, models/reasoner.onnx), "baseline"
    (the rule-based reference: novelty + Poisson surprise, earliest anomalous event first), or "auto"
    (learned when the model file is installed, else baseline)."""
    reasoner_model: str | None = None
    """Path of a learned reasoner ONNX model (its card JSON beside it); None = the shipped one."""
    batch_size: int = 1000
    """Records per engine batch and per store transaction."""
    max_line_bytes: int = 65536
    """Longer lines are truncated (with a warning) so one giant line cannot exhaust memory."""
    similarity: float = 0.7
    """Template miner: share of a line's tokens that must equal the template's (masked values count as equal)
    for the line to join it; 0.7 was chosen on the 12 Loghub-2k systems present, see benchmarks/RESULTS.md."""
    structurer: str = "baseline"
    """Which structurer mines templates: "learned" (models/structurer.onnx behind the miner's fast paths),
    "baseline" (the rule-based miner, the default until the learned one is validated end to end: its batched model
    calls must give the same templates in-process, on workers and on cluster runs), or "auto" (learned when the
    model file is installed)."""
    structurer_model: str | None = None
    """Path of a structurer ONNX model; None = the shipped one (or $LLMID_STRUCTURER_MODEL)."""
    confidence_floor: float = 0.3
    """Safety gate: below this confidence mean only escalate_to_human is allowed."""
    planner: str = "auto"
    """Which planner recommends recovery actions: "learned" (the actor-critic, models/planner.onnx), "baseline"
    (the keyword runbook) or "auto" (learned when the model file is installed, else baseline)."""
    planner_model: str | None = None
    """Path of a learned planner ONNX model (its card JSON beside it); None = the shipped one."""
    safety_policy: str | None = None
    """Safety policy file (TOML or JSON: allow-lists, blast radius, rate limits, maintenance windows, confidence
    floor, executors); None = the built-in baseline policy."""
    execute: bool = False
    """Run approved actions through the policy's executor hooks. Off unless switched on explicitly."""
    broker: str | None = None
    """Celery broker URL for scale-out; None = run every stage in-process."""
    broker_max_inflight: int = 16
    """`ingest --broker` waits (backpressure) while this many chunks are sent but not yet structured."""
    broker_visibility_timeout: float = 300.0
    """Seconds before Redis hands a message that a dead worker had taken to another worker."""
    broker_retries: int = 8
    """Retries (exponential backoff, up to a minute apart) of a message failing on store errors before it is
    dead-lettered; other errors get 2."""
    broker_stall_seconds: float = 30.0
    """`ingest --broker --wait` re-sends unfinished work after this long without progress (lost messages)."""
    quiet: bool = False
    """No progress bars or warnings."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coerce(name: str, raw: Any, source: str) -> Any:
    """Convert a file/env value to the field's type, with a clear error naming where it came from."""
    default = getattr(Settings, name, None)
    ftype = Settings.__dataclass_fields__[name].type
    try:
        if "bool" in str(ftype):
            if isinstance(raw, bool):
                return raw
            s = str(raw).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if "float" in str(ftype):
            return float(raw)
        if "int" in str(ftype):
            return int(raw)
        if raw is None or (isinstance(raw, str) and raw == "" and default is None):
            return None
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"Invalid value {raw!r} for {name} in {source}.") from None


def _config_file(explicit: str | None) -> Path | None:
    candidates = [explicit, os.environ.get(ENV_PREFIX + "CONFIG"), "llmid.toml", "~/.config/llmid/config.toml"]
    for i, c in enumerate(candidates):
        if not c:
            continue
        p = Path(c).expanduser()
        if p.is_file():
            return p
        if i < 2:
            raise ConfigError(f"Config file {c} does not exist.")
    return None


def load_settings(flags: dict[str, Any] | None = None, config_path: str | None = None) -> Settings:
    """Build the effective settings; `flags` holds only the options the user actually gave."""
    names = [f.name for f in fields(Settings)]
    values: dict[str, Any] = {}
    path = _config_file(config_path)
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"Cannot read config file {path}: {e}.") from None
        data = data.get("llmid", data)
        for key, raw in data.items():
            if key not in names:
                raise ConfigError(f"Unknown setting {key!r} in {path}; known: {', '.join(names)}.")
            values[key] = _coerce(key, raw, str(path))
    for name in names:
        env = os.environ.get(ENV_PREFIX + name.upper())
        if env is not None:
            values[name] = _coerce(name, env, f"${ENV_PREFIX}{name.upper()}")
    for name, raw in (flags or {}).items():
        if raw is not None:
            values[name] = raw
    return Settings(**values)
