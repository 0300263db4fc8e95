"""Log-sum-exp over dimension 1, then ReLU."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 2, "split": "valid", "forbidden": ["logsumexp", "relu"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"BATCH": 64, "DIM": 1024}, "cuda": {"BATCH": 8192, "DIM": 32768}}
BATCH = 64
DIM = 1024


class Model(nn.Module):
    def forward(self, x):
        return torch.relu(torch.logsumexp(x, dim=1, keepdim=True))


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return []
