"""A small residual network (``model.kind = "resnet"``), 1-D or 2-D, after He et al. 2016.

A 3-wide convolution stem, then ``layers`` residual blocks of two 3-wide convolutions with
BatchNorm, the channel count doubling and the length (or height and width) halving from the
second block on (a strided 1x1 projection carries the skip), global average pooling and a
linear head::

    h = ReLU(BN(conv(x)));   per block: h = ReLU(BN(conv(ReLU(BN(conv(h))))) + skip(h))
    logits = W mean_positions(h) + b

Data of shape (examples, features) is read as one channel of length ``features`` (1-D, as
MNIST-1D's 40 values); (examples, C, H, W) images take the 2-D form.
"""

from __future__ import annotations

import torch
from torch import nn


def _layers(dims: int) -> tuple[type[nn.Module], type[nn.Module], type[nn.Module]]:
    if dims == 1:
        return nn.Conv1d, nn.BatchNorm1d, nn.AdaptiveAvgPool1d
    return nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d


class ResidualBlock(nn.Module):
    def __init__(self, dims: int, inputs: int, outputs: int, stride: int):
        super().__init__()
        conv, norm, _ = _layers(dims)
        self.conv1 = conv(inputs, outputs, 3, stride=stride, padding=1, bias=False)
        self.norm1 = norm(outputs)
        self.relu1 = nn.ReLU()
        self.conv2 = conv(outputs, outputs, 3, padding=1, bias=False)
        self.norm2 = norm(outputs)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or inputs != outputs:
            self.skip = nn.Sequential(
                conv(inputs, outputs, 1, stride=stride, bias=False), norm(outputs)
            )
        self.relu2 = nn.ReLU()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.norm2(self.conv2(self.relu1(self.norm1(self.conv1(h)))))
        return self.relu2(out + self.skip(h))


class ResNet(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], output_dim: int, channels: int = 16,
                 layers: int = 3):  # fmt: skip
        super().__init__()
        if len(input_shape) not in (1, 3):
            raise ValueError(
                f"model.kind 'resnet' takes (examples, features) or (examples, C, H, W) data, "
                f"not examples shaped {input_shape}"
            )
        self.dims = 1 if len(input_shape) == 1 else 2
        conv, norm, pool = _layers(self.dims)
        in_channels = 1 if self.dims == 1 else input_shape[0]
        blocks: list[nn.Module] = [
            conv(in_channels, channels, 3, padding=1, bias=False), norm(channels), nn.ReLU()
        ]  # fmt: skip
        width = channels
        for i in range(layers):
            out = channels * 2**i
            blocks.append(ResidualBlock(self.dims, width, out, stride=1 if i == 0 else 2))
            width = out
        self.body = nn.Sequential(*blocks)
        self.pool = pool(1)
        self.head = nn.Linear(width, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dims == 1:
            x = x.unsqueeze(1)  # (examples, features) -> one channel
        return self.head(self.pool(self.body(x)).flatten(1))
