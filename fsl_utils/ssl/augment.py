"""Augmentations for semi- and self-supervised training, built from torchvision's transforms.

Every augmentation here is a :class:`BatchAugment`: it takes a uint8 batch of shape
(B, C, H, W) and returns a uint8 batch of the same shape, each image transformed with its
*own* random parameters (torchvision applies one draw to a whole batch tensor, which would
give every image the same crop). The per-image loop runs single-threaded: for 32x32 images,
PyTorch's thread pool costs far more than it saves (measured ~60x slower with 2 threads on a
busy 2-core machine). Typical CPU cost per 32x32 image: weak 0.14 ms, strong 0.8 ms, SimCLR
1.7 ms (0.8 ms without hue jitter).

* :func:`weak_augment` — FixMatch's weak: flip + translation by up to 4 pixels.
* :func:`strong_augment` — FixMatch's strong: weak + ``RandAugment`` + Cutout (random erasing).
* :func:`simclr_augment` — SimCLR/BYOL views: random resized crop, flip, colour jitter,
  grayscale, optional Gaussian blur (SimCLR drops blur on CIFAR's 32x32 images).
  ``simclr_augment(batched=True)`` draws the same random operations for every image but
  applies them to the whole batch at once with tensor operations (:class:`BatchedSimCLR`):
  about 0.02 ms per 32x32 image instead of 1.7 ms, which makes SimCLR's views nearly free
  next to the network on a CPU.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import math

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align
from torchvision.transforms import v2

from ..data.containers import to_float


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class BatchAugment:
    """Apply a per-image torchvision transform to every image of a batch independently.

    Args:
        transform: a callable on one uint8 image (C, H, W) returning a uint8 image with the
            same channels (e.g. a ``torchvision.transforms.v2.Compose``); all outputs must share
            one size (H', W').
        name: a short description (shown by ``repr``).

    Call:
        ``augment(images)`` with images uint8 of shape (B, C, H, W) (any device; the work
        is done on the CPU) -> uint8 tensor of shape (B, C, H', W') on the input's device
        (H' = H and W' = W unless the transform resizes).
    """

    def __init__(self, transform: Callable[[torch.Tensor], torch.Tensor], name: str = "") -> None:
        self.transform, self.name = transform, name

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4:
            raise ValueError(f"expected a batch of shape (B, C, H, W), got {tuple(images.shape)}; add a batch axis with x[None]")
        if images.dtype != torch.uint8:
            raise TypeError(f"expected uint8 images (0..255), got {images.dtype}; augment before converting with fsl_utils.data.to_float()")
        cpu = images.cpu()
        with _single_thread():
            out = torch.stack([self.transform(image) for image in cpu])
        if out.shape[:2] != images.shape[:2]:
            raise ValueError(f"the transform changed the number of channels: {tuple(images.shape[1:])} -> {tuple(out.shape[1:])}")
        return out.to(images.device)

    def __repr__(self) -> str:
        return f"BatchAugment({self.name or self.transform!r})"


def _weak(size: int, padding: int) -> list[v2.Transform]:
    return [v2.RandomHorizontalFlip(), v2.RandomCrop(size, padding=padding, padding_mode="reflect")]


def weak_augment(size: int = 32, padding: int = 4) -> BatchAugment:
    """FixMatch's weak augmentation: random horizontal flip and a random translation of up to
    ``padding`` pixels (reflect-padded crop)."""
    return BatchAugment(v2.Compose(_weak(size, padding)), f"weak(flip, translate ±{padding}px)")


def strong_augment(size: int = 32, padding: int = 4, num_ops: int = 2, magnitude: int = 9, cutout: float = 0.5) -> BatchAugment:
    """FixMatch's strong augmentation: weak + torchvision's ``RandAugment`` (``num_ops`` random
    operations at ``magnitude`` out of 30 bins, Cubuk et al. 2020) + Cutout of a square up to
    ``cutout`` × the image side (random erasing filled with grey)."""
    ops = _weak(size, padding) + [v2.RandAugment(num_ops=num_ops, magnitude=magnitude)]
    if cutout > 0:
        area = cutout**2
        ops.append(v2.RandomErasing(p=1.0, scale=(area / 4, area), ratio=(1.0, 1.0), value=127))
    return BatchAugment(v2.Compose(ops), f"strong(weak + RandAugment({num_ops}, {magnitude}) + cutout {cutout})")


def simclr_augment(
    size: int = 32,
    scale: tuple[float, float] = (0.2, 1.0),
    jitter: float = 0.4,
    hue: float = 0.1,
    p_jitter: float = 0.8,
    p_gray: float = 0.2,
    p_blur: float = 0.0,
    crop: bool = True,
    color: bool = True,
    batched: bool = False,
) -> BatchAugment | BatchedSimCLR:
    """SimCLR's view generator (Chen et al. 2020, appendix A), also used by BYOL.

    Args:
        size: output side.
        scale: area range of the random resized crop (SimCLR: 0.08–1 on ImageNet; 0.2–1 is the
            common choice for 32x32 images).
        jitter: brightness/contrast/saturation strength of the colour jitter.
        hue: hue strength (0 skips the costly hue conversion).
        p_jitter: probability of applying the colour jitter.
        p_gray: probability of converting to grayscale.
        p_blur: probability of a Gaussian blur (SimCLR uses 0.5 on ImageNet, none on CIFAR).
        crop: include the crop and flip (switch off to study colour alone).
        color: include jitter and grayscale (switch off to study crops alone).
        batched: the same augmentation computed for the whole batch with tensor operations
            (:class:`BatchedSimCLR`; no blur), ~80x faster than torchvision's per-image loop.
    """
    if batched:
        if p_blur > 0:
            raise ValueError("simclr_augment(batched=True) has no blur; use p_blur=0 or batched=False")
        return BatchedSimCLR(size, scale, jitter, hue, p_jitter, p_gray, crop, color)
    ops: list[v2.Transform] = []
    if crop:
        ops += [v2.RandomResizedCrop(size, scale=scale, antialias=True), v2.RandomHorizontalFlip()]
    if color:
        ops += [
            v2.RandomApply([v2.ColorJitter(jitter, jitter, jitter, hue)], p=p_jitter),
            v2.RandomGrayscale(p=p_gray),
        ]
    if p_blur > 0:
        ops.append(v2.RandomApply([v2.GaussianBlur(kernel_size=3, sigma=(0.1, 2.0))], p=p_blur))
    if not ops:
        raise ValueError("simclr_augment needs crop=True or color=True or p_blur > 0")
    what = ", ".join(k for k, on in (("crop", crop), ("colour", color), ("blur", p_blur > 0)) if on)
    return BatchAugment(v2.Compose(ops), f"simclr({what})")


_GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


class BatchedSimCLR:
    """:func:`simclr_augment`'s views for a whole batch at once: every image still gets its own
    random crop box (area ``scale``, aspect 3/4–4/3, as torchvision's ``RandomResizedCrop``),
    flip, colour-jitter factors in their own random order (``ColorJitter``), jitter with
    probability ``p_jitter`` and grayscale with probability ``p_gray``; the crops are resized
    with ``roi_align`` (bilinear, averaging when shrinking) and the colour operations are
    torchvision's formulas applied with per-image factors. Draws come from torch's global
    generator (or ``generator``), so ``torch.manual_seed`` reproduces the views.

    Call: ``augment(images)`` with uint8 images (B, 3, H, W) -> uint8 (B, 3, size, size).
    """

    def __init__(self, size: int = 32, scale: tuple[float, float] = (0.2, 1.0), jitter: float = 0.4, hue: float = 0.1,
                 p_jitter: float = 0.8, p_gray: float = 0.2, crop: bool = True, color: bool = True) -> None:
        if not (crop or color):
            raise ValueError("simclr_augment needs crop=True or color=True")
        self.size, self.scale, self.jitter, self.hue = size, scale, jitter, hue
        self.p_jitter, self.p_gray, self.crop, self.color = p_jitter, p_gray, crop, color

    def boxes(self, n: int, height: int, width: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Crop boxes (n, 4) as (x1, y1, x2, y2) in pixels, drawn as ``RandomResizedCrop.get_params``
        does: 10 tries of (area, aspect) per image, the first that fits, else the whole image."""
        rand = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
        area = height * width * (self.scale[0] + (self.scale[1] - self.scale[0]) * rand(n, 10))
        aspect = torch.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * rand(n, 10))
        w, h = (area * aspect).sqrt().round(), (area / aspect).sqrt().round()
        fits = (w >= 1) & (w <= width) & (h >= 1) & (h <= height)
        first = fits.float().argmax(dim=1, keepdim=True)
        w = torch.where(fits.any(1), w.gather(1, first)[:, 0], torch.tensor(float(width)))
        h = torch.where(fits.any(1), h.gather(1, first)[:, 0], torch.tensor(float(height)))
        y = ((height - h + 1) * rand(n)).floor().clamp(max=height - h)
        x = ((width - w + 1) * rand(n)).floor().clamp(max=width - w)
        return torch.stack([x, y, x + w, y + h], dim=1)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected a batch of RGB images (B, 3, H, W), got {tuple(images.shape)}")
        if images.dtype != torch.uint8:
            raise TypeError(f"expected uint8 images (0..255), got {images.dtype}; augment before converting with fsl_utils.data.to_float()")
        n, _, height, width = images.shape
        x = to_float(images)
        if self.crop:
            boxes = self.boxes(n, height, width, generator)
            rois = torch.cat([torch.arange(n, dtype=x.dtype, device=x.device)[:, None], boxes.to(x.device)], dim=1)
            x = roi_align(x, rois, (self.size, self.size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)
            flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        elif (height, width) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
        if self.color:
            x = self._colour(x, generator)
        return x.mul(255).round_().to(torch.uint8)

    def _colour(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        n = len(x)
        rand = lambda *shape: torch.rand(*shape, generator=generator).to(x.device)  # noqa: E731
        s = self.jitter
        factors = torch.stack([1 + s * (2 * rand(n) - 1), 1 + s * (2 * rand(n) - 1), 1 + s * (2 * rand(n) - 1),
                               self.hue * (2 * rand(n) - 1)], dim=1)
        order = rand(n, 4).argsort(dim=1)  # every image its own order of the four operations, as ColorJitter
        jitter = rand(n) < self.p_jitter
        for k in range(4):
            for op in range(4):
                sel = jitter & (order[:, k] == op)
                if op == 3 and self.hue == 0 or not sel.any():
                    continue
                x[sel] = _colour_op(op, x[sel], factors[sel, op].view(-1, 1, 1, 1))
        gray = rand(n) < self.p_gray
        return torch.where(gray[:, None, None, None], _grayscale(x).expand_as(x), x)

    def __repr__(self) -> str:
        return f"BatchedSimCLR(size={self.size}, crop={self.crop}, colour={self.color})"


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luminance."""
    return (_GRAY[0] * x[:, 0] + _GRAY[1] * x[:, 1] + _GRAY[2] * x[:, 2]).unsqueeze(1)


def _colour_op(op: int, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """torchvision's adjust_brightness / contrast / saturation / hue with per-image factors f (B, 1, 1, 1)."""
    if op == 0:
        return (x * f).clamp_(0, 1)
    if op == 1:
        return (f * x + (1 - f) * _grayscale(x).mean(dim=(1, 2, 3), keepdim=True)).clamp_(0, 1)
    if op == 2:
        return (f * x + (1 - f) * _grayscale(x)).clamp_(0, 1)
    r, g, b = x.unbind(dim=1)  # hue: RGB -> HSV, rotate h, back
    maxc, minc = x.max(dim=1).values, x.min(dim=1).values
    v, delta = maxc, maxc - minc
    sat = delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    d = torch.where(delta > 0, delta, torch.ones_like(delta))
    h = torch.where(maxc == r, (g - b) / d, torch.where(maxc == g, 2 + (b - r) / d, 4 + (r - g) / d))
    h = torch.where(delta > 0, (h / 6) % 1, torch.zeros_like(h))
    h = (h + f[:, 0]) % 1
    i = (h * 6).floor()
    frac = h * 6 - i
    p, q, t = v * (1 - sat), v * (1 - sat * frac), v * (1 - sat * (1 - frac))
    i = i.long() % 6
    choose = lambda *c: torch.stack(c, 0).gather(0, i.unsqueeze(0)).squeeze(0)  # noqa: E731
    return torch.stack([choose(v, q, p, p, t, v), choose(t, v, v, q, p, p), choose(p, p, t, v, v, q)], dim=1)
