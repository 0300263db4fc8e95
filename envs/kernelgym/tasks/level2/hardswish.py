"""HardSwish written as a clamp chain."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 2, "split": "valid", "forbidden": ["hardswish", "clamp", "hardtanh", "relu6"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"BATCH": 16, "DIM": 4096}, "cuda": {"BATCH": 4096, "DIM": 65536}}
BATCH = 16
DIM = 4096


class Model(nn.Module):
    def forward(self, x):
        return x * torch.clamp(x + 3.0, 0.0, 6.0) / 6.0


def get_inputs():
    return [torch.randn(BATCH, DIM) * 4.0]


def get_init_inputs():
    return []
