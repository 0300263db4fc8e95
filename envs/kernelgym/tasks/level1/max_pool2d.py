"""2x2 max pooling, stride 2."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 1, "split": "train", "forbidden": ["max_pool2d", "max_pool2d_with_indices"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"N": 4, "C": 16, "H": 32, "W": 32}, "cuda": {"N": 64, "C": 128, "H": 256, "W": 256}}
N = 4
C = 16
H = 32
W = 32


class Model(nn.Module):
    def forward(self, x):
        return F.max_pool2d(x, kernel_size=2, stride=2)


def get_inputs():
    return [torch.rand(N, C, H, W)]


def get_init_inputs():
    return []
