"""Depthwise 3x3 convolution (MobileNet block part)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 3, "split": "train", "forbidden": ["conv2d", "convolution"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"N": 4, "C": 16, "H": 32, "W": 32}, "cuda": {"N": 64, "C": 256, "H": 256, "W": 256}}
N = 4
C = 16
H = 32
W = 32


class Model(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)

    def forward(self, x):
        return self.conv(x)


def get_inputs():
    return [torch.rand(N, C, H, W)]


def get_init_inputs():
    return [C]
