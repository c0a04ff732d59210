"""Networks whose layers return token sequences, defined outside repscope: a small vision
transformer and a GRU for scikit-learn's 8x8 digits.

Their layers are what a transformer or an RNN gives: ``(batch, tokens, features)``
sequences, and, for the GRU, a tuple ``(output, hidden)``. A run names what to read of
each (``tokens``, ``element``, ``read``; see README, "Your network, your data")::

    [model]
    factory = "sequence_digits:TinyViT"
    layers = [
        { path = "blocks.0", tokens = "cls" },     # blocks.0[cls]: the class token, 16 values
        { path = "blocks.1", tokens = "mean" },    # blocks.1[mean]: the mean over the 17 tokens
        { path = "head", read = "input" },         # head[input]: what the classifier is given
    ]

    [model]
    factory = "sequence_digits:DigitsGRU"
    layers = [{ path = "gru", element = 0, tokens = -1 }]   # gru[0][token-1]: the last step's output

Both take the digits as the source gives them, ``(B, 8, 8)`` in [0, 1]: the
transformer cuts each image into 16 patches of 2x2 pixels and prepends a class token
(17 tokens of 16 features), the GRU reads it as 8 steps (rows) of 8 features.
"""

from __future__ import annotations

import torch
from torch import nn


class TinyViT(nn.Module):
    """patches (16 x 4 pixels) -> embed (16) + class token + positions -> blocks.0, blocks.1
    (``nn.TransformerEncoderLayer``, batch first, pre-norm: SGD trains it) -> norm -> head
    on the class token (10).

    Examples
    --------
    >>> net = TinyViT()
    >>> tuple(net.embed(net.patches(torch.zeros(2, 8, 8))).shape), tuple(net(torch.zeros(2, 8, 8)).shape)
    ((2, 16, 16), (2, 10))
    """

    def __init__(self, dim: int = 16, depth: int = 2, heads: int = 2, patch: int = 2, side: int = 8,
                 classes: int = 10) -> None:
        super().__init__()
        self.patch = patch
        tokens = (side // patch) ** 2
        self.embed = nn.Linear(patch * patch, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.position = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*(nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.0,
                                                                 batch_first=True, norm_first=True)
                                      for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def patches(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W) -> (B, patches, patch * patch), row by row."""
        p = self.patch
        return images.unfold(1, p, p).unfold(2, p, p).reshape(len(images), -1, p * p)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(self.patches(images))
        tokens = torch.cat([self.cls_token.expand(len(images), -1, -1), tokens], dim=1) + self.position
        return self.head(self.norm(self.blocks(tokens))[:, 0])


class DigitsGRU(nn.Module):
    """An 8x8 digit as 8 steps of 8 features -> ``gru`` (32, batch first; returns
    ``(output, hidden)``) -> head on the last step's output (10).

    Examples
    --------
    >>> output, hidden = DigitsGRU().gru(torch.zeros(2, 8, 8))
    >>> tuple(output.shape), tuple(hidden.shape)
    ((2, 8, 32), (1, 2, 32))
    """

    def __init__(self, hidden: int = 32, classes: int = 10) -> None:
        super().__init__()
        self.gru = nn.GRU(8, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        output, _ = self.gru(images)
        return self.head(output[:, -1])
