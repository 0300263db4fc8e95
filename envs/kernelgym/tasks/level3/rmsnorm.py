"""RMSNorm with a learned scale."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 3, "split": "valid", "forbidden": ["rsqrt"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"BATCH": 32, "DIM": 1024}, "cuda": {"BATCH": 8192, "DIM": 8192}}
BATCH = 32
DIM = 1024


class Model(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(dim) + 0.5)
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return [DIM]
