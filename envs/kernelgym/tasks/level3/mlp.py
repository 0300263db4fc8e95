"""Transformer MLP: Linear, GELU, Linear."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 3, "split": "train", "forbidden": ["linear", "gelu", "addmm"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32", "atol": 1e-3, "rtol": 1e-3}
SHAPES = {"cpu": {"BATCH": 32, "DIM": 256, "HIDDEN": 1024}, "cuda": {"BATCH": 8192, "DIM": 4096, "HIDDEN": 16384}}
BATCH = 32
DIM = 256
HIDDEN = 1024


class Model(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return [DIM, HIDDEN]
