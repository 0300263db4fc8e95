"""Conv2d 3x3, 2x2 average pooling, sigmoid."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 2, "split": "train", "forbidden": ["conv2d", "convolution", "avg_pool2d", "sigmoid"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"N": 2, "C_IN": 8, "C_OUT": 16, "H": 32, "W": 32}, "cuda": {"N": 32, "C_IN": 64, "C_OUT": 128, "H": 256, "W": 256}}
N = 2
C_IN = 8
C_OUT = 16
H = 32
W = 32


class Model(nn.Module):
    def __init__(self, c_in, c_out, k):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, padding=k // 2)

    def forward(self, x):
        return torch.sigmoid(F.avg_pool2d(self.conv(x), 2))


def get_inputs():
    return [torch.rand(N, C_IN, H, W)]


def get_init_inputs():
    return [C_IN, C_OUT, 3]
