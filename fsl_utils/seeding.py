"""Reproducible randomness: one call seeds everything and hands back a generator."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices) and return a seeded CPU generator.

    Samplers in ``fsl_utils`` take this generator instead of reading global random
    state, so an episode stream depends only on its own seed.

    Args:
        seed: any non-negative integer.
        deterministic: also ask PyTorch for deterministic kernels (slower on GPUs;
            ops without a deterministic version only warn).

    Returns:
        A ``torch.Generator`` on the CPU seeded with ``seed``.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds CUDA and MPS
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic on CUDA >= 10.2.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)
