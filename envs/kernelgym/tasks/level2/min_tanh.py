"""Minimum over channels, then tanh."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 2, "split": "train", "forbidden": ["min", "amin", "tanh"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"N": 8, "C": 16, "L": 512}, "cuda": {"N": 128, "C": 256, "L": 16384}}
N = 8
C = 16
L = 512


class Model(nn.Module):
    def forward(self, x):
        return torch.tanh(torch.min(x, dim=1, keepdim=True).values)


def get_inputs():
    return [torch.randn(N, C, L)]


def get_init_inputs():
    return []
