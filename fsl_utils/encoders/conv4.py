"""The Conv-4 embedding network of the few-shot papers.

Four blocks of 3x3 conv (64 filters), BatchNorm, ReLU, 2x2 max-pool (Vinyals et al. 2016,
Snell et al. 2017): 28x28 Omniglot -> 64-d, 84x84 -> 1600-d.

:func:`maml_conv4` is MAML's network: Conv-4 and a linear head, with BatchNorm that uses batch
statistics at train *and* test time (no running averages), as the MAML reference code does; at
test time the query set is normalised with its own statistics (transductive), the protocol
behind MAML's numbers.
"""

from __future__ import annotations

import torch
from torch import nn


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

    The conv weights are stored channels-last: the same convolutions run ~1.4x faster
    (forward and backward) on a CPU, the outputs are the same numbers, and ``.to(device)``,
    ``load_state_dict`` and :func:`copy.deepcopy` keep the format.
    """

    def __init__(self, in_channels: int = 1, hidden: int = 64, n_blocks: int = 4) -> None:
        blocks = [conv_block(in_channels if i == 0 else hidden, hidden) for i in range(n_blocks)]
        super().__init__(*blocks, nn.Flatten())
        self.in_channels, self.hidden = in_channels, hidden
        self.to(memory_format=torch.channels_last)

    def output_dim(self, image_size: int) -> int:
        """Embedding size for square inputs of side ``image_size``."""
        side = image_size
        for _ in range(len(self) - 1):
            side //= 2
        return self.hidden * side * side


def maml_conv4(n_way: int, in_channels: int = 1, hidden: int = 64, image_size: int = 28) -> nn.Sequential:
    """Conv-4 followed by a linear head, with batch-statistics BatchNorm (MAML's network).

    Args:
        n_way: number of output logits (the episode's ways).
        in_channels: 1 for Omniglot.
        hidden: filters per conv block (64 in the paper; 32 trains ~3x faster on a CPU).
        image_size: side of the square inputs.

    Returns:
        A model mapping (B, in_channels, image_size, image_size) to logits (B, n_way).
    """
    body = Conv4(in_channels, hidden)
    for m in body.modules():
        if isinstance(m, nn.BatchNorm2d):  # always normalise with the batch's statistics
            m.track_running_stats = False
            m.running_mean = m.running_var = m.num_batches_tracked = None
    return nn.Sequential(body, nn.Linear(body.output_dim(image_size), n_way))
