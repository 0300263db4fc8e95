"""LayerNorm over the last dimension (learned affine)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 3, "split": "test", "forbidden": ["layer_norm", "native_layer_norm"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"BATCH": 32, "DIM": 1024}, "cuda": {"BATCH": 8192, "DIM": 8192}}
BATCH = 32
DIM = 1024


class Model(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        with torch.no_grad():
            self.norm.weight.copy_(torch.rand(dim) + 0.5)
            self.norm.bias.copy_(torch.randn(dim))

    def forward(self, x):
        return self.norm(x)


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return [DIM]
