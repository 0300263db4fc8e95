"""GroupNorm with 4 groups."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 3, "split": "valid", "forbidden": ["group_norm", "native_group_norm"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"N": 4, "C": 16, "H": 16, "W": 16}, "cuda": {"N": 64, "C": 128, "H": 256, "W": 256}}
N = 4
C = 16
H = 16
W = 16


class Model(nn.Module):
    def __init__(self, groups, channels):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        with torch.no_grad():
            self.norm.weight.copy_(torch.rand(channels) + 0.5)
            self.norm.bias.copy_(torch.randn(channels))

    def forward(self, x):
        return self.norm(x)


def get_inputs():
    return [torch.randn(N, C, H, W)]


def get_init_inputs():
    return [4, C]
