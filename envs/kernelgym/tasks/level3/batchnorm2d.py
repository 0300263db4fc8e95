"""BatchNorm2d in inference mode (running statistics)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 3, "split": "train", "forbidden": ["batch_norm", "native_batch_norm"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"N": 4, "C": 16, "H": 32, "W": 32}, "cuda": {"N": 64, "C": 128, "H": 256, "W": 256}}
N = 4
C = 16
H = 32
W = 32


class Model(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        with torch.no_grad():
            self.bn.running_mean.copy_(torch.randn(channels) * 0.1)
            self.bn.running_var.copy_(torch.rand(channels) + 0.5)
            self.bn.weight.copy_(torch.rand(channels) + 0.5)
            self.bn.bias.copy_(torch.randn(channels) * 0.1)

    def forward(self, x):
        return self.bn(x)


def get_inputs():
    return [torch.randn(N, C, H, W)]


def get_init_inputs():
    return [C]
