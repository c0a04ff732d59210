"""A network of the user's kind, defined outside repscope: a small residual CNN for 8x8 digits.

It is what the quick start analyses (``examples/digits.toml``, or ``repscope.analyze``
from Python): a convolutional stem with 32 channels (32 x 8 x 8 = 2 048 values, wide
enough to be reduced by PCA before embedding), two residual blocks around a max-pool,
and a small head.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """conv 3x3 -> ReLU -> conv 3x3, added to its input, then ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))


class SmallResNet(nn.Module):
    """stem (32 x 8 x 8) -> block1 (32 x 8 x 8) -> max-pool -> block2 (32 x 4 x 4) -> head (64 -> 10)."""

    def __init__(self, channels: int = 32, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU())
        self.block1 = ResidualBlock(channels)
        self.pool = nn.MaxPool2d(2)
        self.block2 = ResidualBlock(channels)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * 16, 64), nn.ReLU(), nn.Linear(64, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block2(self.pool(self.block1(self.stem(x)))))


def build() -> SmallResNet:
    """The factory a run file beside this module names: ``resnet_digits:build``."""
    return SmallResNet()


def to_input(images: torch.Tensor) -> torch.Tensor:
    """(B, 8, 8) digits in [0, 1] -> the network's input (B, 1, 8, 8)."""
    return images.unsqueeze(1)
