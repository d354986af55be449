"""Encoders: images or sentences -> feature vectors.

* :mod:`.conv4` — the Conv-4 of the few-shot papers (trained from scratch on Omniglot) and
  :func:`maml_conv4`, MAML's network (Conv-4 and a linear head, batch-statistics BatchNorm).
* :mod:`.imagenet` — frozen ImageNet encoders (EfficientNet-Lite0, ResNet-18).
* :mod:`.features` — :func:`extract_features`, an encoder's features computed once and cached on disk.
* :mod:`.cifar_cnn` — the small CIFAR CNN of the semi- and self-supervised lectures.
* :mod:`.text` — a sentence encoder (MiniLM) for the text few-shot examples.
"""

from .cifar_cnn import CifarCNN
from .conv4 import Conv4, conv_block, maml_conv4
from .features import extract_features
from .imagenet import ImageNetEncoder, load_imagenet_encoder
from .text import TextEncoder

__all__ = ["CifarCNN", "Conv4", "ImageNetEncoder", "TextEncoder", "conv_block", "extract_features", "load_imagenet_encoder", "maml_conv4"]
