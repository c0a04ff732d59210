"""The study's CNN (27 010 parameters) with one forward pass that names its representations."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F


class Outputs(NamedTuple):
    """What one forward pass returns, batch first.

    original: (B, 784) the input as the network sees it (``uint8 / 255``).
    layer1: (B, 4, 12, 12) after conv 1->4, max-pool 2, ReLU.
    layer2: (B, 16, 5, 5) after conv 4->16, max-pool 2, ReLU.
    layer3: (B, 64) after conv 16->64 (kernel 5) and ReLU.
    logits: (B, 10) after linear 64->10 and ReLU, fed to cross-entropy.
    """

    original: torch.Tensor
    layer1: torch.Tensor
    layer2: torch.Tensor
    layer3: torch.Tensor
    logits: torch.Tensor


class StudyCNN(nn.Module):
    """The network of SPEC.md, with PyTorch's default initialisation."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, kernel_size=5)
        self.conv2 = nn.Conv2d(4, 16, kernel_size=3)
        self.conv3 = nn.Conv2d(16, 64, kernel_size=5)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> Outputs:
        """x: (B, 1, 28, 28) float32 in [0, 1]."""
        layer1 = F.relu(F.max_pool2d(self.conv1(x), 2))
        layer2 = F.relu(F.max_pool2d(self.conv2(layer1), 2))
        layer3 = F.relu(self.conv3(layer2)).flatten(1)
        logits = F.relu(self.fc(layer3))
        return Outputs(x.flatten(1), layer1, layer2, layer3, logits)


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (B, 28, 28) -> the network's float32 input (B, 1, 28, 28) = uint8 / 255."""
    return images.unsqueeze(1).to(torch.float32).div_(255.0)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
