"""Square matrix multiplication."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 1, "split": "train", "forbidden": ["matmul", "mm"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"N": 64}, "cuda": {"N": 4096}}
N = 64


class Model(nn.Module):
    def forward(self, a, b):
        return torch.matmul(a, b)


def get_inputs():
    return [torch.rand(N, N), torch.rand(N, N)]


def get_init_inputs():
    return []
