"""Batched image augmentation for supervised training on a few labels.

* :func:`random_crop_flip` — the standard CIFAR augmentation (reflect-pad, random crop, flip).
* :func:`random_affine` — small rotations, shears, zooms and shifts for handwriting.

Both take float images (B, C, H, W) and a ``torch.Generator``, the signature of
:func:`fsl_utils.training.train_supervised`'s ``augment``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(x: torch.Tensor, generator: torch.Generator | None = None, padding: int = 4) -> torch.Tensor:
    """The standard CIFAR augmentation, batched: pad by reflection, crop back at a random
    offset, flip horizontally with probability 1/2 (each image independently).

    Args:
        x: float images of shape (B, C, H, W).
        generator: CPU generator for the random offsets and flips.
        padding: maximum shift in pixels.

    Returns:
        Augmented images of shape (B, C, H, W).
    """
    b, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4, mode="reflect")
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :]).to(x.device)  # (B, H)
    cols = (dx[:, None] + torch.arange(w)[None, :]).to(x.device)  # (B, W)
    out = padded[torch.arange(b, device=x.device)[:, None, None, None], torch.arange(x.shape[1], device=x.device)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


def _uniform(lo_hi: float | tuple[float, float], n: int, generator: torch.Generator | None, symmetric: bool = True) -> torch.Tensor:
    lo, hi = (-lo_hi, lo_hi) if isinstance(lo_hi, (int, float)) and symmetric else lo_hi  # type: ignore[misc]
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def random_affine(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    degrees: float | tuple[float, float] = 15.0,
    translate: float = 0.1,
    scale: tuple[float, float] = (0.8, 1.1),
    shear: float | tuple[float, float] = 10.0,
    fill: float = 0.0,
) -> torch.Tensor:
    """A random rotation, shear, scaling and translation per image, batched (bilinear).

    Suited to handwritten characters (e.g. Omniglot), where crops and flips would change
    the symbol but a small affine distortion keeps it.

    Args:
        x: float images of shape (B, C, H, W).
        generator: CPU generator for the parameters.
        degrees: rotation range in degrees, ``d`` meaning (-d, d), counter-clockwise positive.
        translate: maximum shift as a fraction of the side, in each direction.
        scale: range of the zoom factor.
        shear: horizontal shear range in degrees, ``s`` meaning (-s, s).
        fill: value of pixels that come from outside the image (0 for dark backgrounds).

    Returns:
        Transformed images of shape (B, C, H, W).
    """
    if x.ndim != 4:
        raise ValueError(f"random_affine takes a batch (B, C, H, W), got shape {tuple(x.shape)}")
    b = x.shape[0]
    angle = torch.deg2rad(_uniform(degrees, b, generator))
    shear_ = torch.tan(torch.deg2rad(_uniform(shear, b, generator)))
    zoom = _uniform(tuple(scale), b, generator, symmetric=False)  # type: ignore[arg-type]
    shift = torch.stack([_uniform(translate, b, generator), _uniform(translate, b, generator)], dim=1) * 2  # [-1, 1] coords
    cos, sin, one, zero = torch.cos(angle), torch.sin(angle), torch.ones(b), torch.zeros(b)
    # forward map A = zoom * R(angle) @ Shear; image rows grow downwards, hence the sign of sin
    rot = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)
    shr = torch.stack([torch.stack([one, shear_], 1), torch.stack([zero, one], 1)], 1)
    forward = zoom[:, None, None] * rot @ shr
    inverse = torch.linalg.inv(forward)  # affine_grid maps output coordinates to input ones
    theta = torch.cat([inverse, -(inverse @ shift[:, :, None])], dim=2).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill

