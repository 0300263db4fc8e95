"""Conv2d 3x3 + BatchNorm2d (inference) + ReLU block."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 3, "split": "test", "forbidden": ["conv2d", "convolution", "batch_norm", "native_batch_norm", "relu"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"N": 2, "C_IN": 8, "C": 16, "H": 32, "W": 32}, "cuda": {"N": 32, "C_IN": 64, "C": 128, "H": 256, "W": 256}}
N = 2
C_IN = 8
C = 16
H = 32
W = 32


class Model(nn.Module):
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
        return torch.relu(self.bn(self.conv(x)))


def get_inputs():
    return [torch.rand(N, C_IN, H, W)]


def get_init_inputs():
    return [C_IN, C]
