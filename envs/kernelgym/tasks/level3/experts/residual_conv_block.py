"""Expert for level3/residual_conv_block: a plain PyTorch rewrite without the forbidden ops."""

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv(layer, x):
    n, _, h, w = x.shape
    k = layer.kernel_size[0]
    cols = F.unfold(x, k, padding=k // 2)
    out = layer.weight.reshape(layer.out_channels, -1) @ cols + layer.bias.view(1, -1, 1)
    return out.view(n, -1, h, w)


class ModelNew(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return (x + conv(self.conv2, conv(self.conv1, x).clamp_min(0.0))).clamp_min(0.0)
