"""ResNet basic block without normalisation: relu(x + conv(relu(conv(x))))."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 3, "split": "train", "forbidden": ["conv2d", "convolution", "relu"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"N": 2, "C": 16, "H": 16, "W": 16}, "cuda": {"N": 32, "C": 128, "H": 128, "W": 128}}
N = 2
C = 16
H = 16
W = 16


class Model(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))


def get_inputs():
    return [torch.randn(N, C, H, W)]


def get_init_inputs():
    return [C]
