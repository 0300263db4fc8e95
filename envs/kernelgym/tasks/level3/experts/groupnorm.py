"""Expert for level3/groupnorm: a plain PyTorch rewrite without the forbidden ops."""

import torch
import torch.nn as nn
import torch.nn.functional as F

class ModelNew(nn.Module):
    def __init__(self, groups, channels):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        with torch.no_grad():
            self.norm.weight.copy_(torch.rand(channels) + 0.5)
            self.norm.bias.copy_(torch.randn(channels))
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        g = x.reshape(n, self.groups, -1)
        mean = g.mean(dim=-1, keepdim=True)
        centered = g - mean
        var = (centered * centered).mean(dim=-1, keepdim=True)
        y = (centered / torch.sqrt(var + self.norm.eps)).reshape(n, c, h, w)
        return y * self.norm.weight.view(1, -1, 1, 1) + self.norm.bias.view(1, -1, 1, 1)
