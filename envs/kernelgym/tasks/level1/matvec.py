"""Matrix-vector product."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 1, "split": "train", "forbidden": ["matmul", "mv", "mm"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"M": 256, "K": 1024}, "cuda": {"M": 8192, "K": 131072}}
M = 256
K = 1024


class Model(nn.Module):
    def forward(self, a, v):
        return torch.matmul(a, v)


def get_inputs():
    return [torch.rand(M, K), torch.rand(K, 1)]


def get_init_inputs():
    return []
