"""Add a bias, GELU, add a residual."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 2, "split": "train", "forbidden": ["gelu"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"BATCH": 16, "DIM": 4096}, "cuda": {"BATCH": 4096, "DIM": 65536}}
BATCH = 16
DIM = 4096


class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(dim))

    def forward(self, x, residual):
        return F.gelu(x + self.bias) + residual


def get_inputs():
    return [torch.randn(BATCH, DIM), torch.randn(BATCH, DIM)]


def get_init_inputs():
    return [DIM]
