"""Expert for level3/conv_bn_relu: a plain PyTorch rewrite without the forbidden ops."""

import torch
import torch.nn as nn
import torch.nn.functional as F

class ModelNew(nn.Module):
    def __init__(self, c_in, channels):
        super().__init__()
        self.conv = nn.Conv2d(c_in, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        with torch.no_grad():
            self.bn.running_mean.copy_(torch.randn(channels) * 0.1)
            self.bn.running_var.copy_(torch.rand(channels) + 0.5)
            self.bn.weight.copy_(torch.rand(channels) + 0.5)
            self.bn.bias.copy_(torch.randn(channels) * 0.1)

    def forward(self, x):
        n, _, h, w = x.shape
        cols = F.unfold(x, 3, padding=1)
        bn = self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        weight = self.conv.weight.reshape(self.conv.out_channels, -1) * scale.view(-1, 1)
        shift = (bn.bias - bn.running_mean * scale).view(1, -1, 1)
        return (weight @ cols + shift).clamp_min(0.0).view(n, -1, h, w)
