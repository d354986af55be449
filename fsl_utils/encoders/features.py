"""Features computed once: :func:`extract_features` runs an encoder over a uint8 image tensor
with :func:`~fsl_utils.evaluation.embed` (the one batched inference loop) and caches the result on
disk, keyed by a fingerprint of the images and the encoder.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from ..data.paths import cache_dir, drop_cache, write_cache
from ..evaluation.inference import embed
from .imagenet import Preprocess


def _fingerprint(encoder: nn.Module, images: torch.Tensor) -> str:
    """A short hash of the images (shape, dtype, a sample of values) and the encoder
    (input sizes of its Preprocess modules, the first values of every weight)."""
    sample = images.flatten()[:: max(1, images.numel() // 100_000)].cpu()
    sizes = [m.input_size for m in encoder.modules() if isinstance(m, Preprocess)]
    weights = [p.detach().flatten()[:8].float().cpu() for p in encoder.parameters()]
    h = hashlib.sha1(repr((tuple(images.shape), str(images.dtype), sizes, len(weights))).encode())
    h.update(sample.numpy().tobytes())
    if weights:
        h.update(torch.cat(weights).numpy().tobytes())
    return h.hexdigest()[:12]


@torch.no_grad()
def extract_features(
    encoder: nn.Module,
    images: torch.Tensor,
    batch_size: int = 128,
    device: torch.device | str | None = None,
    cache_key: str | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Features of every image, computed once in eval mode (and cached on disk if asked).

    Args:
        encoder: maps float (B, C, H, W) in [0, 1] to (B, d) (or to any (B, ...) shape,
            e.g. the activations of :meth:`ImageNetEncoder.split`'s bottom part).
        images: uint8 (N, C, H, W) or float in [0, 1].
        batch_size: images per forward pass.
        device: where to run; default the encoder's device.
        cache_key: if given, features are stored in
            ``cache_dir()/features-<cache_key>-<hash>.pt`` and reloaded next time. The
            hash covers the image tensor's size and a sample of its values, the
            encoder's input size and a sample of its weights, so a changed encoder
            never reads stale features.
        progress: show a tqdm progress bar.

    Returns:
        float32 CPU tensor of shape (N, d) (or (N, ...)).
    """
    path: Path | None = None
    if cache_key is not None:
        digest = _fingerprint(encoder, images)
        path = cache_dir() / f"features-{cache_key}-{digest}.pt"
        if path.is_file():
            try:
                return torch.load(path, weights_only=True)
            except Exception:
                drop_cache(path)
    feats = embed(encoder, images, batch_size, device, progress=progress, desc="features")
    if path is not None:
        write_cache(feats, path)  # atomic, best effort
    return feats
