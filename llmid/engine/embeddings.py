"""Template embeddings from a small pretrained language model (all-MiniLM-L6-v2, int8 ONNX), cached per template.

The reasoner looks at what an event *says* through a sentence embedding of its template: "disk /data 97% full"
and "No space left on device" land close together, "leader election won" far from both. The model is
all-MiniLM-L6-v2 (6 layers, 384 dimensions), exported by `llmid.model_export.minilm` to ONNX with the mean
pooling and L2 normalisation of sentence-transformers inside the graph, and quantised to int8 (23 MB, shipped in
`llmid/models/`). Tokenisation is the BERT uncased WordPiece of that model, reimplemented here in plain Python
(no `tokenizers`/`transformers` at run time; `tests/test_reasoner_embeddings.py` checks it token for token
against the Hugging Face tokenizer). Each distinct template string is embedded once per process (an LRU cache),
so a 10k-line file with 200 templates costs 200 model calls, not 10,000.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
ENCODER_FILE = "minilm-l6-int8.onnx"
VOCAB_FILE = "minilm-l6-vocab.txt"
DIM = 384
MAX_TOKENS = 64
"""Word pieces per template (with [CLS] and [SEP]); templates are short, and the tail of a long one adds little."""
WILDCARD_WORD = "*"
"""What a template's `<*>` becomes before embedding: a neutral token instead of three punctuation marks."""


# -- BERT uncased WordPiece (the tokenizer of all-MiniLM-L6-v2) -------------------------------------------------
def _is_punct(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF
            or 0x2F800 <= cp <= 0x2FA1F)


def _is_control(ch: str) -> bool:
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf")


def _is_space(ch: str) -> bool:
    if ch in " \t\n\r":
        return True
    return unicodedata.category(ch) == "Zs"


class WordPiece:
    """BERT's BasicTokenizer (clean, CJK split, lower-case, strip accents, split punctuation) + greedy WordPiece."""

    def __init__(self, vocab: list[str], max_chars_per_word: int = 100) -> None:
        self.vocab = {tok: i for i, tok in enumerate(vocab)}
        self.max_chars = max_chars_per_word
        self.unk = self.vocab["[UNK]"]
        self.cls = self.vocab["[CLS]"]
        self.sep = self.vocab["[SEP]"]
        self.pad = self.vocab["[PAD]"]

    @classmethod
    def from_file(cls, path: str | Path) -> WordPiece:
        return cls(Path(path).read_text(encoding="utf-8").splitlines())

    def basic(self, text: str) -> list[str]:
        out: list[str] = []
        buf: list[str] = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or _is_control(ch):
                continue
            if _is_space(ch):
                buf.append(" ")
            elif _is_cjk(cp):
                buf.extend((" ", ch, " "))
            else:
                buf.append(ch)
        for word in "".join(buf).split():
            word = unicodedata.normalize("NFD", word.lower())
            word = "".join(c for c in word if unicodedata.category(c) != "Mn")
            cur: list[str] = []
            for ch in word:
                if _is_punct(ch):
                    if cur:
                        out.append("".join(cur))
                        cur = []
                    out.append(ch)
                else:
                    cur.append(ch)
            if cur:
                out.append("".join(cur))
        return out

    def word_ids(self, word: str) -> list[int]:
        if len(word) > self.max_chars:
            return [self.unk]
        ids: list[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                found = self.vocab.get(piece)
                if found is not None:
                    break
                end -= 1
            if found is None:
                return [self.unk]
            ids.append(found)
            start = end
        return ids

    def encode(self, text: str, max_tokens: int = MAX_TOKENS) -> list[int]:
        """[CLS] pieces... [SEP], truncated to `max_tokens` in all."""
        ids: list[int] = []
        for w in self.basic(text):
            ids.extend(self._word(w))
            if len(ids) >= max_tokens - 2:
                break
        return [self.cls, *ids[: max_tokens - 2], self.sep]

    @lru_cache(maxsize=65536)  # noqa: B019 - one tokenizer per process; words repeat across templates
    def _word(self, word: str) -> tuple[int, ...]:
        return tuple(self.word_ids(word))


_WILD = re.compile(r"<\*>")
_SPACES = re.compile(r"\s+")


def template_text(template: str) -> str:
    """The text that is embedded for a template: `<*>` replaced by a neutral word, whitespace collapsed."""
    return _SPACES.sub(" ", _WILD.sub(WILDCARD_WORD, template)).strip()[:1000]


# -- the embedder --------------------------------------------------------------------------------------------------
class TemplateEmbedder:
    """Unit-norm 384-d embedding per template string, from the int8 ONNX encoder, with an LRU cache.

    `embed(templates)` returns an (n, 384) float32 array; repeated strings cost one model call per process.
    Thread-safe (one lock around the cache and the session call).

    One template per model call by default: the int8 encoder quantises activations dynamically, with one scale
    over the whole input tensor, so a template's vector would depend on which others (and how much padding)
    shared its batch — and a worker that embeds a different set than the in-process run would score
    differently. Templates are few and cached, so this costs ~2 ms per new template."""

    def __init__(self, model_path: str | Path | None = None, vocab_path: str | Path | None = None, *,
                 cache_size: int = 50_000, batch: int = 1, device: str | None = None) -> None:
        self.model_path = Path(model_path) if model_path else MODELS_DIR / ENCODER_FILE
        self.vocab_path = Path(vocab_path) if vocab_path else MODELS_DIR / VOCAB_FILE
        self.cache_size = cache_size
        self.batch = batch
        self.device = device
        self._tok: WordPiece | None = None
        self._session: Any = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.calls = 0
        """Sequences sent through the model so far (cache misses)."""

    @property
    def available(self) -> bool:
        return self.model_path.is_file() and self.vocab_path.is_file()

    def _load(self) -> None:
        if self._session is None:
            from llmid.engine.runtime import get_session

            self._tok = WordPiece.from_file(self.vocab_path)
            self._session = get_session(self.model_path, self.device)

    def embed(self, templates: Iterable[str]) -> np.ndarray:
        items = list(templates)
        out = np.zeros((len(items), DIM), dtype=np.float32)
        with self._lock:
            missing: dict[str, list[int]] = {}
            for i, t in enumerate(items):
                text = template_text(t)
                v = self._cache.get(text)
                if v is None:
                    missing.setdefault(text, []).append(i)
                else:
                    self._cache.move_to_end(text)
                    out[i] = v
            if missing:
                texts = list(missing)
                vecs = self._encode(texts)
                for text, v in zip(texts, vecs, strict=True):
                    self._cache[text] = v
                    for i in missing[text]:
                        out[i] = v
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return out

    def _encode(self, texts: list[str]) -> np.ndarray:
        self._load()
        assert self._tok is not None
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        encoded = [self._tok.encode(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))  # similar lengths batch together
        for s in range(0, len(order), self.batch):
            idx = order[s: s + self.batch]
            width = max(len(encoded[i]) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for r, i in enumerate(idx):
                ids[r, : len(encoded[i])] = encoded[i]
                mask[r, : len(encoded[i])] = 1
            (vec,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})
            out[idx] = vec
            self.calls += len(idx)
        return out


_default: TemplateEmbedder | None = None
_default_lock = threading.Lock()


def default_embedder() -> TemplateEmbedder:
    """The process's shared embedder over the shipped model (one cache for every pipeline in the process)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = TemplateEmbedder()
        return _default


def model_card(name: str) -> dict[str, Any]:
    """The JSON card shipped next to a model file (`models/<name>.json`); {} when absent."""
    p = MODELS_DIR / f"{name}.json"
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}
