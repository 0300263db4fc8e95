"""GELU (erf form)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 1, "split": "valid", "forbidden": ["gelu"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"BATCH": 16, "DIM": 4096}, "cuda": {"BATCH": 4096, "DIM": 65536}}
BATCH = 16
DIM = 4096


class Model(nn.Module):
    def forward(self, x):
        return F.gelu(x)


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return []
