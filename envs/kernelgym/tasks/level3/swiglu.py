"""SwiGLU feed-forward block (LLaMA style)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 3, "split": "valid", "forbidden": ["linear", "silu", "sigmoid"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32", "atol": 1e-3, "rtol": 1e-3}
SHAPES = {"cpu": {"BATCH": 32, "DIM": 256, "HIDDEN": 512}, "cuda": {"BATCH": 8192, "DIM": 4096, "HIDDEN": 11008}}
BATCH = 32
DIM = 256
HIDDEN = 512


class Model(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return [DIM, HIDDEN]
