"""Expert for level3/depthwise_conv: a plain PyTorch rewrite without the forbidden ops."""

import torch
import torch.nn as nn
import torch.nn.functional as F

class ModelNew(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)

    def forward(self, x):
        n, c, h, w = x.shape
        cols = F.unfold(x, 3, padding=1).view(n, c, 9, h * w)
        out = (cols * self.conv.weight.view(1, c, 9, 1)).sum(dim=2) + self.conv.bias.view(1, c, 1)
        return out.view(n, c, h, w)
