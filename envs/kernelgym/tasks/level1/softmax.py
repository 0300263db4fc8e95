"""Softmax over the last dimension."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 1, "split": "test", "forbidden": ["softmax", "log_softmax"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"BATCH": 16, "DIM": 2048}, "cuda": {"BATCH": 4096, "DIM": 32768}}
BATCH = 16
DIM = 2048


class Model(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=-1)


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return []
