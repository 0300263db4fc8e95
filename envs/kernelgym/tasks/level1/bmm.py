"""Batched matrix multiplication."""

import torch
import torch.nn as nn
import torch.nn.functional as F

META = {"level": 1, "split": "valid", "forbidden": ["bmm", "matmul", "baddbmm"], "backends": ["torch", "cpp", "cuda", "triton"], "dtype": "float32"}
SHAPES = {"cpu": {"B": 4, "M": 32, "K": 48, "N": 40}, "cuda": {"B": 128, "M": 512, "K": 1024, "N": 2048}}
B = 4
M = 32
K = 48
N = 40


class Model(nn.Module):
    def forward(self, a, b):
        return torch.bmm(a, b)


def get_inputs():
    return [torch.rand(B, M, K), torch.rand(B, K, N)]


def get_init_inputs():
    return []
