"""Inclusive prefix sum along dimension 1."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 1, "split": "train", "forbidden": ["cumsum"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"BATCH": 16, "DIM": 512}, "cuda": {"BATCH": 4096, "DIM": 32768}}
BATCH = 16
DIM = 512


class Model(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, dim=1)


def get_inputs():
    return [torch.rand(BATCH, DIM)]


def get_init_inputs():
    return []
