"""Elementwise x * y + z, then ReLU."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 2, "split": "train", "forbidden": ["relu", "addcmul"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"BATCH": 16, "DIM": 4096}, "cuda": {"BATCH": 4096, "DIM": 65536}}
BATCH = 16
DIM = 4096


class Model(nn.Module):
    def forward(self, x, y, z):
        return torch.relu(x * y + z)


def get_inputs():
    return [torch.randn(BATCH, DIM), torch.randn(BATCH, DIM), torch.randn(BATCH, DIM)]


def get_init_inputs():
    return []
