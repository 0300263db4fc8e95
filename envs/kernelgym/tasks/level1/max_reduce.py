"""Max over dimension 1 (values)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 1, "split": "train", "forbidden": ["max", "amax"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"BATCH": 16, "DIM1": 256, "DIM2": 256}, "cuda": {"BATCH": 128, "DIM1": 4096, "DIM2": 4096}}
BATCH = 16
DIM1 = 256
DIM2 = 256


class Model(nn.Module):
    def forward(self, x):
        return torch.max(x, dim=1).values


def get_inputs():
    return [torch.rand(BATCH, DIM1, DIM2)]


def get_init_inputs():
    return []
