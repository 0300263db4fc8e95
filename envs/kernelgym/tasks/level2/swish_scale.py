"""Swish (x * sigmoid(x)) then scale."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 2, "split": "valid", "forbidden": ["silu", "sigmoid"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"BATCH": 16, "DIM": 4096}, "cuda": {"BATCH": 4096, "DIM": 65536}}
BATCH = 16
DIM = 4096


class Model(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x) * 2.0


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return []
