"""ONNX export of the structuring model, its model card, and the torch-vs-ONNX Runtime parity checks.

The graph's inputs are the numpy arrays of `llmid.engine.structurer.encode_lines` (chars, gen, rev_c, rev_t;
batch, token and character axes dynamic); its outputs are char_logits, token_logits, join_logits and
event_embedding. The runtime (`llmid.engine.structurer.Tagger`) feeds the same featurisation to ONNX Runtime,
so torch and the engine agree by construction; `parity` measures it.
"""

from __future__ import annotations

import io
import json
import platform
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmid.engine.structurer import MAX_CHARS, N_CHARS, encode_lines
from llmid.model_export.structurer_model import ModelConfig, StructurerNet

INPUTS = ("chars", "gen", "rev_c", "rev_t")
OUTPUTS = ("char_logits", "token_logits", "join_logits", "event_embedding")
OPSET = 17


class TorchSession:
    """Duck-types `onnxruntime.InferenceSession.run` over the torch model (for evaluation without export)."""

    def __init__(self, model: StructurerNet) -> None:
        self.model = model.eval()

    def run(self, _names: Any, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.no_grad():
            out = self.model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
        return [o.numpy() for o in out]


def export_onnx(model: StructurerNet, path: str | Path) -> Path:
    """Write the model as ONNX (dynamic batch, token and character axes); returns the path."""
    import warnings

    model = model.eval()
    feats = encode_lines([["Received", "block", "blk_123", "of", "size", "67108864"], ["done"]])
    args = tuple(torch.from_numpy(feats.inputs()[k]) for k in INPUTS)
    dyn3 = {0: "batch", 1: "tokens", 2: "chars"}
    dynamic_axes = {"chars": dyn3, "gen": dyn3, "rev_c": dyn3, "rev_t": {0: "batch", 1: "tokens"},
                    "char_logits": dyn3, "token_logits": {0: "batch", 1: "tokens"},
                    "join_logits": {0: "batch", 1: "tokens"}, "event_embedding": {0: "batch"}}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, buf, input_names=list(INPUTS), output_names=list(OUTPUTS),
                          dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True,
                          dynamo=False)
    path.write_bytes(buf.getvalue())
    return path


def load_checkpoint(path: str | Path) -> StructurerNet:
    ck = torch.load(str(path), map_location="cpu", weights_only=True)
    model = StructurerNet(ModelConfig.from_json(ck["model"]))
    model.load_state_dict(ck["state"])
    return model.eval()


def save_checkpoint(model: StructurerNet, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state": model.state_dict(), "model": model.cfg.to_json(), **(extra or {})}, str(path))


def random_inputs(batch: int, tokens: int, chars: int, seed: int) -> dict[str, np.ndarray]:
    """Fresh random model inputs of a given shape: random characters, ragged token and line lengths."""
    rng = np.random.default_rng(seed)
    b, t, c = batch, tokens, chars
    ch = np.zeros((b, t, c), dtype=np.int64)
    gen = np.zeros((b, t, c), dtype=np.float32)
    rev_c = np.broadcast_to(np.arange(c, dtype=np.int64), (b, t, c)).copy()
    rev_t = np.broadcast_to(np.arange(t, dtype=np.int64), (b, t)).copy()
    for i in range(b):
        n = int(rng.integers(1, t + 1))
        rev_t[i, :n] = np.arange(n - 1, -1, -1)
        for j in range(n):
            k = int(rng.integers(1, c + 1))
            ch[i, j, :k] = rng.integers(1, N_CHARS, size=k)
            gen[i, j, :k] = rng.integers(0, 2, size=k)
            rev_c[i, j, :k] = np.arange(k - 1, -1, -1)
    return {"chars": ch, "gen": gen, "rev_c": rev_c, "rev_t": rev_t}


def parity(model: StructurerNet, onnx_path: str | Path, lines: list[str] | None = None, *, trials: int = 8,
           seed: int = 0) -> dict[str, Any]:
    """Compare ONNX Runtime with torch: max |difference| of every output on fresh random inputs of random
    shapes, and, on real lines, whether the templates the runtime builds are identical."""
    import onnxruntime as ort

    from llmid.engine.structurer import Tagger
    from llmid.engine.tokens import normalize_template, tokenize

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ts = TorchSession(model)
    rng = random.Random(seed)
    max_diff = 0.0
    shapes = []
    for k in range(trials):
        shape = (rng.randint(1, 9), rng.randint(1, 40), rng.randint(1, MAX_CHARS))
        inputs = random_inputs(*shape, seed=seed * 1000 + k)
        a = ts.run(None, inputs)
        b = sess.run(None, inputs)
        for x, y in zip(a, b, strict=True):
            max_diff = max(max_diff, float(np.max(np.abs(x - y))) if x.size else 0.0)
        shapes.append(list(shape))
    result: dict[str, Any] = {"random_trials": trials, "random_shapes": shapes, "max_abs_diff": max_diff}
    if lines:
        toks = [tokenize(x) for x in lines]
        t_torch = Tagger(session=ts)(toks)
        t_onnx = Tagger(session=sess)(toks)
        same = sum(normalize_template(" ".join(a.masked)) == normalize_template(" ".join(b.masked))
                   for a, b in zip(t_torch, t_onnx, strict=True))
        result.update({"lines": len(lines), "identical_templates": same})
    return result


def write_card(path: str | Path, **fields: Any) -> Path:
    """The model card: what the model is, what it was trained on, with which command, its metrics, when."""
    card = {
        "name": "structurer",
        "model": "char Bi-LSTM token encoder + token Bi-LSTM + multi-scale (3, 5, 7) fuzzy-matching attention; "
                 "heads: per-character variable, per-token variable and join, per-line event embedding",
        "inputs": list(INPUTS),
        "outputs": list(OUTPUTS),
        "opset": OPSET,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    card.update(fields)
    p = Path(path)
    p.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return p
