"""ONNX Runtime sessions for the engine's learned stages: which provider, how many threads, one session per model.

Every model stage gets its session from `get_session(path)` (or `make_session` for a private one), so provider
choice lives in one place: on `cuda:N` TensorRT is preferred, then CUDA, then CPU, whichever this onnxruntime
build offers (`onnxruntime-gpu` comes with the `[gpu]` extra); on `cpu`, CPU only. Which provider a model really
runs on is logged once per model and device, because a silent fall-back to CPU on a GPU worker is the classic
"why is it slow" of model serving. A worker process calls `configure(device, threads)` once at start-up; sessions
are cached per process, so a model is loaded once per worker process, never per batch.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from llmid.errors import ConfigError

log = logging.getLogger("llmid.runtime")

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

BATCH_SIZES = {"cpu": 64, "cuda": 512}
"""Inference batch size (sequences per run call) per device kind: large batches keep a GPU busy; on CPU, small
batches keep latency low and the caches warm."""

_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


@dataclass(frozen=True, slots=True)
class Device:
    """Where sessions run: `cpu`, or `cuda` with a GPU index."""

    kind: str
    index: int = 0

    def __str__(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"


def parse_device(text: str | Device) -> Device:
    """`cpu`, `cuda` or `cuda:N`; anything else is a ConfigError naming the accepted forms."""
    if isinstance(text, Device):
        return text
    m = _DEVICE.match(str(text).strip().lower())
    if m is None:
        raise ConfigError(f"Unknown device {text!r}: use cpu, cuda or cuda:N (N = GPU index).")
    return Device(m.group(1), int(m.group(2) or 0) if m.group(1) == "cuda" else 0)


def providers_for(device: str | Device, available: list[str] | None = None) -> list[Any]:
    """The provider list for an InferenceSession, best first, restricted to what this build offers.

    CPU is always last, so a session on a machine without a usable GPU still runs (and says so)."""
    dev = parse_device(device)
    have = ort.get_available_providers() if available is None else available
    chosen: list[Any] = []
    if dev.kind == "cuda":
        if TENSORRT in have:
            cache = Path(os.environ.get("LLMID_TRT_CACHE", Path.home() / ".cache" / "llmid" / "tensorrt"))
            chosen.append((TENSORRT, {"device_id": dev.index, "trt_engine_cache_enable": True,
                                      "trt_engine_cache_path": str(cache)}))
        if CUDA in have:
            chosen.append((CUDA, {"device_id": dev.index}))
    chosen.append(CPU)
    return chosen


def default_threads(concurrency: int = 1) -> int:
    """Intra-op threads for one session: the cores shared out among the worker processes of this host."""
    return max(1, (os.cpu_count() or 1) // max(1, concurrency))


def batch_size(device: str | Device) -> int:
    """Inference batch size for the device kind (BATCH_SIZES)."""
    return BATCH_SIZES[parse_device(device).kind]


@dataclass(slots=True)
class _Config:
    device: Device
    threads: int
    spinning: bool = True
    """Whether idle intra-op threads spin (ONNX Runtime's default). Worker processes turn it off: they share the
    host's cores with other workers, and a spinning thread burns a core another worker needs (on a 2-core host,
    about a fifth of a worker's CPU time)."""


_config = _Config(Device("cpu"), default_threads())
_sessions: dict[tuple[str, str], ort.InferenceSession] = {}
_logged: set[tuple[str, str]] = set()
_lock = threading.RLock()  # re-entrant: get_session holds it while make_session logs the provider


def configure(device: str | Device = "cpu", threads: int | None = None, *, spinning: bool = True) -> Device:
    """Set this process's default device, thread count and thread spinning (a worker does it once at start-up)."""
    dev = parse_device(device)
    _config.device = dev
    _config.threads = threads if threads and threads > 0 else default_threads()
    _config.spinning = spinning
    return dev


def current_device() -> Device:
    return _config.device


def make_session(model_path: str | Path, device: str | Device | None = None, *,
                 threads: int | None = None) -> ort.InferenceSession:
    """A new InferenceSession on the best provider for `device` (default: the configured one).

    Logs once per (model, device) which provider serves it, and warns when a GPU was asked for but the session
    fell back to CPU. A missing or unreadable model is a ConfigError with one sentence."""
    dev = parse_device(device) if device is not None else _config.device
    path = Path(model_path)
    if not path.is_file():
        raise ConfigError(f"No ONNX model at {path}.")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # On a GPU the CPU threads only feed the device; on CPU they do the work, shared among worker processes.
    opts.intra_op_num_threads = 1 if dev.kind == "cuda" else (threads or _config.threads)
    opts.inter_op_num_threads = 1
    if not _config.spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers_for(dev))
    except Exception as err:  # noqa: BLE001 - onnxruntime raises bare RuntimeErrors/Fail for bad files
        raise ConfigError(f"Cannot load ONNX model {path}: {str(err).strip().splitlines()[0]}.") from None
    _say_provider(path, dev, sess.get_providers())
    return sess


def get_session(model_path: str | Path, device: str | Device | None = None) -> ort.InferenceSession:
    """The process's one session for this model and device, created on first use."""
    dev = parse_device(device) if device is not None else _config.device
    key = (str(Path(model_path).resolve()), str(dev))
    with _lock:
        sess = _sessions.get(key)
        if sess is None:
            sess = _sessions[key] = make_session(model_path, dev)
    return sess


def describe(device: str | Device | None = None) -> str:
    """One line for a worker's start-up: the device and the provider a session there would use first."""
    dev = parse_device(device) if device is not None else _config.device
    first = providers_for(dev)[0]
    name = first[0] if isinstance(first, tuple) else first
    note = ""
    if dev.kind == "cuda" and name == CPU:
        note = " (no CUDA or TensorRT provider in this onnxruntime build; install llmid[gpu])"
    return f"ONNX Runtime {ort.__version__}: {name} for {dev}{note}"


def _say_provider(path: Path, dev: Device, used: list[str]) -> None:
    key = (str(path), str(dev))
    with _lock:
        if key in _logged:
            return
        _logged.add(key)
    main = used[0] if used else CPU
    if dev.kind == "cuda" and main == CPU:
        log.warning("%s runs on CPU although %s was asked for: this onnxruntime build has no usable CUDA or "
                    "TensorRT provider (install llmid[gpu]).", path.name, dev)
    else:
        log.info("%s runs on %s (%s).", path.name, main, dev)
